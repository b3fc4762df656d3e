"""Run the real Faust worker (`agents.app`) as a subprocess for integration tests, and read its metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.adapters.faust_config import worker_command
from pipeline.adapters.kafka import consumer_lag
from pipeline.demo import worker_counter
from pipeline.infra.process import free_port
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

    def wait_drained(self, lines: int, timeout_s: float = 240.0, quiet_s: float = 3.0) -> None:
        """Until every line is parsed or dead-lettered, nothing waits on this worker's partitions
        (its read positions: faust may not commit a partition that came back after a rebalance),
        and all sessions have closed."""
        deadline = time.monotonic() + timeout_s
        stable_since = None
        while time.monotonic() < deadline:
            handled = self.counter("logad_lines_total") + self.counter("logad_dead_letters_total")
            behind = self.counter("logad_records_behind")
            open_now = self.counter("logad_sessions_open")
            if handled >= lines and behind == 0 and open_now == 0:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= quiet_s:
                    return
            else:
                stable_since = None
            time.sleep(1.0)
        state = f"handled {handled:.0f}/{lines}, records behind {behind:.0f}, sessions open {open_now:.0f}"
        raise AssertionError(f"pipeline did not drain in {timeout_s}s ({state}):\n{self.log_tail()}")

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
