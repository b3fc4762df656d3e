"""Online time windows for session-less sources: routing, closing, one batched call, alerts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from pipeline.alerts import AlertKind, RawCoordinates, alert_id
from pipeline.errors import InferenceError
from pipeline.records import SourceOffset
from pipeline.scoring import WindowClassBatch, WindowClassScores
from pipeline.settings import Settings
from pipeline.time_windows import WindowSpec
from pipeline.window_classifier import WindowClassifier, window_key
from pipeline.window_detection import WindowDetector

TEMPLATES = {1: "instruction cache parity error corrected", 2: "generating core.<*>", 5: "data TLB error"}
T0 = 1_117_838_700.0  # a BGL epoch second on a 300 s boundary: keys must keep all its digits
TUMBLING = WindowSpec(300.0, 300.0)


@dataclass(frozen=True)
class Ev:
    source: str
    timestamp: float | None
    template_id: int
    session_key: str = ""


class FakeClassScorer:
    """Class 1 ("KERNDTLB") when template 5 occurs in the window, else class 0 ("normal")."""

    def __init__(self, version: int = 3) -> None:
        self.version = version
        self.calls: list[int] = []

    async def score(self, batch: WindowClassBatch) -> WindowClassScores:
        self.calls.append(len(batch))
        hit = (batch.template_ids == 5).any(axis=1)
        distances = np.stack([np.where(hit, 3.0, 0.0), np.where(hit, 1.0, 4.0)], axis=1).astype(np.float32)
        index = hit.astype(np.int64).reshape(-1, 1)
        return WindowClassScores(index, distances, ("normal", "KERNDTLB"), "protosiamese", self.version)


class Spec:
    """The deployed spec, changeable by a test (as a newly published version would)."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.asked = 0

    def __call__(self) -> WindowSpec:
        self.asked += 1
        return self.spec


def make(
    spec: WindowSpec = TUMBLING, sources: tuple[str, ...] = ("bgl",)
) -> tuple[WindowDetector, FakeClassScorer, Spec]:
    scorer, deployed = FakeClassScorer(), Spec(spec)
    return WindowDetector(WindowClassifier(scorer, TEMPLATES), deployed, sources), scorer, deployed


def test_split_routes_window_sources_and_keeps_order() -> None:
    detector, _, _ = make(sources=("bgl", "bgl-2"))
    events = [
        Ev("hdfs", 1.0, 1, "blk_1"),
        Ev("bgl", 2.0, 1),
        Ev("bgl-2", 3.0, 5),
        Ev("hdfs", 4.0, 2, "blk_2"),
    ]
    sessions, windowed = detector.split(events)
    assert [e.timestamp for e in sessions] == [1.0, 4.0]
    assert [e.timestamp for e in windowed] == [2.0, 3.0]


def test_tumbling_windows_close_on_a_later_event_and_abnormal_ones_alert_in_one_call() -> None:
    detector, scorer, _ = make()
    first = [Ev("bgl", T0 + 1, 1), Ev("bgl", T0 + 2, 1), Ev("bgl", T0 + 310, 5), Ev("bgl", T0 + 320, 2)]
    result = asyncio.run(detector.process(first))
    # Only [T0, T0+300) is closed (by the event at T0+310); it is normal: scored, no alert.
    assert (result.closed, result.alerts, scorer.calls) == (1, (), [1])
    assert detector.open_windows == 1

    result = asyncio.run(detector.process([Ev("bgl", T0 + 2000, 1)]))
    (alert,) = result.alerts
    assert scorer.calls == [1, 1]
    assert (alert.kind, alert.label, alert.model, alert.model_version) == (
        AlertKind.WINDOW_CLASS,
        "KERNDTLB",
        "protosiamese",
        3,
    )
    assert alert.session_key == "1117839000-1117839300"
    assert (alert.first_timestamp, alert.last_timestamp) == (T0 + 300, T0 + 600)
    # Top templates by count (ties: lower id first); the most frequent one is the alert's template.
    assert alert.window == ("generating core.<*>", "data TLB error")
    assert alert.event_template_id == 2
    assert alert.alert_id == alert_id("bgl", alert.session_key, AlertKind.WINDOW_CLASS)
    assert alert.score == pytest.approx(1 / (1 + np.exp(-2.0)))


