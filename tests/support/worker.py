"""Run the real Faust worker (`agents.app`) as a subprocess for integration tests, and read its metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.adapters.faust_config import worker_command
from pipeline.adapters.kafka import consumer_lag
from pipeline.adapters.worker_progress import wait_drained
from pipeline.demo import worker_counter
from pipeline.infra.process import free_port
from pipeline.progress import DrainCheck, NotDrained
from pipeline.settings import Settings


class Worker:
    def __init__(self, settings: Settings, log_file: Path) -> None:
        self.settings = settings.replace(web_port=free_port())
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90.0) -> Worker:
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                worker_command(sys.executable),
                env=self.settings.to_env(os.environ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            if "Worker ready" in self.log_file.read_text(errors="replace"):
                return self
            time.sleep(0.5)
        raise AssertionError(f"worker not ready in {timeout_s}s:\n{self.log_tail()}")

    def counter(self, name: str) -> float:
        return worker_counter(self.settings.web_port, name)

    def wait_counter(self, name: str, at_least: float, timeout_s: float = 120.0) -> float:
        """Until the metric `name` reaches `at_least` (e.g. lines parsed, to act mid-replay)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (value := self.counter(name)) >= at_least:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            time.sleep(0.2)
        raise AssertionError(f"{name} below {at_least} after {timeout_s}s:\n{self.log_tail()}")

    def wait_drained(
        self, lines: int, timeout_s: float = 240.0, others: tuple[Worker, ...] = ()
    ) -> DrainCheck:
        """Until this worker (with `others` of its group) has read every raw-logs record through the
        topic's end offsets, handled at least `lines` lines (0 after a restart: the counters start
        over), read log-events through its end offsets, and closed every session
        (`pipeline.progress`). A paused or slow worker is waited for, not taken as done."""
        ports = [w.settings.web_port for w in (self, *others)]

        def died() -> str | None:
            for worker in (self, *others):
                if worker.proc is not None and worker.proc.poll() is not None:
                    return f"worker exited ({worker.proc.returncode})"
            return None

        try:
            return wait_drained(self.settings, ports, lines, timeout_s=timeout_s, problem=died)
        except NotDrained as exc:
            raise AssertionError(f"{exc}:\n{self.log_tail()}") from exc

    def committed_lag(self) -> dict[str, int]:
        """The group's lag by its committed offsets (0 everywhere after a graceful stop)."""
        topics = [self.settings.raw_logs_topic, self.settings.log_events_topic]
        return consumer_lag(self.settings, self.settings.app_id, topics)

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.kill() if kill else self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
