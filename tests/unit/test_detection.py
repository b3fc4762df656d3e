from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from pipeline.alerts import AlertKind, RawCoordinates, alert_id
from pipeline.detection import Detector, replay
from pipeline.records import SourceOffset
from pipeline.scoring import (
    FakeNextEventScorer,
    NextEventBatch,
    TorchScriptNextEventScorer,
    WindowClassBatch,
    WindowClassScores,
)
from pipeline.sessions import SessionTracker
from pipeline.time_windows import Window
from pipeline.window_classifier import WindowClassifier
from pipeline.windows import SESSION_END_ID, next_event_windows
from tests.unit.test_scoring import Clock, publish
from tests.unit.test_sessions import single_partition_store

TEMPLATES = {1: "open <*>", 2: "write <*>", 3: "close <*>", 4: "delete <*>", 5: "verify <*>"}
# Start with 1; 1 -> 2 or 5; 2 -> 2 or 3; 3 -> 4. Event 9 is unknown.
TRANSITIONS = {0: [1], 1: [2, 5], 2: [2, 3], 3: [4], 5: [3]}


@dataclass(frozen=True)
class Ev:
    session_key: str
    template_id: int
    timestamp: float | None = None
    source: str = "hdfs"
    template: str = ""
    oov: bool = False
    raw: SourceOffset = field(default_factory=SourceOffset)  # as on pipeline.records.LogEvent


def events_of(key: str, ids: Sequence[int], start: float = 0.0) -> list[Ev]:
    return [
        Ev(key, tid, start + i, raw=SourceOffset("raw-logs", 0, int(start) + i)) for i, tid in enumerate(ids)
    ]


def detector(window_size: int = 3, **kwargs: bool) -> tuple[Detector, FakeNextEventScorer, SessionTracker]:
    fake = FakeNextEventScorer(TRANSITIONS, k=2, model="lama", version=4)
    tracker = SessionTracker(window_size, timeout_s=100.0)
    return Detector(fake, TEMPLATES, tracker, **kwargs), fake, tracker


def test_one_scorer_call_per_batch_and_one_alert_per_session_per_cause() -> None:
    det, fake, tracker = detector()
    batch = [
        *events_of("a", [1, 2, 4, 1, 4]),  # 4 after 2: unexpected (twice, alerted once)
        *events_of("b", [1, 2, 9, 9]),  # 9 unknown: OOV once
        *events_of("c", [1, 5, 3, 4]),  # normal
    ]
    result = asyncio.run(det.process(batch))
    assert fake.calls == [len(batch)] and result.scored == len(batch)
    assert [(a.session_key, a.kind) for a in result.alerts] == [
        ("a", AlertKind.UNEXPECTED_NEXT_EVENT),
        ("b", AlertKind.OOV_EVENT),
    ]
    again = asyncio.run(det.process(events_of("a", [1, 4], start=10.0)))
    assert again.alerts == () and fake.calls == [len(batch), 2]
    assert tracker.get("hdfs", "a").alerted == {"unexpected_next_event"}  # type: ignore[union-attr]


def test_alert_explains_the_event() -> None:
    det, _, _ = detector()
    (alert,) = asyncio.run(det.process(events_of("a", [1, 2, 2, 2, 4]))).alerts
    assert alert.alert_id == alert_id("hdfs", "a", AlertKind.UNEXPECTED_NEXT_EVENT)
    assert (alert.model, alert.model_version, alert.position) == ("lama", 4, 4)
    assert alert.event_template == "delete <*>" and alert.event_template_id == 4
    assert [(e.template_id, e.template, e.probability) for e in alert.expected] == [
        (2, "write <*>", 0.5),
        (3, "close <*>", 0.5),
    ]
    assert alert.window == ("write <*>", "write <*>", "write <*>") and alert.score == 1.0
    assert (alert.first_timestamp, alert.last_timestamp) == (0.0, 4.0)
    assert alert.raw == RawCoordinates("raw-logs", 0, 4, 0) and alert.event_time == 4.0
    # The raw records behind it, texts not read yet: the window's (l = 3), then the offending one.
    assert [line.at for line in alert.lines] == [RawCoordinates("raw-logs", 0, o, 0) for o in (1, 2, 3, 4)]
    assert all(line.text is None for line in alert.lines)


def test_end_of_session_alert_reads_end_of_session_and_points_at_the_last_record() -> None:
    fake = FakeNextEventScorer({**TRANSITIONS, 4: [SESSION_END_ID]}, k=2, model="deeplog", version=2)
    tracker = SessionTracker(3, timeout_s=100.0)
    det = Detector(fake, TEMPLATES, tracker)
    assert asyncio.run(det.process(events_of("a", [1, 2, 3]))).alerts == ()  # ends early: no 4
    (alert,) = asyncio.run(det.close(tracker.drain(), SESSION_END_ID, 3))
    assert alert.event_template == "end of session" and alert.event_template_id == SESSION_END_ID
    assert alert.expected[0].template == "delete <*>" and alert.position == 3
    assert alert.raw == RawCoordinates("raw-logs", 0, 2, 0) and alert.event_time == 2.0
    assert [line.at.offset for line in alert.lines] == [0, 1, 2]


