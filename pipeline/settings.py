"""One frozen settings object for every deployable, read from `LOGAD_*` variables by entry points.

The core never reads the environment itself: entry points call `Settings.from_env(os.environ)` and
apply CLI overrides with `Settings.replace`.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from pipeline.errors import ConfigError

ENV_PREFIX = "LOGAD_"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# Only the mechanisms that need nothing beyond a username and a password, which is all Settings holds.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_MASK = "********"


class Secret:
    """A credential that never shows its value: `repr`, `str`, f-strings (any format spec), %-formatting
    and so logging print a mask; `reveal()` is the one way to the value, for the client configuration
    and a child process's environment.

    Not a `str` on purpose: a `str` subclass hands its value to every string operation (slicing,
    `.strip()`, `+`, `json.dumps`, `"".join`), each a way around the mask. Here those raise TypeError.
    Secrets compare and hash by value, so settings holding them still compare equal.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str = "") -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"Secret: expected a str, got {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return _MASK if self._value else ""

    def __format__(self, format_spec: str) -> str:
        return format(str(self), format_spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time: how long a comparison takes says nothing of how much of the value matched.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    # Immutable, so a copy may be the object itself; the default copy protocol would go through
    # __setattr__ and fail.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        # Pickle writes the value in the clear, as any pickled credential; nothing in the project
        # pickles settings (test_security), so refuse rather than leak it into a file or a pipe.
        raise TypeError("Secret cannot be pickled; pass reveal() explicitly where a value must travel")


@dataclass(frozen=True)
class Settings:
    """Every knob of the pipeline. Env name: `LOGAD_` + field name upper-cased."""

    # Kafka
    bootstrap_servers: str = "127.0.0.1:9092"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    topic_partitions: int = 4
    # Topics `logad kafka topics` and the worker create: 1 suits the single local broker; a production
    # cluster wants 3 with min ISR 2 (producers already wait for all in-sync replicas).
    topic_replication_factor: int = 1
    topic_min_insync_replicas: int = 0  # 0: leave the broker's default `min.insync.replicas`
    raw_logs_topic: str = "raw-logs"
    log_events_topic: str = "log-events"
    anomalies_topic: str = "log-anomalies"
    templates_topic: str = "log-templates"
    dead_letter_topic: str = "logad-dead-letter"
    # Detect agent sessions: a delta per log-events message, snapshots (pipeline.session_state_log)
    session_state_topic: str = "logad-session-state"
    # Operator verdicts on alerts, keyed by alert id, compacted (pipeline.feedback; `logad feedback`)
    feedback_topic: str = "log-feedback"
    # Kafka security, passed through to every client (confluent-kafka, aiokafka/Faust).
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: Secret = field(default_factory=lambda: Secret(""))
    # Triton and inference
    inference_backend: str = "triton"  # "triton" or "torchscript" (in-process)
    triton_grpc_url: str = "127.0.0.1:8001"
    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    # How `logad train` lays out config.pbtxt (`pipeline.triton_config`): "python" (the runner the local
    # Triton serves) or "libtorch" (the stock Triton container's native TorchScript backend), and
    # where its instances run: "cpu" or "gpu" (libtorch only).
    triton_platform: str = "python"
    triton_device: str = "cpu"
    model_repo: Path = Path("model_repo")
    # Files
    data_dir: Path = Path("../shared/data")
    state_dir: Path = Path("var")
    # Online detection
    app_id: str = "logad"
    consumer_offset_reset: str = "earliest"  # where a new consumer group starts: "earliest" or "latest"
    detection_model: str = "lama"  # "lama" or "deeplog": the next-event model the worker asks
    # Lines per raw-logs message that `logad replay`, the demo and the e2e benchmark produce. The
    # parse agent sends one log-events message per partition per raw message, so this also sizes the
    # batches the detect agent scores: per-message costs (encoding, partitioning, Kafka) are paid once
    # per this many lines (benchmarks/stages.py: 100-line messages cost ~1.6x what 500-line ones do).
    replay_lines_per_message: int = 500
    # The parse agent parses the raw messages already waiting together, at most this many (and about
    # this many bytes), and sends their events as one log-events message per partition: the detect
    # agent's costs are per message (benchmarks/stages.py). A quiet stream is still handled message
    # by message, at once.
    parse_batch_messages: int = 32
    parse_batch_bytes: int = 4 << 20
    # A raw message over this is refused whole (`oversized`): a guard against absurd payloads, at the
    # 16 MiB the broker, producers and consumers are configured for. Bad lines are refused one by one:
    max_record_bytes: int = 16 << 20
    max_line_bytes: int = 1 << 20  # one line over this is a dead letter (`oversized_line`), not its message
    window_size: int = 10
    session_timeout_s: float = 60.0
    # A partition's sessions are snapshot once the deltas written since the last snapshot reach twice
    # its size and at least this many bytes (`pipeline.session_state_log.SnapshotPolicy`).
    session_snapshot_min_bytes: int = 4 << 20
    web_port: int = 6066
    # Loopback by default so a laptop run exposes nothing; containers set 0.0.0.0 to be probed.
    web_host: str = "127.0.0.1"
    # Sources without session ids (comma-separated, e.g. "bgl"): their events are cut into time
    # windows (the window model's spec) and classified by `window_model` instead of next-event scoring.
    window_sources: str = ""
    window_model: str = "protosiamese"
    # Format profiles file (TOML, `pipeline.format_profiles`): user-written log formats and the
    # `[sources]` that parse with them; "" means none (a source parses with its model's format).
    formats: str = ""
    # A window source idle this long on the ingest clock has its open windows closed and classified,
    # so the last window of a stream alerts too (`pipeline.window_detection`).
    window_idle_s: float = 30.0
    # How long alerts wait for their raw lines to be read back from the raw topic (`pipeline.raw_lines`).
    alert_raw_lines_timeout_s: float = 3.0
    # Raw messages this worker parsed lately, kept so that an alert finds its lines in memory instead of
    # reading raw-logs back (a read-back blocks the detect agent for a fetch round trip).
    alert_raw_cache_bytes: int = 32 << 20
    # `logad notify`: where alerts go (Alertmanager's base URL, or a webhook taking JSON POSTs), and the
    # consumer group whose committed offsets say which alerts were delivered.
    alertmanager_url: str = ""
    notify_webhook_url: str = ""
    notify_group: str = "logad-notify"
    # DeepLog's parameter value model: checked for every session event when a version of it exists in
    # the model repository at worker start (in-process TorchScript); "" turns it off.
    parameter_model: str = "deeplog_params"
    parameter_history_keys: int = 10_000  # log keys whose last h vectors a worker keeps in memory
    # Publishing (`logad train`): above this share of validation sessions flagged, a loud warning;
    # with every one flagged, publishing is refused unless --force.
    publish_max_validation_fpr: float = 0.05

    def __post_init__(self) -> None:
        if self.replay_lines_per_message < 1:
            raise ConfigError(
                f"settings: replay_lines_per_message must be at least 1, "
                f"got {self.replay_lines_per_message}; "
                "set LOGAD_REPLAY_LINES_PER_MESSAGE (default 500)"
            )
        if self.parse_batch_messages < 1 or self.parse_batch_bytes < 1:
            raise ConfigError(
                f"settings: parse_batch_messages and parse_batch_bytes must be at least 1, got "
                f"{self.parse_batch_messages} and {self.parse_batch_bytes}; set LOGAD_PARSE_BATCH_MESSAGES "
                f"(default 32) and LOGAD_PARSE_BATCH_BYTES (default 4 MiB)"
            )
        self._check_deployment()
        # A plain str given by code (an override, `replace`) would print in logs: wrap it too.
        for name in _secret_fields(type(self)):
            value = getattr(self, name)
            if not isinstance(value, Secret):
                object.__setattr__(self, name, Secret(value))

    def _check_deployment(self) -> None:
        """Refuse values a worker or a topic creation would only fail on later, naming the variable."""
        for name, low, high in (
            ("topic_partitions", 1, 100_000),
            ("topic_replication_factor", 1, 32_767),
            ("topic_min_insync_replicas", 0, 32_767),
            ("web_port", 1, 65_535),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(
                    f"settings: {ENV_PREFIX}{name.upper()}={value} is out of range; use {low}..{high}"
                )
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            # Kafka would create such topics, and then refuse every write with acks=all.
            raise ConfigError(
                f"settings: {ENV_PREFIX}TOPIC_MIN_INSYNC_REPLICAS={self.topic_min_insync_replicas} exceeds "
                f"{ENV_PREFIX}TOPIC_REPLICATION_FACTOR={self.topic_replication_factor}; no write could "
                "succeed: lower it (replication - 1 tolerates one broker down)"
            )
        if not self.web_host.strip() or any(c.isspace() for c in self.web_host):
            raise ConfigError(
                f"settings: {ENV_PREFIX}WEB_HOST={self.web_host!r} is not an address to bind; "
                "use 127.0.0.1 (local) or 0.0.0.0 (containers)"
            )

    def topic_config(self) -> dict[str, str]:
        """Topic-level settings every topic the pipeline creates gets (beside its own, e.g. compaction)."""
        if self.topic_min_insync_replicas:
            return {"min.insync.replicas": str(self.topic_min_insync_replicas)}
        return {}

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from `LOGAD_*` variables; keyword overrides (CLI options) win."""
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f.name, hints[f.name], raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"settings: {exc}; valid names are {[f.name for f in fields(cls)]}") from exc

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (e.g. os.environ) plus every setting as a `LOGAD_*` variable, for a child process."""
        env = dict(base or {})
        for f in fields(self):
            value = getattr(self, f.name)
            env[ENV_PREFIX + f.name.upper()] = value.reveal() if isinstance(value, Secret) else str(value)
        return env

    def kafka_security(self) -> tuple[str, str]:
        """(security protocol, SASL mechanism or "" without SASL), upper-cased and checked.

        Every Kafka client derives its security from this, so confluent-kafka and Faust cannot
        disagree: an unknown protocol would otherwise leave Faust on PLAINTEXT, and an unset
        mechanism means GSSAPI to librdkafka but PLAIN to Faust.
        """
        protocol = self.security_protocol.strip().upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"settings: {ENV_PREFIX}SECURITY_PROTOCOL={self.security_protocol!r} is not one of "
                f"{', '.join(SECURITY_PROTOCOLS)}"
            )
        if not protocol.startswith("SASL_"):
            return protocol, ""
        mechanism = (self.sasl_mechanism.strip() or "PLAIN").upper()
        if mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"settings: {ENV_PREFIX}SASL_MECHANISM={self.sasl_mechanism!r} is not supported; use one of "
                f"{', '.join(SASL_MECHANISMS)} (username and password)"
            )
        if not (self.sasl_username and self.sasl_password):
            # librdkafka refuses to start without them; Faust would try the broker with None.
            raise ConfigError(
                f"settings: {ENV_PREFIX}SECURITY_PROTOCOL={protocol} needs {ENV_PREFIX}SASL_USERNAME and "
                f"{ENV_PREFIX}SASL_PASSWORD; set both"
            )
        return protocol, mechanism

    def kafka_config(self) -> dict[str, str]:
        """librdkafka (confluent-kafka) client configuration, security options included.

        Only the options of the chosen protocol are set: a password never reaches a client that
        does not authenticate with it.
        """
        protocol, mechanism = self.kafka_security()
        conf = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": protocol}
        if mechanism:
            conf["sasl.mechanism"] = mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password.reveal()
        if protocol in {"SSL", "SASL_SSL"}:
            optional = {
                "ssl.ca.location": self.ssl_cafile,
                "ssl.certificate.location": self.ssl_certfile,
                "ssl.key.location": self.ssl_keyfile,
                "ssl.key.password": self.ssl_key_password.reveal(),
            }
            conf.update({k: v for k, v in optional.items() if v})
        return conf

    @property
    def window_source_set(self) -> frozenset[str]:
        """`window_sources` parsed: names stripped, empty entries ignored."""
        return frozenset(name.strip() for name in self.window_sources.split(",") if name.strip())

    def isolated_run(self, prefix: str, run_id: str) -> Settings:
        """Settings whose topics and consumer group are this run's own (`<topic>-<run_id>`), so a test,
        benchmark or demo run never reads another run's records or offsets."""
        return self.replace(
            raw_logs_topic=f"{prefix}-raw-{run_id}",
            log_events_topic=f"{prefix}-events-{run_id}",
            anomalies_topic=f"{prefix}-anomalies-{run_id}",
            templates_topic=f"{prefix}-templates-{run_id}",
            dead_letter_topic=f"{prefix}-dead-{run_id}",
            session_state_topic=f"{prefix}-state-{run_id}",
            feedback_topic=f"{prefix}-feedback-{run_id}",
            app_id=f"logad-{prefix}-{run_id}",
        )

    def serving_layout(self) -> Any:
        """`triton_platform` and `triton_device` checked (`pipeline.triton_config.ServingLayout`)."""
        from pipeline.triton_config import ServingLayout

        return ServingLayout.parse(self.triton_platform, self.triton_device)

    def all_topics(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in TOPIC_FIELDS)


# The settings that name the pipeline's topics, in the order `logad kafka topics` lists them: the one
# topic list (`pipeline.adapters.kafka.pipeline_topics` lays each out, `pipeline.topic_contracts` gives
# each its schema).
TOPIC_FIELDS = (
    "raw_logs_topic",
    "log_events_topic",
    "anomalies_topic",
    "templates_topic",
    "dead_letter_topic",
    "session_state_topic",
    "feedback_topic",
)


@functools.cache
def _secret_fields(cls: type) -> tuple[str, ...]:
    hints = get_type_hints(cls)
    return tuple(f.name for f in fields(cls) if hints[f.name] is Secret)


def _convert(name: str, kind: Any, raw: str) -> Any:
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if kind is Path:
            return Path(raw)
        if kind is Secret:
            return Secret(raw)
        return raw
    except ValueError as exc:
        raise ConfigError(
            f"settings: {ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}; fix or unset it"
        ) from exc
