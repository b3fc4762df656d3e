"""A local `tritonserver` (from the nvidia-pytriton wheel) with its Python backend, on CPU.

The server runs in explicit model-control mode on a model repository. Its Python backend needs a
stub built for this interpreter's version and the environment holding torch; both are arranged here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import site
import sys
import sysconfig
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InfrastructureError, SetupError
from pipeline.infra import PROJECT_ROOT
from pipeline.infra.process import ManagedProcess, port_open, require_port_free, wait_until
from pipeline.model_repository import list_versions, newest_valid_version

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


def pytriton_dir() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise SetupError(
            "triton: the nvidia-pytriton package (which ships tritonserver) is not installed; "
            "run `pip install nvidia-pytriton` (Linux x86-64 only)"
        ) from exc
    return Path(pytriton.__file__).parent / "tritonserver"


def server_binary() -> Path:
    binary = pytriton_dir() / "bin" / "tritonserver"
    if not binary.is_file():
        raise SetupError(f"triton: {binary} is missing; reinstall nvidia-pytriton")
    return binary


@dataclass(frozen=True)
class LocalTriton:
    model_repo: Path
    state_dir: Path
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    torch_threads: int = 1

    @property
    def home(self) -> Path:
        return Path(self.state_dir) / "triton"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("Triton", self.home / "triton.pid", self.home / "triton.log")

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    def _backend_dir(self) -> Path:
        """A backends/python folder with the stub matching this interpreter's Python version."""
        source = pytriton_dir()
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = source / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.is_file():
            raise SetupError(f"triton: nvidia-pytriton has no Python backend stub for Python {version}")
        target = self.home / "backends" / "python"
        target.mkdir(parents=True, exist_ok=True)
        for src, name in (
            (source / "backends" / "python" / "libtriton_python.so", "libtriton_python.so"),
            (
                source / "backends" / "python" / "triton_python_backend_utils.py",
                "triton_python_backend_utils.py",
            ),
            (stub, "triton_python_backend_stub"),
        ):
            dst = target / name
            if not dst.exists() or dst.stat().st_size != src.stat().st_size:
                shutil.copy2(src, dst)
        return target.parent

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [
            str(Path(sysconfig.get_config_var("LIBDIR") or "")),
            str(pytriton_dir().parent.parent / "nvidia_pytriton.libs"),
        ]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
        paths = [*site.getsitepackages(), str(PROJECT_ROOT)]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
        env["LOGAD_TRITON_TORCH_THREADS"] = str(self.torch_threads)
        return env

    def servable_models(self) -> list[str]:
        """Models in the repository with at least one version whose checksum verifies."""
        repo = Path(self.model_repo)
        if not repo.is_dir():
            return []
        names = [p.name for p in sorted(repo.iterdir()) if (p / "config.pbtxt").is_file()]
        return [n for n in names if list_versions(repo, n) and newest_valid_version(repo, n) is not None]

    def start(self, timeout_s: float = 120.0) -> str:
        if self.process.running():
            if self.ready():
                return f"Triton already running (pid {self.process.pid()}), gRPC at {self.grpc_url}"
            raise InfrastructureError(
                f"triton: process {self.process.pid()} runs but is not ready; see {self.process.log_file}"
            )
        for port, env_name in (
            (self.http_port, "LOGAD_TRITON_HTTP_PORT"),
            (self.grpc_port, "LOGAD_TRITON_GRPC_PORT"),
            (self.metrics_port, "LOGAD_TRITON_METRICS_PORT"),
        ):
            require_port_free(HOST, port, "triton", env_name)
        binary = server_binary()
        Path(self.model_repo).mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            f"--model-repository={Path(self.model_repo).resolve()}",
            f"--backend-directory={self._backend_dir()}",
            "--model-control-mode=explicit",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--exit-on-error=false",
            "--strict-readiness=false",
            "--log-verbose=0",
        ]
        argv += [f"--load-model={name}" for name in self.servable_models()]
        self.process.start(argv, env=self._env())

        def up() -> bool:
            if (tail := self.process.exited_early()) is not None:
                raise InfrastructureError(f"triton: server exited during start-up; last log lines:\n{tail}")
            return self.ready()

        wait_until(up, timeout_s, f"triton at {self.grpc_url}")
        return f"Triton ready: gRPC {self.grpc_url}, HTTP {HOST}:{self.http_port} (pid {self.process.pid()})"

    def ready(self) -> bool:
        return self._http("GET", "/v2/health/ready") is not None

    def _http(self, method: str, path: str, body: bytes | None = None) -> bytes | None:
        if not port_open(HOST, self.http_port, 0.2):
            return None
        request = urllib.request.Request(f"http://{HOST}:{self.http_port}{path}", data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return bytes(response.read())
        except (urllib.error.URLError, OSError):
            return None

    def model_states(self) -> list[dict[str, str]]:
        raw = self._http("POST", "/v2/repository/index", b"{}")
        return list(json.loads(raw)) if raw else []

    def stop(self) -> str:
        return "Triton stopped" if self.process.stop() else "Triton was not running"

    def status(self) -> str:
        pid = self.process.pid()
        if pid is None:
            return "Triton: not running"
        models = ", ".join(
            f"{m.get('name')}:{m.get('version', '-')}:{m.get('state', '?')}" for m in self.model_states()
        )
        state = "ready" if self.ready() else "starting or unhealthy"
        return f"Triton: {state}, gRPC {self.grpc_url} (pid {pid}); models: {models or 'none loaded'}"