@pytest.mark.parametrize(
    ("ids", "score_first_event", "kinds"),
    [
        ([2, 3], False, []),  # known but unexpected first event: not a target in training windows
        ([2, 3], True, [AlertKind.UNEXPECTED_NEXT_EVENT]),
        ([9], False, [AlertKind.OOV_EVENT]),  # OOV counts wherever it is
        ([1, 2, 9, 4], False, [AlertKind.OOV_EVENT, AlertKind.UNEXPECTED_NEXT_EVENT]),
    ],
)
def test_first_event_rule(ids: list[int], score_first_event: bool, kinds: list[AlertKind]) -> None:
    det, _, _ = detector(score_first_event=score_first_event)
    assert [a.kind for a in asyncio.run(det.process(events_of("s", ids))).alerts] == kinds


def test_parser_oov_flag_and_unknown_template_text() -> None:
    det, _, _ = detector()
    (alert,) = asyncio.run(det.process([Ev("s", 1, 0.0), Ev("s", 2, 1.0, oov=True)])).alerts
    assert alert.kind is AlertKind.OOV_EVENT and alert.event_template == "write <*>"
    (alert,) = asyncio.run(det.process([Ev("t", 77, 0.0, template="new <*> line")])).alerts
    assert alert.event_template == "new <*> line" and alert.expected[0].template == "open <*>"


def test_bad_event_is_rejected_without_failing_the_batch() -> None:
    det, fake, _ = detector()
    result = asyncio.run(det.process([Ev("s", 1), Ev("s", 0), Ev("s", 2)]))
    assert result.scored == 2 and fake.calls == [2] and len(result.rejected) == 1
    assert "template id must be positive" in result.rejected[0][1]
    assert asyncio.run(det.process([Ev("s", 0)])).scored == 0 and fake.calls == [2]


def offline_flags(
    fake: FakeNextEventScorer, sessions: Sequence[Sequence[int]], window_size: int
) -> list[bool]:
    """The offline rule: anomalous if any event is OOV or any training-style window is anomalous."""
    flags = []
    for ids in sessions:
        windows, nexts = next_event_windows(ids, window_size)
        oov = any(i not in fake.known for i in ids)
        windowed = False
        if len(nexts):
            scores = asyncio.run(fake.score(NextEventBatch(windows, nexts.reshape(-1, 1))))
            windowed = bool(scores.anomalous.any())
        flags.append(oov or windowed)
    return flags


def interleave(sessions: Sequence[Sequence[int]], seed: int) -> list[Ev]:
    """All sessions' events mixed as a stream would mix them, each session's order kept."""
    rng = random.Random(seed)
    queues = {f"s{i}": list(ids) for i, ids in enumerate(sessions)}
    stream: list[Ev] = []
    while queues:
        key = rng.choice(sorted(queues))
        stream.append(Ev(key, queues[key].pop(0), float(len(stream))))
        if not queues[key]:
            del queues[key]
    return stream


def streamed_flags(det: Detector, stream: list[Ev], n: int, batch_size: int) -> list[bool]:
    result = asyncio.run(replay(det, stream, batch_size=batch_size))
    verdicts = {v.session_key: v.anomalous for v in result.verdicts}
    assert len(verdicts) == len(result.verdicts) == n
    return [verdicts[f"s{i}"] for i in range(n)]


@pytest.mark.parametrize(("batch_size", "window_size", "seed"), [(1, 3, 0), (7, 2, 1), (256, 4, 2)])
def test_streaming_verdicts_equal_offline(batch_size: int, window_size: int, seed: int) -> None:
    rng = random.Random(seed)
    sessions = [[rng.choice([1, 2, 3, 4, 5, 5, 2, 9]) for _ in range(rng.randint(1, 12))] for _ in range(60)]
    fake = FakeNextEventScorer(TRANSITIONS, k=2)
    det = Detector(fake, TEMPLATES, SessionTracker(window_size, timeout_s=1e9))
    assert streamed_flags(det, interleave(sessions, seed), len(sessions), batch_size) == offline_flags(
        fake, sessions, window_size
    )
    assert 0 < sum(offline_flags(fake, sessions, window_size)) < len(sessions)


def test_partition_store_gives_the_same_alerts_as_the_tracker() -> None:
    rng = random.Random(5)
    sessions = [[rng.choice([1, 2, 3, 4, 5, 9]) for _ in range(rng.randint(1, 9))] for _ in range(30)]
    stream = interleave(sessions, 5)
    runs = []
    for store in (SessionTracker(3, 1e9), single_partition_store(3)):
        det = Detector(FakeNextEventScorer(TRANSITIONS, k=2), TEMPLATES, store)
        runs.append(asyncio.run(replay(det, stream, batch_size=16)).alerts)
    assert runs[0] == runs[1] and len(runs[0]) > 0


def test_expired_sessions_get_verdicts_during_replay() -> None:
    det, _, tracker = detector()
    stream = [*events_of("a", [1, 2, 4]), *events_of("b", [1, 5, 3], start=500.0)]
    result = asyncio.run(replay(det, stream, batch_size=3))
    assert [(v.session_key, v.anomalous, v.causes) for v in result.verdicts] == [
        ("a", True, ("unexpected_next_event",)),
        ("b", False, ()),
    ]
    assert len(tracker) == 0


