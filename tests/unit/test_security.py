"""Security: Kafka SASL/SSL pass-through, secrets kept out of logs, no pickle, checksums before loading.

Everything here runs without a broker or Triton: client configurations are built and handed to the
real client libraries (which check them) but never connect anywhere that answers.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import ssl
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from pipeline.adapters.faust_config import broker_credentials, faust_app_options
from pipeline.errors import ConfigError, ModelError
from pipeline.model_repository import (
    MODEL_FILE,
    RUNNER_FILE,
    RUNNER_SOURCE,
    ModelSpec,
    TensorSpec,
    load_version,
    newest_valid_version,
    publish_version,
    read_version_file,
    verify_version,
)
from pipeline.settings import Secret, Settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cr3t-Kafka-pw-7f1d"
KEY_PASSWORD = "k3y-pw-9a2c"
CA_NAME = "logad-test-ca"


# --- TLS material -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path  # encrypted with KEY_PASSWORD


def _tls_with_cryptography(directory: Path) -> TlsFiles:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def self_signed(common_name: str, ca: bool) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), key

    files = TlsFiles(directory / "ca.pem", directory / "client.pem", directory / "client.key")
    files.ca.write_bytes(self_signed(CA_NAME, ca=True)[0])
    cert, key = self_signed("logad-client", ca=False)
    files.cert.write_bytes(cert)
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    return files


def _tls_with_openssl(directory: Path, openssl: str) -> TlsFiles:
    files = TlsFiles(directory / "ca.pem", directory / "client.pem", directory / "client.key")
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "1"]
    ca = ["-nodes", "-keyout", directory / "ca.key", "-out", files.ca, "-subj", f"/CN={CA_NAME}"]
    client = ["-keyout", files.key, "-out", files.cert, "-subj", "/CN=logad-client"]
    for extra in (ca, [*client, "-passout", f"pass:{KEY_PASSWORD}"]):
        subprocess.run([openssl, "req", "-x509", *new_key, *extra], check=True, capture_output=True)
    return files


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA certificate and a client certificate with a password-protected key."""
    directory = tmp_path_factory.mktemp("tls")
    if importlib.util.find_spec("cryptography") is not None:
        return _tls_with_cryptography(directory)
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither the cryptography package nor the openssl binary is here to make certificates")
    return _tls_with_openssl(directory, openssl)


def sasl_ssl_env(tls: TlsFiles) -> dict[str, str]:
    return {
        "LOGAD_BOOTSTRAP_SERVERS": "broker-1:9093,broker-2:9093",
        "LOGAD_SECURITY_PROTOCOL": "SASL_SSL",
        "LOGAD_SASL_MECHANISM": "SCRAM-SHA-512",
        "LOGAD_SASL_USERNAME": "logad-worker",
        "LOGAD_SASL_PASSWORD": PASSWORD,
        "LOGAD_SSL_CAFILE": str(tls.ca),
        "LOGAD_SSL_CERTFILE": str(tls.cert),
        "LOGAD_SSL_KEYFILE": str(tls.key),
        "LOGAD_SSL_KEY_PASSWORD": KEY_PASSWORD,
    }


def assert_verifying_context(context: Any) -> None:
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(pair[0] for pair in c["subject"]) for c in context.get_ca_certs()]
    assert {"commonName": CA_NAME} in subjects  # the CA file, not only the system store


def librdkafka_accepts(conf: dict[str, str]) -> None:
    """librdkafka checks keys, values, mechanisms and TLS files when a client is created."""
    from confluent_kafka import Producer

    Producer({**conf, "bootstrap.servers": "127.0.0.1:1", "log_level": 0})


# --- SASL / SSL pass-through ------------------------------------------------------------------


def test_sasl_ssl_reaches_librdkafka_exactly(tls: TlsFiles) -> None:
    settings = Settings.from_env(sasl_ssl_env(tls))
    conf = settings.kafka_config()
    assert conf == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "logad-worker",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(tls.ca),
        "ssl.certificate.location": str(tls.cert),
        "ssl.key.location": str(tls.key),
        "ssl.key.password": KEY_PASSWORD,
    }
    assert type(conf["sasl.password"]) is str  # the value itself, not a masking wrapper
    librdkafka_accepts(conf)