def test_windows_of_one_batch_and_of_several_sources_share_one_call() -> None:
    detector, scorer, _ = make(sources=("bgl", "bgl-2"))
    events = [
        Ev("bgl", T0, 5),
        Ev("bgl-2", T0, 1),
        Ev("bgl", T0 + 300, 1),
        Ev("bgl", T0 + 600, 5),
        Ev("bgl-2", T0 + 900, 5),
        Ev("bgl", T0 + 900, 1),
    ]
    result = asyncio.run(detector.process(events))
    assert scorer.calls == [4]  # bgl: 3 windows closed, bgl-2: 1
    assert sorted((a.source, a.first_timestamp) for a in result.alerts) == [("bgl", T0), ("bgl", T0 + 600)]


def test_sliding_windows_alert_every_window_that_holds_the_anomaly() -> None:
    detector, _, _ = make(WindowSpec(600.0, 300.0))
    events = [Ev("bgl", T0 + 10, 1), Ev("bgl", T0 + 400, 5), Ev("bgl", T0 + 1300, 1)]
    result = asyncio.run(detector.process(events))
    # T0+400 lies in [T0, T0+600) and [T0+300, T0+900); both closed by T0+1300, both abnormal.
    assert sorted(a.first_timestamp for a in result.alerts) == [T0, T0 + 300]
    assert result.closed == 3  # also [T0-300, T0+300), normal


def test_adjacent_epoch_windows_get_distinct_alert_ids() -> None:
    detector, _, _ = make()
    events = [Ev("bgl", T0 + 300 * i, 5) for i in range(4)]
    alerts = asyncio.run(detector.process(events)).alerts
    assert len(alerts) == 3 and len({a.alert_id for a in alerts}) == 3
    assert window_key(60.0, 120.0) == "60-120" and window_key(0.25, 1e9) == "0.25-1000000000"


def test_event_without_timestamp_is_rejected_not_windowed() -> None:
    detector, scorer, _ = make()
    result = asyncio.run(detector.process([Ev("bgl", None, 5), Ev("bgl", T0, 1)]))
    ((event, reason),) = result.rejected
    assert event.timestamp is None and "timestamp" in reason
    assert detector.open_windows == 1 and scorer.calls == []


def test_late_events_are_dropped_and_counted() -> None:
    detector, _, _ = make()
    asyncio.run(detector.process([Ev("bgl", T0 + 10, 1), Ev("bgl", T0 + 400, 1)]))
    result = asyncio.run(detector.process([Ev("bgl", T0 + 20, 5)]))  # its window closed already
    assert (result.closed, result.alerts, detector.late_events) == (0, (), 1)


def test_a_new_spec_drops_open_windows() -> None:
    detector, scorer, deployed = make()
    asyncio.run(detector.process([Ev("bgl", T0 + 10, 5)]))
    deployed.spec = WindowSpec(60.0, 60.0)
    result = asyncio.run(detector.process([Ev("bgl", T0 + 100, 1), Ev("bgl", T0 + 200, 1)]))
    # The abnormal 300 s window is gone; only the new 60 s window [T0+60, T0+120) closed.
    assert result.alerts == () and result.closed == 1 and scorer.calls == [1]


def test_flush_closes_the_open_windows() -> None:
    detector, _, _ = make()
    asyncio.run(detector.process([Ev("bgl", T0 + 10, 5)]))
    result = asyncio.run(detector.flush())
    assert [a.first_timestamp for a in result.alerts] == [T0] and detector.open_windows == 0


