"""A local single-node Apache Kafka (KRaft) broker, its jars resolved by Maven from Maven Central.

Jars are cached under `~/.cache/logad/kafka-<version>/libs` (override: LOGAD_CACHE_DIR), so only the
first start needs the network. State (data, pid, log) lives in `<state_dir>/kafka/`.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template

from pipeline.errors import InfrastructureError, SetupError
from pipeline.infra import DEPLOY_DIR
from pipeline.infra.process import ManagedProcess, port_open, require_port_free, wait_until

log = logging.getLogger(__name__)

KAFKA_DEPLOY = DEPLOY_DIR / "kafka"
HOST = "127.0.0.1"


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", (KAFKA_DEPLOY / "pom.xml").read_text())
    if not match:
        raise SetupError(f"kafka: no <kafka.version> in {KAFKA_DEPLOY / 'pom.xml'}")
    return match.group(1)


def default_cache_dir(env: dict[str, str] | None = None) -> Path:
    env = env if env is not None else dict(os.environ)
    root = env.get("LOGAD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "logad")
    return Path(root)


@dataclass(frozen=True)
class LocalKafka:
    state_dir: Path
    port: int = 9092
    controller_port: int = 9093
    partitions: int = 4
    cache_dir: Path = Path.home() / ".cache" / "logad"
    heap_mb: int = 768

    @property
    def home(self) -> Path:
        return Path(self.state_dir) / "kafka"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("Kafka", self.home / "kafka.pid", self.home / "kafka.log")

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def libs_dir(self) -> Path:
        return Path(self.cache_dir) / f"kafka-{kafka_version()}" / "libs"

    def ensure_jars(self) -> Path:
        """Resolve the pinned broker's jars with Maven once; later calls reuse the cache."""
        marker = self.libs_dir / ".complete"
        if marker.exists():
            return self.libs_dir
        if shutil.which("java") is None:
            raise SetupError(
                "kafka: `java` not found; install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre)"
            )
        if shutil.which("mvn") is None:
            raise SetupError(
                "kafka: `mvn` not found; install Maven (e.g. apt-get install maven) to fetch Kafka's jars"
            )
        self.libs_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            "resolving Kafka %s jars from Maven Central into %s (first run only)",
            kafka_version(),
            self.libs_dir,
        )
        cmd = [
            "mvn", "-q", "-B", "-f", str(KAFKA_DEPLOY / "pom.xml"), "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs_dir}", "-DincludeScope=runtime",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            last = output[-1] if output else f"mvn exited with {done.returncode}"
            raise SetupError(
                f"kafka: Maven could not resolve Kafka's jars (is Maven Central reachable?): {last}"
            )
        marker.write_text(kafka_version())
        return self.libs_dir

    def _java(self, main: str, *args: str, heap_mb: int = 256) -> list[str]:
        return [
            "java", f"-Xmx{heap_mb}m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_DEPLOY / 'log4j2.yaml'}",
            "-cp", f"{self.libs_dir}/*", main, *args,
        ]  # fmt: skip

    def _render_config(self) -> Path:
        template = Template((KAFKA_DEPLOY / "server.properties.template").read_text())
        config = template.substitute(
            host=HOST,
            port=self.port,
            controller_port=self.controller_port,
            data_dir=self.home / "data",
            partitions=self.partitions,
        )
        path = self.home / "server.properties"
        path.write_text(config)
        return path

    def _format_storage(self, config: Path) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding.
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        done = subprocess.run(
            # `--cluster-id=<id>` in one argument: an id may start with "-", which would read as an option.
            self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cid}", "-c", str(config)),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise InfrastructureError(f"kafka: formatting storage failed: {done.stdout}{done.stderr}".strip())

    def start(self, timeout_s: float = 60.0) -> str:
        """Start the broker (formatting storage the first time) and wait until it accepts connections."""
        if self.process.running():
            if port_open(HOST, self.port):
                return f"Kafka already running (pid {self.process.pid()}) at {self.bootstrap_servers}"
            raise InfrastructureError(
                f"kafka: process {self.process.pid()} runs but port {self.port} is closed"
            )
        require_port_free(HOST, self.port, "kafka", "LOGAD_KAFKA_PORT")
        require_port_free(HOST, self.controller_port, "kafka controller", "LOGAD_KAFKA_CONTROLLER_PORT")
        self.ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        config = self._render_config()
        self._format_storage(config)
        self.process.start(self._java("kafka.Kafka", str(config), heap_mb=self.heap_mb))

        def ready() -> bool:
            if (tail := self.process.exited_early()) is not None:
                raise InfrastructureError(f"kafka: broker exited during start-up; last log lines:\n{tail}")
            return port_open(HOST, self.port)

        wait_until(ready, timeout_s, f"kafka at {self.bootstrap_servers}")
        return f"Kafka {kafka_version()} ready at {self.bootstrap_servers} (pid {self.process.pid()})"

    def stop(self) -> str:
        return "Kafka stopped" if self.process.stop() else "Kafka was not running"

    def status(self) -> str:
        pid = self.process.pid()
        if pid is None:
            return "Kafka: not running"
        state = "ready" if port_open(HOST, self.port) else "starting or unhealthy"
        return f"Kafka: {state} at {self.bootstrap_servers} (pid {pid})"