def test_sasl_ssl_reaches_faust_and_aiokafka(tls: TlsFiles) -> None:
    from faust.auth import SASLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
    from faust.types.auth import AuthProtocol, SASLMechanism

    settings = Settings.from_env(sasl_ssl_env(tls))
    credentials = faust_app_options(settings)["broker_credentials"]
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    assert (credentials.username, credentials.password) == ("logad-worker", PASSWORD)
    assert_verifying_context(credentials.ssl_context)
    # What the Faust worker finally hands to aiokafka.
    auth = dict(credentials_to_aiokafka_auth(credentials))
    assert auth == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "logad-worker",
        "sasl_plain_password": PASSWORD,
        "ssl_context": credentials.ssl_context,
    }


def test_ssl_only_gives_ssl_credentials_and_no_sasl_options(tls: TlsFiles) -> None:
    from faust.auth import SSLCredentials
    from faust.types.auth import AuthProtocol

    env = {**sasl_ssl_env(tls), "LOGAD_SECURITY_PROTOCOL": "SSL"}
    settings = Settings.from_env(env)
    credentials = broker_credentials(settings)
    assert isinstance(credentials, SSLCredentials) and credentials.protocol is AuthProtocol.SSL
    assert_verifying_context(credentials.context)
    conf = settings.kafka_config()
    # A password set for SASL is not handed to a client that does not authenticate with it.
    assert not any(key.startswith("sasl.") for key in conf)
    assert conf["security.protocol"] == "SSL" and conf["ssl.ca.location"] == str(tls.ca)
    librdkafka_accepts(conf)


def test_sasl_plaintext_defaults_to_plain_in_every_client() -> None:
    """Unset, librdkafka would pick GSSAPI and Faust PLAIN: both must get PLAIN."""
    from faust.auth import SASLCredentials
    from faust.types.auth import AuthProtocol, SASLMechanism

    env = {"LOGAD_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "LOGAD_SASL_USERNAME": "u"}
    settings = Settings.from_env({**env, "LOGAD_SASL_PASSWORD": PASSWORD, "LOGAD_SSL_CAFILE": "/nowhere"})
    conf = settings.kafka_config()
    assert conf == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "u",
        "sasl.password": PASSWORD,
    }
    librdkafka_accepts(conf)
    credentials = broker_credentials(settings)
    assert isinstance(credentials, SASLCredentials) and credentials.ssl_context is None
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism is SASLMechanism.PLAIN


def test_names_are_case_insensitive_like_the_docs_suggest() -> None:
    env = {"LOGAD_SECURITY_PROTOCOL": "sasl_plaintext", "LOGAD_SASL_MECHANISM": "scram-sha-256"}
    settings = Settings.from_env({**env, "LOGAD_SASL_USERNAME": "u", "LOGAD_SASL_PASSWORD": PASSWORD})
    assert settings.kafka_security() == ("SASL_PLAINTEXT", "SCRAM-SHA-256")
    librdkafka_accepts(settings.kafka_config())  # librdkafka itself refuses "scram-sha-256"
    assert broker_credentials(settings).mechanism.value == "SCRAM-SHA-256"


def test_plaintext_gives_no_credentials() -> None:
    settings = Settings.from_env({"LOGAD_SASL_PASSWORD": PASSWORD})
    assert broker_credentials(settings) is None
    assert faust_app_options(settings)["broker_credentials"] is None
    assert settings.kafka_config() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        # A typo must not leave Faust on PLAINTEXT while confluent-kafka fails.
        ({"LOGAD_SECURITY_PROTOCOL": "SASL-SSL"}, "LOGAD_SECURITY_PROTOCOL='SASL-SSL'"),
        # Settings hold no keytab or token: these mechanisms cannot work.
        ({"LOGAD_SECURITY_PROTOCOL": "SASL_SSL", "LOGAD_SASL_MECHANISM": "GSSAPI"}, "GSSAPI"),
        ({"LOGAD_SECURITY_PROTOCOL": "SASL_SSL", "LOGAD_SASL_MECHANISM": "OAUTHBEARER"}, "OAUTHBEARER"),
        # librdkafka refuses to start without them, Faust would send None.
        ({"LOGAD_SECURITY_PROTOCOL": "SASL_SSL", "LOGAD_SASL_USERNAME": "u"}, "LOGAD_SASL_PASSWORD"),
        ({"LOGAD_SECURITY_PROTOCOL": "SASL_SSL", "LOGAD_SASL_PASSWORD": PASSWORD}, "LOGAD_SASL_USERNAME"),
    ],
)
def test_unusable_security_settings_are_config_errors(env: dict[str, str], complaint: str) -> None:
    settings = Settings.from_env(env)
    with pytest.raises(ConfigError, match=complaint):
        settings.kafka_config()
    with pytest.raises(ConfigError, match=complaint):
        broker_credentials(settings)


