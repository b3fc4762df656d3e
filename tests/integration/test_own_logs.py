"""Bring your own logs: formats the project has no code for, from a raw file to alerts (issue 15).

Two made-up systems, described only by the profiles of the shipped `deploy/formats/example.toml`:
- `shop` (`pipeline.datasets.shop`): a header string, an amount mask, ISO timestamps, the order id
  header field as session key, stack traces as continuation lines. `logad train deeplog --logs F
  --format shop --name shop_deeplog` learns templates, sessions and the model;
- `gateway` (`tests.support.gateway_logs`): no session key, so time windows; `logad train
  protosiamese --logs F --format gateway --labels F --name gateway_windows` learns window classes
  from labelled lines.
Both versions carry their profile; one real worker with `LOGAD_FORMATS` (the file's `[sources]`)
parses what `logad replay` sends under each source and detects on it:
- shop alerts equal offline detection of the same version, name exactly the declined orders (an
  event never seen in normal operation), and carry the whole multi-line record as the raw line;
- gateway window alerts equal offline classification of the same windows by the same version, the
  last window too (closed when the source goes idle), and match the windows' true classes.
Small on purpose (seconds of training each, 517 + 180 replayed records) on the session's broker.
The worker scores in-process (`LOGAD_INFERENCE_BACKEND=torchscript`, the same TorchScript files):
loading two python-backend models into Triton cost ~25 s here, and serving through Triton is what
`test_end_to_end.py` and `test_bgl_windows.py` check.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import torch

from pipeline.alerts import AlertKind
from pipeline.cli import main
from pipeline.datasets.shop import shop_logs
from pipeline.deployment import load_template_set
from pipeline.model_repository import latest_version, load_version
from pipeline.offline import detect_offline
from pipeline.parsing import Parser
from pipeline.settings import Settings
from pipeline.tfidf import pad_windows
from pipeline.time_windows import TimedEvent, time_windows
from pipeline.window_classifier import window_key
from tests.support.gateway_logs import gateway_log
from tests.support.pipeline_run import alerts_of, run_settings
from tests.support.worker import Worker

pytestmark = pytest.mark.integration

PROFILES = Path(__file__).resolve().parents[2] / "deploy" / "formats" / "example.toml"
# Their own names, as a deployment would serve a source's models beside the built-in ones.
SESSION_MODEL = "shop_deeplog"
WINDOW_MODEL = "gateway_windows"


def _train(repo: Path, args: list[str]) -> int:
    """`logad train ... --no-load` into `repo`; the new version's number."""
    threads = torch.get_num_threads()
    try:
        code = main(["--model-repo", str(repo), *args, "--no-load"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0  # trained and published
    name = args[args.index("--name") + 1]
    version = latest_version(repo, name)
    assert version is not None
    return version


def _offline_windows(repo: Path, version: int, lines: list[str]) -> dict[str, str]:
    """Window key -> class for the windows the version classifies as an anomaly, cut and classified
    offline from the same lines (the last window included, as idleness closes it online)."""
    deployed = load_template_set(repo, WINDOW_MODEL, version)
    events = Parser(deployed.log_format, deployed.miner).parse("\n".join(lines).encode(), "gateway").events
    assert len(events) == len(lines)
    windows = time_windows(
        [TimedEvent(e.timestamp or 0.0, e.template_id) for e in events], deployed.require_window_spec()
    )
    loaded = load_version(repo, WINDOW_MODEL, version)
    ids, counts = pad_windows([w.count_map() for w in windows])
    with torch.no_grad():
        index = loaded.module(torch.from_numpy(ids), torch.from_numpy(counts))[0][:, 0].tolist()
    names = loaded.metadata["class_names"]
    return {
        window_key(w.start_s, w.end_s): names[i]
        for w, i in zip(windows, index, strict=True)
        if names[i] != "normal"
    }


def test_new_formats_from_raw_file_to_alerts(
    kafka_server: Settings,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop_train, shop_test = tmp_path / "shop-train.log", tmp_path / "shop-test.log"
    shop_train.write_text(shop_logs(400, 0.0, seed=1).text())
    test = shop_logs(100, 0.1, seed=2, first_order=1000)
    shop_test.write_text(test.text())
    assert 5 <= len(test.anomalous) <= 20
    gateway_lines, gateway_labels, _ = gateway_log(24, seed=0)
    gateway_train, label_file = tmp_path / "gateway-train.log", tmp_path / "gateway-labels.csv"
    gateway_train.write_text("\n".join(gateway_lines) + "\n")
    label_file.write_text("".join(f"{n},{c}\n" for n, c in gateway_labels.items()))
    gateway_test, _, minute_kinds = gateway_log(12, seed=1, hour=11)
    gateway_test_file = tmp_path / "gateway-test.log"
    gateway_test_file.write_text("\n".join(gateway_test) + "\n")

    # A person checks the profiles first: every shop record has the header but its stack traces.
    for source, path in (("shop", shop_test), ("gateway", gateway_test_file)):
        assert (
            main(["formats", "check", f"{PROFILES}:{source}", str(path), "--max-failed-fraction", "0.1"]) == 0
        )

    repo = tmp_path / "model-repo"
    started = time.monotonic()
    shop_version = _train(
        repo,
        ["train", "deeplog", "--logs", str(shop_train), "--format", f"{PROFILES}:shop",
         "--name", SESSION_MODEL, "--epochs", "2", "--threads", "1", "--curves", str(tmp_path / "c.png")],
    )  # fmt: skip
    window_version = _train(
        repo,
        ["train", "protosiamese", "--logs", str(gateway_train), "--format", f"{PROFILES}:gateway",
         "--labels", str(label_file), "--name", WINDOW_MODEL, "--window-s", "60", "--step-s", "60",
         "--epochs", "15", "--n-way", "3", "--k-shot", "2", "--q-query", "2"],
    )  # fmt: skip
    print(f"trained and published both models in {time.monotonic() - started:.1f}s")

    settings = run_settings(
        kafka_server,
        Settings(model_repo=repo),
        unique,
        tmp_path,
        inference_backend="torchscript",
        detection_model=SESSION_MODEL,
        window_model=WINDOW_MODEL,
        window_sources="gateway",
        window_idle_s=3.0,
        formats=str(PROFILES),
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
        assert main(["replay", str(shop_test), "--source", "shop", "--lines-per-message", "50"]) == 0
        assert (
            main(["replay", str(gateway_test_file), "--source", "gateway", "--lines-per-message", "50"]) == 0
        )
        records = len(test.records) + len(gateway_test)
        worker.wait_drained(lines=records, timeout_s=120.0)
        deadline = time.monotonic() + 60.0  # the last window closes once the source is idle (ticks: 5 s)
        while worker.counter("logad_windows_open") and time.monotonic() < deadline:
            time.sleep(0.5)
        print(f"replayed and drained in {time.monotonic() - started:.1f}s")
        assert worker.counter("logad_windows_open") == 0
        assert worker.counter("logad_lines_total") == records  # multi-line records once each
        assert worker.counter("logad_dead_letters_total") == 0
    finally:
        worker.stop()
    alerts = alerts_of(settings)
    shop_alerts = [a for a in alerts if a.source == "shop"]
    window_alerts = [a for a in alerts if a.source == "gateway"]
    assert len(shop_alerts) + len(window_alerts) == len(alerts)

    offline = asyncio.run(detect_offline(test.records, repo, SESSION_MODEL, shop_version, "shop"))
    assert offline.sessions == {f"ORD-{n:05d}" for n in range(1000, 1100)}
    assert offline.flagged_sessions == test.anomalous
    streamed = {(a.session_key, a.kind, a.position) for a in shop_alerts}
    assert streamed == {(a.session_key, a.kind, a.position) for a in offline.alerts}
    assert {a.session_key for a in shop_alerts} == test.anomalous
    assert {(a.model, a.model_version) for a in shop_alerts} == {(SESSION_MODEL, shop_version)}
    for alert in shop_alerts:
        assert alert.kind is AlertKind.OOV_EVENT
        assert alert.event_template.startswith("payment declined by bank with code <NUM> at com.shop")
        offending = alert.lines[-1].text
        assert f"payment[{alert.session_key}] ERROR" in offending and offending.count("\n") == 2
        assert dict(alert.fields) == {"service": "payment", "level": "ERROR"}

    assert {(a.kind, a.model, a.model_version) for a in window_alerts} == {
        (AlertKind.WINDOW_CLASS, WINDOW_MODEL, window_version)
    }
    windows = {a.session_key: a.label for a in window_alerts}
    assert len(windows) == len(window_alerts)  # one alert per window
    assert windows == _offline_windows(repo, window_version, gateway_test)
    truth = {f"{minute}": kind for minute, kind in enumerate(minute_kinds) if kind != "normal"}
    found = {f"{int(float(key.split('-')[0]) // 60) % 60}": label for key, label in windows.items()}
    assert sum(found.get(m) == k for m, k in truth.items()) >= 0.9 * len(truth), (found, truth)
