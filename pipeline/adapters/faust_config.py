"""Faust application settings derived from `Settings`, Kafka security included."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, SetupError
from pipeline.settings import Settings

# faust-streaming versions the workarounds over faust internals (agents/faust_workarounds.py:
# `Consumer._add_gap`, `Stream.noack`/`ack`) were verified with by the reliability suite; the same
# pin is in pyproject.toml.
VERIFIED_FAUST_VERSIONS = frozenset({"0.15.3"})


def check_faust_version(version: str) -> None:
    """Refuse to start on a faust-streaming the workarounds were not verified with: a private API
    that changed would lose records silently."""
    if version not in VERIFIED_FAUST_VERSIONS:
        verified = ", ".join(sorted(VERIFIED_FAUST_VERSIONS))
        raise SetupError(
            f"faust-streaming {version} is installed, but the worker's workarounds over faust internals "
            f"(agents/faust_workarounds.py) were verified only with {verified}: "
            f"install that (pip install 'faust-streaming==0.15.3'), or run the reliability suite "
            f"(tests/integration/test_reliability.py) on {version} and add it to VERIFIED_FAUST_VERSIONS"
        )


def broker_credentials(settings: Settings) -> Any:
    """faust credentials matching `Settings.kafka_config()`: SASL (over TLS or not), TLS alone, or
    None for PLAINTEXT."""
    import faust

    protocol, mechanism = settings.kafka_security()
    context = _ssl_context(settings) if protocol in {"SSL", "SASL_SSL"} else None
    if mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.reveal(),
            mechanism=mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """A verifying client context: the CA file (or the system's CAs), and the client certificate if
    one is set, as librdkafka is given them."""
    try:
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        if settings.ssl_certfile:
            context.load_cert_chain(
                settings.ssl_certfile,
                settings.ssl_keyfile or None,
                settings.ssl_key_password.reveal() or None,
            )
    except OSError as exc:  # ssl.SSLError included; without this the worker dies with a traceback
        raise ConfigError(
            f"kafka TLS: cannot load LOGAD_SSL_CAFILE={settings.ssl_cafile!r}, "
            f"LOGAD_SSL_CERTFILE={settings.ssl_certfile!r}, LOGAD_SSL_KEYFILE={settings.ssl_keyfile!r} "
            f"({exc}); check the files and LOGAD_SSL_KEY_PASSWORD"
        ) from exc
    return context


def worker_command(python: str, log_level: str = "info") -> list[str]:
    """The command that runs this project's Faust worker (`faust -A agents.app worker`)."""
    return [python, "-m", "faust", "-A", "agents.app", "worker", "-l", log_level]


def prepare_state_dir(settings: Settings) -> Path:
    """Create the worker's state folder with its parents: Faust creates only the last level, so a fresh
    container's `/var/lib/logad` would stop the worker with FileNotFoundError."""
    datadir = settings.state_dir / "faust"
    try:
        datadir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"settings: cannot create LOGAD_STATE_DIR={str(settings.state_dir)!r} ({exc}); point it at a "
            "writable folder (containers: a volume owned by the worker's user)"
        ) from exc
    return datadir


def faust_app_options(settings: Settings) -> dict[str, Any]:
    return {
        "broker": ",".join(f"kafka://{hp}" for hp in settings.bootstrap_servers.split(",")),
        "broker_credentials": broker_credentials(settings),
        "store": "memory://",
        "consumer_auto_offset_reset": settings.consumer_offset_reset,
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication_factor,
        "web_port": settings.web_port,
        "web_host": settings.web_host,
        "producer_max_request_size": 16 * 1024 * 1024,
        "consumer_max_fetch_size": 16 * 1024 * 1024,
        "stream_buffer_maxsize": 16384,
        "broker_commit_every": 1000,
        "broker_commit_interval": 1.0,
        "table_cleanup_interval": 5.0,
        "datadir": str(settings.state_dir / "faust"),
    }