def test_unreadable_tls_files_are_config_errors(tls: TlsFiles, tmp_path: Path) -> None:
    missing = Settings.from_env(
        {"LOGAD_SECURITY_PROTOCOL": "SSL", "LOGAD_SSL_CAFILE": str(tmp_path / "no.pem")}
    )
    with pytest.raises(ConfigError, match="LOGAD_SSL_CAFILE"):
        broker_credentials(missing)
    wrong = Settings.from_env({**sasl_ssl_env(tls), "LOGAD_SSL_KEY_PASSWORD": "not-the-key-password"})
    with pytest.raises(ConfigError) as caught:
        broker_credentials(wrong)
    assert "not-the-key-password" not in str(caught.value) and PASSWORD not in str(caught.value)


# --- secrets never printed --------------------------------------------------------------------


def test_secret_shows_no_value_however_it_is_printed() -> None:
    secret = Secret(PASSWORD)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!s}", f"{secret:>40}"]
    # The older spellings too, on purpose: logging still formats with %.
    shown += ["%s" % secret, "%r" % secret, "{}".format(secret)]  # noqa: UP031, UP032
    for text in shown:
        assert PASSWORD not in text and "****" in text
    assert secret.reveal() == PASSWORD and type(secret.reveal()) is str
    assert str(Secret("")) == "" and repr(Secret("")) == "Secret('')"


