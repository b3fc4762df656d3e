"""Bring your own logs: a format the project has no code for, from a raw file to alerts (issue 15).

The order-service lines of `pipeline.datasets.shop` are described only by a profiles file (header
string, an amount mask, ISO timestamps, the order id header field as session key, stack traces as
continuation lines). Then, as a user would:
- `logad train deeplog --logs FILE --format FILE.toml:shop --name shop_deeplog` learns templates,
  sessions and the model, publishes the version with the profile inside and loads it into Triton;
- a real worker with `LOGAD_FORMATS=deploy/formats/example.toml` (source `shop` -> profile `shop`)
  and that model parses the test file `logad replay` sends, and detects on it;
- the alerts equal offline detection of the same version, name exactly the declined orders (their
  event never occurs in normal operation), and carry the whole multi-line record as the raw line.
Small on purpose (2,100 training lines, 2 epochs, 520 replayed records): it rides on the session's
broker and Triton.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pipeline.alerts import AlertKind
from pipeline.cli import main
from pipeline.datasets.shop import shop_logs
from pipeline.offline import detect_offline
from pipeline.settings import Settings
from tests.support.pipeline_run import alerts_of, run_settings
from tests.support.worker import Worker

pytestmark = pytest.mark.integration

EXAMPLE_PROFILES = Path(__file__).resolve().parents[2] / "deploy" / "formats" / "example.toml"
MODEL = "shop_deeplog"  # its own name: the session's `deeplog` versions stay as other tests left them


def test_new_format_from_raw_file_to_alerts(
    kafka_server: Settings,
    triton_server: Settings,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profiles = EXAMPLE_PROFILES  # the shipped example file: its `shop` profile and source
    train_file = tmp_path / "shop-train.log"
    train_file.write_text(shop_logs(400, 0.0, seed=1).text())
    test = shop_logs(100, 0.1, seed=2, first_order=1000)
    assert 5 <= len(test.anomalous) <= 20

    # A person checks the profile first: every test record has the header but the stack traces.
    test_file = tmp_path / "shop-test.log"
    test_file.write_text(test.text())
    assert main(["formats", "check", f"{profiles}:shop", str(test_file), "--max-failed-fraction", "0.1"]) == 0

    started = time.monotonic()
    code = main(
        [
            "--model-repo",
            str(triton_server.model_repo),
            "--triton-url",
            triton_server.triton_grpc_url,
            "train",
            "deeplog",
            "--logs",
            str(train_file),
            "--format",
            f"{profiles}:shop",
            "--name",
            MODEL,
            "--epochs",
            "2",
            "--threads",
            "1",
            "--curves",
            str(tmp_path / "curves.png"),
        ]
    )
    assert code == 0  # trained, published and loaded into Triton
    print(f"trained, published and loaded in {time.monotonic() - started:.1f}s")
    version = max(int(p.name) for p in (triton_server.model_repo / MODEL).iterdir() if p.name.isdigit())

    settings = run_settings(
        kafka_server,
        triton_server,
        unique,
        tmp_path,
        detection_model=MODEL,
        formats=str(profiles),
        parameter_model="",
        session_timeout_s=3.0,  # sessions close (and alert) 3 s of ingest time after their last line
        alert_raw_lines_timeout_s=20.0,
    )
    started = time.monotonic()
    worker = Worker(settings, tmp_path / "worker.log").start()
    print(f"worker ready in {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    try:
        # As a user would; replay keeps a declined payment's trace lines in its record's message.
        for name, value in settings.to_env({}).items():
            monkeypatch.setenv(name, value)
        assert main(["replay", str(test_file), "--source", "shop", "--lines-per-message", "50"]) == 0
        worker.wait_drained(lines=len(test.records), timeout_s=120.0)
        print(f"replayed and drained in {time.monotonic() - started:.1f}s")
        assert worker.counter("logad_lines_total") == len(test.records)  # multi-line records once each
        assert worker.counter("logad_dead_letters_total") == 0
    finally:
        worker.stop()
    alerts = alerts_of(settings)

    offline = asyncio.run(detect_offline(test.records, triton_server.model_repo, MODEL, version, "shop"))
    assert offline.sessions == {f"ORD-{n:05d}" for n in range(1000, 1100)}
    assert offline.flagged_sessions == test.anomalous
    streamed = {(a.session_key, a.kind, a.position) for a in alerts}
    assert streamed == {(a.session_key, a.kind, a.position) for a in offline.alerts}
    assert {a.session_key for a in alerts} == test.anomalous
    assert {(a.source, a.model, a.model_version) for a in alerts} == {("shop", MODEL, version)}
    for alert in alerts:
        assert alert.kind is AlertKind.OOV_EVENT
        assert alert.event_template.startswith("payment declined by bank with code <NUM> at com.shop")
        offending = alert.lines[-1].text
        assert f"payment[{alert.session_key}] ERROR" in offending and offending.count("\n") == 2
        assert dict(alert.fields) == {"service": "payment", "level": "ERROR"}