def test_alerts_name_the_version_that_scored_them(tmp_path: Path) -> None:
    publish(tmp_path, shift=1)
    clock = Clock()
    scorer = TorchScriptNextEventScorer.from_repo(tmp_path, "tiny", clock, reload_interval_s=10.0)
    ids = {w: t for w, t in zip([3, 8, 15, 40], ["a", "b", "c", "d"], strict=True)}
    det = Detector(scorer, ids, SessionTracker(4, 1e9))
    first = asyncio.run(det.process(events_of("x", [3, 40])))  # v1 expects 8, 15 after 3
    publish(tmp_path, shift=2)
    clock.now = 10.0
    second = asyncio.run(det.process(events_of("y", [3, 8])))  # v2 expects 15, 40 after 3
    assert [(a.session_key, a.model, a.model_version) for a in (*first.alerts, *second.alerts)] == [
        ("x", "tiny", 1),
        ("y", "tiny", 2),
    ]
    assert first.alerts[0].expected[0].template == "b" and second.alerts[0].expected[0].template == "c"


def read_sessions(path: Path, limit: int) -> list[list[int]]:
    with path.open() as fh:
        return [[int(t) for t in line.split()] for line in fh if line.strip()][:limit]


def test_streaming_equals_offline_on_deeplog_sessions(data_dir: Path) -> None:
    """A bigram scorer learnt from deeplog_train; the abnormal and normal test sessions replayed as one
    interleaved stream must get exactly the offline verdicts."""
    hdfs = data_dir / "hdfs"
    followers: dict[int, Counter[int]] = defaultdict(Counter)
    for ids in read_sessions(hdfs / "deeplog_train", 10**6):
        for a, b in zip([0, *ids], ids, strict=False):
            followers[a][b] += 1
    fake = FakeNextEventScorer({a: [b for b, _ in c.most_common()] for a, c in followers.items()}, k=3)
    sessions = read_sessions(hdfs / "deeplog_test_abnormal", 1500) + read_sessions(
        hdfs / "deeplog_test_normal_sample", 500
    )
    det = Detector(fake, {}, SessionTracker(10, timeout_s=1e9))
    streamed = streamed_flags(det, interleave(sessions, 11), len(sessions), batch_size=1024)
    offline = offline_flags(fake, sessions, 10)
    assert streamed == offline
    abnormal, normal = np.array(offline[:1500]), np.array(offline[1500:])
    assert abnormal.mean() > normal.mean()


class FakeClassScorer:
    """Class 1 ("KERNDTLB") when template 5 occurs, else class 0 ("normal")."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def score(self, batch: WindowClassBatch) -> WindowClassScores:
        self.calls.append(len(batch))
        hit = (batch.template_ids == 5).any(axis=1)
        distances = np.stack([np.where(hit, 3.0, 0.0), np.where(hit, 1.0, 4.0)], axis=1).astype(np.float32)
        return WindowClassScores(
            hit.astype(np.int64).reshape(-1, 1), distances, ("normal", "KERNDTLB"), "protosiamese", 2
        )


def test_window_classifier_alerts_abnormal_windows_in_one_call() -> None:
    windows = [
        Window(0.0, 60.0, ((1, 4), (2, 1))),
        Window(60.0, 120.0, ((2, 1), (5, 3))),
        Window(120.0, 180.0, ()),
    ]
    scorer = FakeClassScorer()
    alerts = asyncio.run(WindowClassifier(scorer, TEMPLATES).classify("bgl", windows))
    assert scorer.calls == [2]
    (alert,) = alerts
    assert (alert.kind, alert.label, alert.session_key, alert.model_version) == (
        AlertKind.WINDOW_CLASS,
        "KERNDTLB",
        "60-120",
        2,
    )
    assert alert.event_template == "verify <*>" and alert.window == ("verify <*>", "write <*>")
    assert alert.score == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert alert.alert_id == alert_id("bgl", "60-120", AlertKind.WINDOW_CLASS)


def test_detection_core_imports_no_heavy_or_infrastructure_modules() -> None:
    code = (
        "import sys, pipeline.detection, pipeline.alerts, pipeline.sessions, pipeline.scoring; "
        "print(sorted(m for m in ('torch', 'faust', 'confluent_kafka', 'tritonclient', 'aiokafka') "
        "if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"


def test_a_redelivered_batch_changes_nothing() -> None:
    det, fake, tracker = detector()
    batch = [*events_of("a", [1, 2, 4]), *events_of("b", [1, 5, 3])]
    first = asyncio.run(det.process(batch))
    before = [tracker.get("hdfs", k) for k in "ab"]
    again = asyncio.run(det.process(batch))  # what a restarted worker reads after a crash
    assert (again.scored, again.redelivered, again.alerts) == (0, len(batch), ())
    assert first.scored == len(batch) and fake.calls == [len(batch)]
    assert [tracker.get("hdfs", k) for k in "ab"] == before