def test_secret_is_no_string_so_string_operations_cannot_reach_the_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A `str` subclass printed a mask but gave its value to every string operation; these raise now."""
    secret = Secret(PASSWORD)
    assert not isinstance(secret, str)
    # json.dumps refuses it (TypeError) rather than writing a mask: a JSON document with a password
    # field is a mistake to see, not one to paper over with asterisks.
    leaks: list[Any] = [
        lambda: json.dumps(secret),
        lambda: json.dumps({"password": secret}),
        lambda: secret[:4],  # type: ignore[index]
        lambda: secret.strip(),  # type: ignore[attr-defined]
        lambda: secret.encode(),  # type: ignore[attr-defined]
        lambda: secret + "x",  # type: ignore[operator]
        lambda: "x" + secret,  # type: ignore[operator]
        lambda: "".join([secret]),  # type: ignore[list-item]
        lambda: list(secret),  # type: ignore[call-overload]
        lambda: PASSWORD[0] in secret,  # type: ignore[operator]
    ]
    for leak in leaks:
        with pytest.raises((TypeError, AttributeError)):
            leak()
    # Where a caller asks for text explicitly (`default=str`), it gets the mask.
    assert json.dumps({"password": secret}, default=str) == '{"password": "********"}'
    shown = [str(secret), repr(secret), f"{secret}", f"{secret:>20}", f"{secret!r:<30}", "%s" % secret]  # noqa: UP031
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("logad.test").warning("password %s %r", secret, secret)
        logging.getLogger("logad.test").warning(secret)
    shown.append(caplog.text)
    for text in shown:
        assert PASSWORD not in text and "****" in text
    assert f"{Secret(''):>4}" == "    "  # empty stays visibly empty (unset), still no value


def test_secret_compares_and_hashes_by_value_only_with_secrets() -> None:
    secret = Secret(PASSWORD)
    assert secret == Secret(PASSWORD) and hash(secret) == hash(Secret(PASSWORD))
    assert secret != Secret(KEY_PASSWORD)
    assert secret != PASSWORD  # no oracle for guesses passed as plain strings
    assert Secret(secret) == secret and Secret(secret).reveal() == PASSWORD
    assert bool(secret) and not Secret("")
    assert copy.deepcopy(secret) is secret
    with pytest.raises(AttributeError):
        secret._value = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def test_settings_print_no_password_and_only_to_env_reveals_it(caplog: pytest.LogCaptureFixture) -> None:
    env = {"LOGAD_SASL_PASSWORD": PASSWORD, "LOGAD_SSL_KEY_PASSWORD": KEY_PASSWORD}
    from_env = Settings.from_env(env)
    # Passwords given by code (a CLI override, `replace`) are wrapped as well.
    from_code = Settings(sasl_password=PASSWORD, ssl_key_password=KEY_PASSWORD)  # type: ignore[arg-type]
    replaced = Settings().replace(sasl_password=PASSWORD, ssl_key_password=KEY_PASSWORD)
    overridden = Settings.from_env({}, sasl_password=PASSWORD, ssl_key_password=KEY_PASSWORD)
    with caplog.at_level(logging.DEBUG):
        for settings in (from_env, from_code, replaced, overridden):
            assert isinstance(settings.sasl_password, Secret)
            for text in (repr(settings), str(settings), f"{settings}", f"{settings.sasl_password}"):
                assert PASSWORD not in text and KEY_PASSWORD not in text
            logging.getLogger("logad.test").info(
                "settings %s / %r / %s", settings, settings, settings.sasl_password
            )
            # The one place meant to reveal it: a child process's environment.
            child = settings.to_env({})
            assert child["LOGAD_SASL_PASSWORD"] == PASSWORD
            assert child["LOGAD_SSL_KEY_PASSWORD"] == KEY_PASSWORD
            assert Settings.from_env(child) == settings
    assert caplog.records and PASSWORD not in caplog.text and KEY_PASSWORD not in caplog.text


# --- the worker process: serializers and logs -------------------------------------------------

_WORKER_PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import agents.app as worker
log = logging.getLogger("probe")
log.info("settings: %s", worker.settings)
log.info("credentials: %r", worker.app.conf.broker_credentials)
log.info("sasl password setting: %s", worker.settings.sasl_password)
topics = [worker.raw_logs, worker.log_events, worker.anomalies, worker.templates, worker.dead_letters,
          worker.state_log]
print(json.dumps({
    "app": [worker.app.conf.key_serializer, worker.app.conf.value_serializer],
    "tables": len(worker.app.tables),
    "topics": {t.get_topic_name(): [t.key_serializer, t.value_serializer] for t in topics},
    "credentials": type(worker.app.conf.broker_credentials).__name__,
}))
"""


