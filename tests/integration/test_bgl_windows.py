"""BGL through real Kafka, a real Faust worker and a real Triton: time windows classified by ProtoSiamese.

A small ProtoSiamese (BGL_2k + BGL_4k, 30 epochs: seconds) is published and loaded into Triton; the
first lines of BGL_10k are replayed with source `bgl`, a window source. Checks (issues 4 and 5):
- the windowed path sends one WINDOW_CLASS alert per window the served version classifies as an
  anomaly, naming that class and version, and none for the others: exactly the windows an offline
  pass with the same version flags, the last window too (it closes once the source is idle);
- each alert carries the raw lines of the window's last events, equal to the replayed lines at their
  coordinates, and the nodes they name (issue 17);
- against the BGL labels, almost every window holding alert lines is alerted and few normal ones.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.adapters.kafka import create_topics, pipeline_topics, replay_lines
from pipeline.adapters.triton import load_model
from pipeline.alerts import AlertKind
from pipeline.datasets.bgl import parse_bgl_line
from pipeline.deployment import load_template_set
from pipeline.formats import BGL
from pipeline.model_repository import load_version
from pipeline.parsing import Parser
from pipeline.presentation import format_alert
from pipeline.settings import Settings
from pipeline.tfidf import pad_windows
from pipeline.time_windows import TimedEvent, TimeWindower, Window, WindowSpec
from pipeline.training.episodic import EpisodicConfig
from pipeline.training.protosiamese import publish_bgl, train_bgl
from pipeline.window_classifier import window_key
from tests.support.pipeline_run import alerts_of
from tests.support.worker import Worker

pytestmark = pytest.mark.integration

# BGL_10k's first 1531 lines: its last 5-minute window ends with them and holds 4 KERNRTSP alert lines
# among 21, so the window that only idleness closes is an anomaly to alert.
REPLAYED_LINES = 1531
TRAIN_FILES = ("BGL_2k.log", "BGL_4k.log")


@pytest.fixture(scope="module")
def deployed(triton_server: Settings, data_dir: Path) -> int:
    """A ProtoSiamese version trained in seconds, published and serving in Triton."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the net is tiny: extra threads only contend for the 2 cores
    try:
        result = train_bgl(
            [data_dir / "bgl" / name for name in TRAIN_FILES],
            WindowSpec(300.0, 300.0),
            min_windows=2,
            episodic=EpisodicConfig(n_way=4, k_shot=2, q_query=4, epochs=30, always_include=0, seed=0),
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    published = publish_bgl(triton_server.model_repo, result)
    assert load_model(triton_server.triton_grpc_url, "protosiamese") == published.version
    return published.version


def _offline(repo: Path, version: int, lines: list[str]) -> tuple[list[Window], list[str]]:
    """Windows the lines close (labelled from the BGL alert field) and the version's class for each."""
    deployed = load_template_set(repo, "protosiamese", version)
    spec = deployed.require_window_spec()
    events = Parser(BGL, deployed.miner).parse("\n".join(lines).encode(), "bgl").events
    assert len(events) == len(lines)
    windower, closed = TimeWindower(spec), []
    for event, line in zip(events, lines, strict=True):
        assert event.timestamp is not None
        closed += windower.add(TimedEvent(event.timestamp, event.template_id, parse_bgl_line(line).alert))
    closed += windower.flush()  # the last window: the worker closes it when the source goes idle
    loaded = load_version(repo, "protosiamese", version)
    ids, counts = pad_windows([w.count_map() for w in closed])
    with torch.no_grad():
        index = loaded.module(torch.from_numpy(ids), torch.from_numpy(counts))[0][:, 0].tolist()
    names = loaded.metadata["class_names"]
    return closed, [names[i] for i in index]


def test_bgl_windows_are_classified_online(
    kafka_server: Settings,
    triton_server: Settings,
    data_dir: Path,
    deployed: int,
    unique: str,
    tmp_path: Path,
) -> None:
    lines = (data_dir / "bgl" / "BGL_10k.log").read_text().splitlines()[:REPLAYED_LINES]
    settings = kafka_server.isolated_run("bgl", unique).replace(
        model_repo=triton_server.model_repo,
        triton_grpc_url=triton_server.triton_grpc_url,
        inference_backend="triton",
        window_sources="bgl",
        window_idle_s=3.0,
        alert_raw_lines_timeout_s=20.0,
        state_dir=tmp_path,
    )
    create_topics(settings, pipeline_topics(settings))
    worker = Worker(settings, tmp_path / "worker.log").start()
    try:
        replay_lines(settings, [line.encode() for line in lines], settings.raw_logs_topic, "bgl", 50)
        worker.wait_drained(lines=len(lines), timeout_s=120.0)
        # The newest window closes once the source is idle on the ingest clock (ticks every 5 s).
        deadline = time.monotonic() + 60.0
        while worker.counter("logad_windows_open") and time.monotonic() < deadline:
            time.sleep(1.0)
        assert worker.counter("logad_windows_open") == 0
    finally:
        worker.stop()
    alerts = alerts_of(settings)

    assert {(a.kind, a.source, a.model, a.model_version) for a in alerts} == {
        (AlertKind.WINDOW_CLASS, "bgl", "protosiamese", deployed)
    }
    assert all(a.window and a.event_template == a.window[0] for a in alerts)
    streamed = {a.session_key: a.label for a in alerts}
    assert len(streamed) == len(alerts)  # one alert per window

    windows, classes = _offline(triton_server.model_repo, deployed, lines)
    expected = {
        window_key(w.start_s, w.end_s): name
        for w, name in zip(windows, classes, strict=True)
        if name != "normal"
    }
    assert streamed == expected

    # Raw lines: the window's last events, read back, each the replayed line at its coordinates (50
    # lines per message, one partition, BGL lines have no continuations); nodes from those lines.
    for alert in alerts:
        assert alert.note == "" and 1 <= len(alert.lines) <= 10 and alert.lines[-1].at == alert.raw
        texts = []
        for line in alert.lines:
            index = line.at.offset * 50 + line.at.line
            assert line.at.topic == settings.raw_logs_topic and line.text == lines[index], line
            texts.append(line.text)
        record = BGL.parse_line(texts[-1])
        assert alert.event_time is not None and alert.first_timestamp <= alert.event_time  # type: ignore[operator]
        assert record.field("node") in dict(alert.fields)["node"].split(",")
    print(format_alert(alerts[-1]))  # what `logad tail` shows (with -s)
    last = max(windows, key=lambda w: w.start_s)
    assert last.label != "normal" and window_key(last.start_s, last.end_s) in streamed  # the last one alerted

    keys = [window_key(w.start_s, w.end_s) for w in windows]
    abnormal = np.array([w.label != "normal" for w in windows])
    alerted = np.array([key in streamed for key in keys])
    recall, false_alarms = alerted[abnormal].mean(), alerted[~abnormal].mean()
    print(f"{len(windows)} windows, {abnormal.sum()} with alerts: recall {recall:.3f}, ", end="")
    print(f"share of normal windows alerted {false_alarms:.3f}")
    assert recall >= 0.9 and false_alarms <= 0.15
