"""ColumnarDetector.process_columns gives exactly what Detector.process gives on the same events.

Both run side by side on their own stores: every batch's result (alerts with positions, causes,
windows and raw lines, scored count, rejections, re-deliveries) and the final session states must be
equal. Real streams: every line of HDFS_100k, the BGL files and the synthetic generator, parsed by the
columnar parser into the batches a worker receives; the scorer is a fake that knows the two most
common followers of each event in the first part of the stream, so alerts of both causes happen.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.columnar_detect import ColumnarDetector
from pipeline.columnar_parse import ColumnarParser
from pipeline.datasets.bgl import BGL_FILES, bgl_drain_config
from pipeline.datasets.loghub import HDFS_RAW, read_lines
from pipeline.datasets.synthetic import SyntheticConfig, generate_hdfs
from pipeline.detection import Detector
from pipeline.event_columns import EventColumns
from pipeline.formats import BGL, HDFS, LogFormat
from pipeline.records import LogEvent, SourceOffset
from pipeline.scoring import FakeNextEventScorer
from pipeline.session_partitions import PartitionedSessionStore
from pipeline.sessions import SessionState, SessionTracker
from pipeline.templates import DrainConfig, TemplateMiner
from tests.unit.test_sessions import single_partition_store


def _parsed(
    fmt: LogFormat, lines: list[str], learn: int, size: int, config: DrainConfig | None = None
) -> list[EventColumns]:
    miner = TemplateMiner(config)
    for line in lines[:learn]:
        miner.learn(fmt.template_text(fmt.parse_line(line)))
    miner.freeze()
    parser = ColumnarParser(fmt, miner)
    batches = []
    for i, start in enumerate(range(0, len(lines), size)):
        payload = "\n".join(lines[start : start + size]).encode()
        raw = SourceOffset("raw-logs", i % 3, 100 + i, timestamp=1_700_000_000.0 + i)
        batch = parser.parse(payload, "src", raw, now_s=float(i)).batch
        if len(batch):
            batches.append(batch)
    return batches


def _learned_scorer(batches: Sequence[EventColumns], k: int = 2) -> FakeNextEventScorer:
    """Followers seen after each event in the first part of the stream, most common first."""
    followers: defaultdict[int, Counter[int]] = defaultdict(Counter)
    last: dict[str, int] = {}
    for batch in batches:
        for event in batch.to_events():
            followers[last.get(event.session_key, 0)][event.template_id] += 1
            last[event.session_key] = event.template_id
    return FakeNextEventScorer({a: [b for b, _ in c.most_common(k)] for a, c in followers.items()}, k=k)


def _states(store: SessionTracker | PartitionedSessionStore) -> list[SessionState]:
    if isinstance(store, SessionTracker):
        return list(store)
    assert store.current is not None
    return sorted(store.current, key=lambda s: s.key)


def _assert_same(
    batches: Sequence[EventColumns],
    scorer: FakeNextEventScorer,
    make_store: type[SessionTracker] | None = None,
    now: float | None = None,
    window_size: int = 10,
    **options: bool,
) -> int:
    """Both detectors on `batches`; everything equal. Returns the number of alerts."""

    def store() -> SessionTracker | PartitionedSessionStore:
        return SessionTracker(window_size, 1e9) if make_store else single_partition_store(window_size)

    old = Detector(scorer, lambda tid: f"t{tid}", store(), **options)
    new = ColumnarDetector(scorer, lambda tid: f"t{tid}", store(), **options)
    alerts = 0
    for i, batch in enumerate(batches):
        expected = asyncio.run(old.process(batch.to_events(), now))
        got = asyncio.run(new.process_columns(batch, now))
        assert got == expected, f"batch {i}"
        alerts += len(got.alerts)
    assert _states(new.store) == _states(old.store)  # type: ignore[arg-type]
    if isinstance(old.store, SessionTracker):
        assert new.store._clock == old.store._clock  # type: ignore[attr-defined]
    return alerts


def test_every_hdfs_100k_event(data_dir: Path) -> None:
    lines = list(read_lines(data_dir / HDFS_RAW))
    batches = _parsed(HDFS, lines, len(lines) // 5, 500)
    scorer = _learned_scorer(batches[: len(batches) // 5])
    assert _assert_same(batches, scorer, now=None) > 50
    assert _assert_same(batches, scorer, SessionTracker) > 50


def test_every_bgl_event(data_dir: Path) -> None:
    lines = [line for name in BGL_FILES for line in read_lines(data_dir / name)]
    batches = _parsed(BGL, lines, len(lines) // 3, 400, bgl_drain_config())
    # BGL has no session ids: every event of a source is one session here, a long one.
    assert _assert_same(batches, _learned_scorer(batches[:5]), SessionTracker, window_size=5) > 0


def test_every_synthetic_event_with_redeliveries_and_rejections() -> None:
    lines = list(generate_hdfs(SyntheticConfig(lines=20_000, anomaly_rate=0.05, seed=3)))
    batches = _parsed(HDFS, lines, 2_000, 300)
    rng = random.Random(7)
    mixed: list[EventColumns] = []
    for batch in batches:
        mixed.append(batch)
        roll = rng.random()
        if roll < 0.15:  # a crash: the message comes again, whole
            mixed.append(batch)
        elif roll < 0.3:  # part of an earlier message again, with this one's rows
            events = [*mixed[-2].to_events()[::3], *batch.to_events()[:50]]
            mixed.append(EventColumns.from_events(events))
        elif roll < 0.35:  # template id 0 (a parser bug) must be rejected, not applied
            events = batch.to_events()
            events[0] = replace(events[0], template_id=0)
            mixed.append(EventColumns.from_events(events))
    scorer = _learned_scorer(batches[:10])
    assert _assert_same(mixed, scorer, now=123.0) > 0
    assert _assert_same(mixed, scorer, now=None, score_first_event=True) > 0


def test_sessions_spread_over_raw_partitions_and_events_outside_kafka() -> None:
    rng = random.Random(11)
    events = []
    for i in range(3_000):
        key = f"s{rng.randrange(40)}"
        raw = SourceOffset(f"topic{rng.randrange(2)}", rng.randrange(3), 1_000 + i // 7, i % 7)
        if rng.random() < 0.1:
            raw = SourceOffset()  # not from Kafka: no positions, never a re-delivery
        ts = None if rng.random() < 0.1 else 1_000.0 + i
        events.append(LogEvent("src", key, ts, rng.randrange(1, 9), "", (), rng.random() < 0.02, raw))
    batches = [EventColumns.from_events(events[i : i + 250]) for i in range(0, len(events), 250)]
    scorer = FakeNextEventScorer({0: [1], **{a: [(a % 8) + 1, 3] for a in range(1, 9)}}, k=2)
    assert _assert_same(batches + batches[3:5], scorer, window_size=4) > 0
    assert _assert_same(batches, scorer, SessionTracker, window_size=4) > 0


@pytest.mark.parametrize("window_size", [1, 3])
def test_scores_each_distinct_row_once(window_size: int) -> None:
    events = [
        LogEvent("src", f"s{i % 50}", float(i), 1 + (i // 50) % 3, "", (), False, SourceOffset("r", 0, i))
        for i in range(600)
    ]
    scorer = FakeNextEventScorer({0: [1], 1: [2], 2: [3], 3: [1]}, k=1)
    detector = ColumnarDetector(scorer, {}, SessionTracker(window_size, 1e9))
    result = asyncio.run(detector.process_columns(EventColumns.from_events(events)))
    assert result.scored == 600
    windows = {tuple(np.asarray(w).tolist()) for w in _windows_of(events, window_size)}
    assert scorer.calls == [len(windows)]


def _windows_of(events: Sequence[LogEvent], window_size: int) -> list[tuple[int, ...]]:
    seen: defaultdict[str, list[int]] = defaultdict(list)
    rows = []
    for e in events:
        history = seen[e.session_key]
        window = ([0] * window_size + history)[-window_size:]
        rows.append((*window, e.template_id))
        history.append(e.template_id)
    return rows


def test_parameter_alerts_are_the_same() -> None:
    from pipeline.parameter_detection import ParameterDetector
    from tests.unit.test_parameter_detection import OTHER, TEXT, WRITE, FakeParameterScorer

    rng = random.Random(5)
    events = [
        LogEvent(
            "hdfs",
            f"s{rng.randrange(30)}",
            None if rng.random() < 0.05 else float(i // 3),
            WRITE if rng.random() < 0.7 else OTHER,
            TEXT,
            ("blk", str(rng.choice([10, 20, 30, 500]))),
            False,
            SourceOffset("raw", 0, i),
        )
        for i in range(2_000)
    ]
    batches = [EventColumns.from_events(events[i : i + 300]) for i in range(0, len(events), 300)]
    next_event = FakeNextEventScorer({0: [WRITE, OTHER], WRITE: [WRITE, OTHER], OTHER: [WRITE, OTHER]})
    runs = []
    for cls in (Detector, ColumnarDetector):
        det = cls(
            next_event,
            {WRITE: TEXT},
            SessionTracker(3, 1e9),
            parameters=ParameterDetector(FakeParameterScorer()),
        )
        if isinstance(det, ColumnarDetector):
            runs.append([asyncio.run(det.process_columns(b)) for b in batches])
        else:
            runs.append([asyncio.run(det.process(b.to_events())) for b in batches])
    assert runs[0] == runs[1]
    assert sum(len(r.alerts) for r in runs[0]) > 10


def test_operator_feedback_suppresses_the_same_rows() -> None:
    from pipeline.feedback import Allowlist, FeedbackGate, feedback_from_alert

    lines = list(generate_hdfs(SyntheticConfig(lines=8_000, anomaly_rate=0.05, seed=4)))
    batches = _parsed(HDFS, lines, 1_000, 250)
    scorer = _learned_scorer(batches[:5])
    runs = []
    for cls in (Detector, ColumnarDetector):
        gate = FeedbackGate(Allowlist(), lambda model, version: "ts")
        det = cls(scorer, lambda tid: f"<template {tid}>", SessionTracker(10, 1e9), feedback=gate)
        results = []
        for i, batch in enumerate(batches):
            if isinstance(det, ColumnarDetector):
                result = asyncio.run(det.process_columns(batch))
            else:
                result = asyncio.run(det.process(batch.to_events()))
            results.append(result)
            if i < len(batches) // 2:  # operators mark the first half's alerts normal
                for alert in result.alerts:
                    gate.apply(feedback_from_alert(alert, 10, "ts"))
        runs.append((results, dict(gate.suppressed)))
    assert runs[0] == runs[1]
    assert sum(runs[0][1].values()) > 0