@pytest.fixture(scope="module")
def worker_import(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """`agents.app` imported as a worker would (module state, logging): importing connects nowhere."""
    tmp = tmp_path_factory.mktemp("worker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGAD_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "LOGAD_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "LOGAD_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "LOGAD_SASL_MECHANISM": "SCRAM-SHA-256",
            "LOGAD_SASL_USERNAME": "logad-worker",
            "LOGAD_SASL_PASSWORD": PASSWORD,
            "LOGAD_MODEL_REPO": str(tmp / "repo"),
            "LOGAD_STATE_DIR": str(tmp / "state"),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", _WORKER_PROBE], env=env, cwd=tmp, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_worker_topics_use_raw_and_no_table_never_pickle(
    worker_import: subprocess.CompletedProcess[str],
) -> None:
    found = json.loads(worker_import.stdout.strip().splitlines()[-1])
    # Session state comes back from a topic anyone with write access can fill: raw bytes, decoded
    # by orjson (pipeline.session_state_log), and no faust table with its own serializer.
    assert found["tables"] == 0
    assert found["app"] == ["raw", "json"]
    assert len(found["topics"]) == 6
    assert all(serializers == ["raw", "raw"] for serializers in found["topics"].values())
    assert found["credentials"] == "SASLCredentials"


def test_worker_start_logs_no_password(worker_import: subprocess.CompletedProcess[str]) -> None:
    output = worker_import.stdout + worker_import.stderr
    assert "probe" in worker_import.stderr  # the probe's own log lines did reach the output
    assert PASSWORD not in output


# --- no pickle ----------------------------------------------------------------------------------

BANNED_MODULES = frozenset(
    {"pickle", "_pickle", "cPickle", "jsonpickle", "marshal", "shelve", "dill", "cloudpickle"}
)
# drain3 restores state with jsonpickle, but only through a persistence handler.
BANNED_MODULE_PREFIXES = ("drain3.file_persistence", "drain3.kafka_persistence", "drain3.redis_persistence")


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unpickling_uses(source: str) -> list[str]:
    """Ways `source` could unpickle: banned imports, `torch.load` without `weights_only=True`,
    `numpy.load(allow_pickle=True)`, drain3 persistence. Import aliases are followed."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> dotted origin
    problems: list[str] = []

    def banned(module: str) -> bool:
        return module.split(".")[0] in BANNED_MODULES or module.startswith(BANNED_MODULE_PREFIXES)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if banned(alias.name):
                    problems.append(f"line {node.lineno}: import {alias.name}")
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if banned(node.module):
                problems.append(f"line {node.lineno}: from {node.module} import ...")
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def dotted(expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return aliases.get(expr.id, expr.id)
        if isinstance(expr, ast.Attribute) and (base := dotted(expr.value)) is not None:
            return f"{base}.{expr.attr}"
        return None

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        if name == "torch.load" and not _is_true(keywords.get("weights_only")):
            problems.append(f"line {node.lineno}: torch.load without weights_only=True")
        if name == "numpy.load" and "allow_pickle" in keywords and not _is_false(keywords["allow_pickle"]):
            problems.append(f"line {node.lineno}: numpy.load with allow_pickle")
        if name in {"__import__", "importlib.import_module"} and node.args:
            target = node.args[0]
            if isinstance(target, ast.Constant) and isinstance(target.value, str) and banned(target.value):
                problems.append(f"line {node.lineno}: dynamic import of {target.value}")
        if "persistence_handler" in keywords:
            problems.append(f"line {node.lineno}: drain3 persistence (jsonpickle state)")
    return problems


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def project_sources() -> Iterator[Path]:
    for package in ("pipeline", "agents"):
        yield from sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "import pickle as p",
        "from pickle import loads",
        "import cloudpickle",
        "from jsonpickle import decode",
        "import marshal",
        "import shelve",
        "import dill.settings",
        "import torch\ntorch.load(f)",
        "import torch\ntorch.load(f, weights_only=False)",
        "import torch as th\nth.load(f)",
        "from torch import load\nload(f)",
        "import numpy as np\nnp.load(f, allow_pickle=True)",
        "import importlib\nimportlib.import_module('pickle')",
        "from drain3.file_persistence import FilePersistence",
        "from drain3 import TemplateMiner\nTemplateMiner(persistence_handler=handler)",
    ],
)
def test_the_scan_catches_unpickling(source: str) -> None:
    assert unpickling_uses(source)


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load(f, weights_only=True)",
        "import torch\ntorch.jit.load(f, map_location='cpu')",
        "import numpy as np\nnp.load(f)",
        "import json\njson.loads(data)",
        "import orjson\norjson.loads(data)",
    ],
)
def test_the_scan_lets_safe_loading_through(source: str) -> None:
    assert unpickling_uses(source) == []


def test_no_project_module_can_unpickle() -> None:
    sources = list(project_sources())
    assert len(sources) > 30 and any(p.name == "triton_runner.py" for p in sources)
    problems = {str(p.relative_to(ROOT)): found for p in sources if (found := unpickling_uses(p.read_text()))}
    assert problems == {}


def test_models_are_loaded_as_torchscript() -> None:
    """Both loaders (in-process and the Triton runner) use `torch.jit.load`, which restores code and
    tensors only, never arbitrary pickled objects."""
    for path in (ROOT / "pipeline" / "model_repository.py", RUNNER_SOURCE):
        calls = [
            ast.unparse(node.func)
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and re.fullmatch(r"torch\.(\w+\.)*load", ast.unparse(node.func))
        ]
        assert calls == ["torch.jit.load"], path


# --- model checksum before load -----------------------------------------------------------------


class Double(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2.0


SPEC = ModelSpec(
    name="double",
    inputs=(TensorSpec("x", "FP32", (-1,)),),
    outputs=(TensorSpec("y", "FP32", (-1,)),),
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Versions 1 (intact) and 2 (model.pt tampered with after publishing, same size)."""
    scripted = torch.jit.script(Double())
    publish_version(tmp_path, SPEC, scripted, {"note": "good"}, {"templates.json": b"{}"})
    publish_version(tmp_path, SPEC, scripted, {"note": "tampered"}, {"templates.json": b"{}"})
    model = tmp_path / "double" / "2" / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    return tmp_path


@pytest.fixture
def jit_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path `torch.jit.load` is called with (the real load still runs)."""
    seen: list[str] = []
    real = torch.jit.load

    def recording(path: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "load", recording)
    return seen


def test_tampered_version_is_refused_before_loading(repo: Path, jit_loads: list[str]) -> None:
    with pytest.raises(ModelError, match="checksum mismatch"):
        verify_version(repo, "double", 2)
    with pytest.raises(ModelError, match="checksum mismatch"):
        load_version(repo, "double", 2)
    # Asked for the newest, it refuses rather than serve the tampered bytes.
    with pytest.raises(ModelError, match="version 2"):
        load_version(repo, "double")
    assert jit_loads == []  # refused before torch ever read the file


def test_previous_valid_version_is_picked(repo: Path, jit_loads: list[str]) -> None:
    assert verify_version(repo, "double", 1)["note"] == "good"
    assert newest_valid_version(repo, "double") == 1
    loaded = load_version(repo, "double", newest_valid_version(repo, "double"))
    assert loaded.version == 1 and jit_loads == [str(repo / "double" / "1" / MODEL_FILE)]
    assert loaded.module(torch.tensor([1.5])).tolist() == [3.0]


def test_tampered_extra_file_is_refused(repo: Path) -> None:
    (repo / "double" / "1" / "templates.json").write_bytes(b'{"evil": 1}')
    with pytest.raises(ModelError, match="checksum"):
        read_version_file(repo, "double", 1, "templates.json")


def test_no_version_verifies_when_every_one_is_tampered(repo: Path) -> None:
    (repo / "double" / "1" / MODEL_FILE).write_bytes(b"not a model")
    assert newest_valid_version(repo, "double") is None


class _TritonModelException(Exception):
    pass


def load_runner(version_dir: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The version's `model.py` as Triton's Python stub runs it, with a stand-in for Triton's utils."""
    stub = types.ModuleType("triton_python_backend_utils")
    stub.TritonModelException = _TritonModelException  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", stub)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the runner prepends PYTHONPATH entries
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # keep this process's setting
    spec = importlib.util.spec_from_file_location(
        f"logad_runner_v{version_dir.name}", version_dir / RUNNER_FILE
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runner_args(repo: Path, version: int) -> dict[str, str]:
    config = {
        "name": "double",
        "input": [{"name": "x", "data_type": "TYPE_FP32"}],
        "output": [{"name": "y", "data_type": "TYPE_FP32"}],
    }
    return {
        "model_config": json.dumps(config),
        "model_repository": str(repo / "double"),
        "model_version": str(version),
    }


def test_triton_runner_checks_sha256_before_loading(
    repo: Path, monkeypatch: pytest.MonkeyPatch, jit_loads: list[str]
) -> None:
    tampered = repo / "double" / "2"
    assert (tampered / RUNNER_FILE).read_bytes() == RUNNER_SOURCE.read_bytes()
    runner = load_runner(tampered, monkeypatch).TritonPythonModel()
    with pytest.raises(_TritonModelException, match="does not match metadata"):
        runner.initialize(runner_args(repo, 2))
    assert jit_loads == []

    good = load_runner(repo / "double" / "1", monkeypatch).TritonPythonModel()
    good.initialize(runner_args(repo, 1))
    assert jit_loads == [str(repo / "double" / "1" / MODEL_FILE)]
    (y,) = good._run([np.array([[1.0, 2.0]], dtype=np.float32)])
    assert y.tolist() == [[2.0, 4.0]]
    digest = hashlib.sha256((repo / "double" / "1" / MODEL_FILE).read_bytes()).hexdigest()
    assert good.metadata["sha256"] == digest
