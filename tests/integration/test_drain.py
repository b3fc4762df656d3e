"""A run's "done" on a real broker and worker: a paused worker is waited for, never taken as done.

The demo once stopped its worker long before detection caught up and printed figures of a partial
run with exit 0. Here the worker is frozen (SIGSTOP) mid-run for several seconds, as a slow or
overloaded worker looks from outside: the drain helper the demo, the benchmark and these tests
share must report "not done, and how far" within a short bound, wait through the pause otherwise,
and the alerts read afterwards must give exactly the figures of offline detection.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from pipeline.adapters.kafka import replay_lines
from pipeline.adapters.worker_progress import wait_drained
from pipeline.demo import block_metrics
from pipeline.progress import NotDrained, Stage
from pipeline.settings import Settings
from tests.support.pipeline_run import alerts_of, offline_result, run_settings
from tests.support.worker import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINES = 20_000
PAUSE_S = 8.0


def test_drain_waits_for_a_paused_worker_and_figures_equal_offline(
    kafka_server: Settings,
    triton_server: Settings,
    hdfs: tuple[list[str], frozenset[str]],
    deployed: int,
    unique: str,
    tmp_path: Path,
) -> None:
    lines = hdfs[0][:LINES]
    anomalous = hdfs[1]
    settings = run_settings(kafka_server, triton_server, unique, tmp_path)
    worker = Worker(settings, tmp_path / "worker.log").start()
    assert worker.proc is not None
    pid = worker.proc.pid
    resume = threading.Timer(PAUSE_S, os.kill, (pid, signal.SIGCONT))
    try:
        sent = replay_lines(
            settings,
            [line.encode() for line in lines],
            settings.raw_logs_topic,
            "hdfs",
            lines_per_message=100,
        )
        # Mid-run: some lines parsed, and sessions (10 s timeout) certainly still open.
        worker.wait_counter("logad_lines_total", 1)
        os.kill(pid, signal.SIGSTOP)
        paused_at = time.monotonic()
        resume.start()

        # A bound that passes while the worker is frozen: not done, and it says how far it got.
        with pytest.raises(NotDrained) as bounded:
            wait_drained(settings, [worker.settings.web_port], sent, timeout_s=2.0)
        assert bounded.value.check.stage is not Stage.DRAINED
        assert f"/ {sent:,} sent" in str(bounded.value) and "sessions open" in str(bounded.value)

        check = worker.wait_drained(lines=sent, timeout_s=240)
        waited_s = time.monotonic() - paused_at
    finally:
        resume.cancel()
        os.kill(pid, signal.SIGCONT)  # never leave a frozen worker behind
        worker.stop()
    assert check.drained and check.sessions_open == 0 and check.lines_handled >= sent
    assert waited_s >= PAUSE_S, f"the helper returned {waited_s:.1f}s after the pause began"

    alerts = alerts_of(settings)
    offline = offline_result(lines, triton_server, deployed, "hdfs")
    streamed = {a.session_key for a in alerts}
    blocks = sorted(offline.sessions)
    assert streamed == set(offline.flagged_sessions), sorted(streamed ^ offline.flagged_sessions)[:10]
    assert block_metrics(streamed, anomalous, blocks) == block_metrics(
        set(offline.flagged_sessions), anomalous, blocks
    )