@dataclass(frozen=True)
class KafkaEv(Ev):
    """An event as it arrives from Kafka: where its line lies and when it was produced (ingest)."""

    raw: SourceOffset = field(default_factory=SourceOffset)


def kafka_events(times: list[float], template_id: int, ingest: float, first_offset: int = 0) -> list[KafkaEv]:
    return [
        KafkaEv(
            "bgl", t, template_id, raw=SourceOffset("raw-logs", 3, first_offset + i // 2, i % 2, ingest + i)
        )
        for i, t in enumerate(times)
    ]


def test_window_alert_carries_its_last_raw_positions_and_newest_event_time() -> None:
    detector, _, _ = make()
    events = kafka_events([T0 + i for i in range(12)], 5, ingest=1000.0)
    asyncio.run(detector.process(events))
    (alert,) = asyncio.run(detector.flush()).alerts
    # The last 10 of its 12 events, oldest first; the newest is the alert's record and its time.
    expected = [RawCoordinates("raw-logs", 3, i // 2, i % 2) for i in range(2, 12)]
    assert [line.at for line in alert.lines] == expected and all(line.text is None for line in alert.lines)
    assert alert.raw == expected[-1] and alert.event_time == T0 + 11
    assert (alert.first_timestamp, alert.last_timestamp) == (T0, T0 + 300)


def test_last_window_closes_when_its_source_is_idle_on_the_ingest_clock() -> None:
    detector, scorer, _ = make()
    detector.idle_s = 30.0
    asyncio.run(detector.process(kafka_events([T0 + 1, T0 + 2], 5, ingest=1000.0)))  # ingested 1000, 1001
    assert asyncio.run(detector.close_idle(1030.0)).closed == 0 and detector.open_windows == 1  # 29 s idle
    result = asyncio.run(detector.close_idle(1031.0))
    assert result.closed == 1 and [a.label for a in result.alerts] == ["KERNDTLB"]
    assert detector.open_windows == 0 and scorer.calls == [1]
    assert asyncio.run(detector.close_idle(2000.0)).closed == 0  # nothing left to close
    # The source logs again: new windows; an event into the closed window is late.
    asyncio.run(detector.process(kafka_events([T0 + 3, T0 + 900], 1, ingest=5000.0, first_offset=5)))
    assert detector.late_events == 1 and detector.open_windows == 1


def test_sources_without_ingest_times_never_close_on_idleness() -> None:
    detector, _, _ = make()
    asyncio.run(detector.process([Ev("bgl", T0 + 1, 5)]))
    assert asyncio.run(detector.close_idle(1e12)).closed == 0 and detector.open_windows == 1


def test_no_windowed_events_ask_nothing() -> None:
    detector, scorer, deployed = make()
    result = asyncio.run(detector.process([]))
    assert (result.closed, scorer.calls, deployed.asked) == (0, [], 0)


def test_a_scorer_that_drops_rows_is_an_error() -> None:
    class Short(FakeClassScorer):
        async def score(self, batch: WindowClassBatch) -> WindowClassScores:
            full = await super().score(batch)
            return WindowClassScores(full.class_index[:1], full.distances[:1], full.class_names, "p", 1)

    detector = WindowDetector(WindowClassifier(Short(), TEMPLATES), Spec(WindowSpec(300, 300)), ["bgl"])
    with pytest.raises(InferenceError, match="every row"):
        asyncio.run(detector.process([Ev("bgl", T0, 1), Ev("bgl", T0 + 300, 1), Ev("bgl", T0 + 600, 1)]))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", frozenset()), ("bgl", {"bgl"}), (" bgl , thunderbird,,", {"bgl", "thunderbird"})],
)
def test_window_sources_setting(raw: str, expected: frozenset[str]) -> None:
    assert Settings.from_env({"LOGAD_WINDOW_SOURCES": raw}).window_source_set == expected
