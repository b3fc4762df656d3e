from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from pipeline.errors import DataError
from pipeline.records import SourceOffset
from pipeline.session_partitions import PartitionedSessionStore
from pipeline.session_state_log import PartitionSessions
from pipeline.sessions import (
    SESSION_SCHEMA_VERSION,
    SessionState,
    SessionTracker,
    advance,
    is_expired,
    new_session,
    positions,
)
from pipeline.windows import last_window, next_event_windows


@dataclass(frozen=True)
class Ev:
    session_key: str
    template_id: int
    timestamp: float | None = None
    source: str = "hdfs"


@pytest.mark.parametrize(
    ("ids", "window_size"),
    [
        ([5], 3),
        ([5, 22, 5, 11, 9, 11, 9, 26, 26, 23], 3),
        ([5, 22, 5, 11, 9, 11, 9, 26, 26, 23, 4, 4], 10),
        ([7, 7, 7, 7], 1),
    ],
)
def test_queries_match_training_windows(ids: list[int], window_size: int) -> None:
    state = new_session("hdfs", "blk_1")
    queries = []
    for i, tid in enumerate(ids):
        state, query = advance(state, Ev("blk_1", tid, float(i)), window_size)
        queries.append(query)
    assert queries[0].window == (0,) * window_size and queries[0].position == 0
    windows, nexts = next_event_windows(ids, window_size)
    assert [q.window for q in queries[1:]] == [tuple(w) for w in windows.tolist()]
    assert [q.next_event for q in queries[1:]] == nexts.tolist()
    assert [q.position for q in queries] == list(range(len(ids)))
    assert [q.window for q in queries] == [
        tuple(last_window(ids[:i], window_size).tolist()) for i in range(len(ids))
    ]
    assert state.window == tuple(ids[-window_size:])
    assert (state.event_count, state.first_ts, state.last_ts) == (len(ids), 0.0, float(len(ids) - 1))


def test_state_round_trips_through_json() -> None:
    state = new_session("bgl", "node-7")
    for tid, ts in [(3, 10.0), (4, None), (9, 12.5)]:
        state, _ = advance(state, Ev("node-7", tid, ts, "bgl"), 2, now=100.0)
    state = state.with_alerted("oov_event").with_alerted("oov_event")
    data = json.loads(json.dumps(state.to_dict()))
    assert SessionState.from_dict(data) == state
    assert data["window"] == [4, 9] and data["alerted"] == ["oov_event"] and data["last_ts"] == 12.5


@pytest.mark.parametrize(
    "value",
    [
        {"v": 2, "source": "s", "session_key": "k"},
        {"source": "s"},
        "not a dict",
        {**new_session("s", "k").to_dict(), "window": "abc"},
        {k: v for k, v in new_session("s", "k").to_dict().items() if k != "event_count"},
    ],
)
def test_bad_state_raises_data_error(value: object) -> None:
    with pytest.raises(DataError, match="session state"):
        SessionState.from_dict(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("template_id", [0, -3])
def test_padding_or_negative_id_is_rejected(template_id: int) -> None:
    with pytest.raises(DataError, match="positive"):
        advance(new_session("s", "k"), Ev("k", template_id), 3)


@pytest.mark.parametrize(
    ("touched_at", "now", "timeout_s", "expected"),
    [(10.0, 69.9, 60.0, False), (10.0, 70.0, 60.0, True), (None, 0.0, 60.0, True), (50.0, 40.0, 5.0, False)],
)
def test_is_expired(touched_at: float | None, now: float, timeout_s: float, expected: bool) -> None:
    state = SessionState("s", "k", touched_at=touched_at)
    assert is_expired(state, now, timeout_s) is expected


def test_session_clock_never_goes_back() -> None:
    state, _ = advance(new_session("s", "k"), Ev("k", 1, 100.0), 3)
    state, _ = advance(state, Ev("k", 2, 40.0), 3)
    assert state.touched_at == 100.0 and state.first_ts == 100.0 and state.last_ts == 40.0


def test_tracker_expires_inactive_sessions_only() -> None:
    tracker = SessionTracker(window_size=3, timeout_s=10.0)
    tracker.advance(Ev("a", 1, 0.0))
    tracker.advance(Ev("b", 1, 5.0))
    tracker.advance(Ev("a", 2, 8.0))
    assert tracker.expire() == []
    assert [s.session_key for s in tracker.expire(now=15.0)] == ["b"]
    assert len(tracker) == 1 and tracker.get("hdfs", "a") is not None
    assert [s.session_key for s in tracker.expire(now=18.0)] == ["a"]
    assert len(tracker) == 0


def test_tracker_cap_evicts_least_recent_and_reports_it() -> None:
    tracker = SessionTracker(window_size=2, timeout_s=1e9, max_sessions=2)
    for key, ts in [("a", 1.0), ("b", 2.0), ("a", 3.0), ("c", 4.0)]:
        tracker.advance(Ev(key, 1, ts))
    assert len(tracker) == 2 and tracker.get("hdfs", "b") is None
    expired = tracker.expire()
    assert [s.session_key for s in expired] == ["b"]
    assert sorted(s.session_key for s in tracker.drain()) == ["a", "c"] and len(tracker) == 0


def test_window_arrays_are_int64_compatible() -> None:
    _, query = advance(new_session("s", "k"), Ev("k", 2**52 - 1), 4)
    assert np.asarray([query.window], dtype=np.int64).shape == (1, 4)


def single_partition_store(window_size: int) -> PartitionedSessionStore:
    store = PartitionedSessionStore(window_size)
    store.adopt(PartitionSessions(0))
    store.use(0)
    return store


@dataclass(frozen=True)
class RawEv:
    session_key: str
    template_id: int
    raw: SourceOffset
    timestamp: float | None = None
    source: str = "hdfs"


def test_redelivered_events_are_skipped_by_raw_position() -> None:
    """After a crash Kafka re-delivers messages whose effects the changelog already holds."""

    def at(offset: int, line: int, tid: int, partition: int = 0) -> RawEv:
        return RawEv("a", tid, SourceOffset("raw-logs", partition, offset, line))

    first = [at(10, 0, 1), at(10, 3, 2), at(11, 0, 3)]
    for store in (single_partition_store(3), SessionTracker(3, 100.0)):
        assert all(store.advance(e, 0.0) is not None for e in first)
        # The same message again (all of it, or one line of it): nothing applied twice.
        assert [store.advance(e, 1.0) for e in first] == [None, None, None]
        state = store.get("hdfs", "a")
        assert state is not None and state.window == (1, 2, 3) and state.event_count == 3
        # Later lines of the same message, later messages and other partitions go on.
        assert store.advance(at(11, 1, 4), 2.0) is not None
        assert store.advance(at(5, 0, 5, partition=1), 2.0) is not None
        state = store.get("hdfs", "a")
        assert state is not None and state.window == (3, 4, 5)


def test_marks_round_trip_and_old_states_load() -> None:
    state, _ = advance(new_session("hdfs", "a"), RawEv("a", 7, SourceOffset("raw", 2, 40, 6)), 3)
    assert state.marks == (("raw/2", 40, 6),)
    assert SessionState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    legacy = state.to_dict()
    del legacy["marks"]  # a state written before marks existed
    assert SessionState.from_dict(legacy).marks == ()
    # Events outside Kafka (offline files) carry no position and never count as re-deliveries.
    again, _ = advance(state, Ev("a", 7, 1.0), 3)
    assert again.marks == state.marks and again.event_count == 2


def test_state_keeps_raw_positions_of_its_last_l_events_and_queries_get_those_before() -> None:
    state = new_session("hdfs", "a")
    queries = []
    for i in range(5):
        state, query = advance(state, RawEv("a", 7, SourceOffset("raw-logs", i % 2, 100 + i, i)), 3)
        queries.append(query)
    assert positions(state.recent) == [(0, 102, 2), (1, 103, 3), (0, 104, 4)]
    assert state.raw_topic == "raw-logs" and state.to_dict()["recent"] == [0, 102, 2, 1, 103, 3, 0, 104, 4]
    assert queries[0].recent == () and positions(queries[4].recent) == [(1, 101, 1), (0, 102, 2), (1, 103, 3)]
    assert SessionState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    # Events outside Kafka add no position.
    again, _ = advance(state, Ev("a", 7, 1.0), 3)
    assert again.recent == state.recent


def test_version_1_state_loads_without_raw_positions() -> None:
    state, _ = advance(new_session("hdfs", "a"), RawEv("a", 7, SourceOffset("raw", 2, 40, 6)), 3)
    v1 = {k: v for k, v in state.to_dict().items() if k != "recent"} | {"v": 1}
    loaded = SessionState.from_dict(v1)
    assert loaded.recent == () and loaded.marks == state.marks and loaded.window == state.window
    assert state.to_dict()["v"] == SESSION_SCHEMA_VERSION == 2
    # Advancing a loaded v1 state starts its positions from the next event.
    after, query = advance(loaded, RawEv("a", 8, SourceOffset("raw", 2, 41, 0)), 3)
    assert query.recent == () and after.recent == (2, 41, 0)
    with pytest.raises(DataError, match="triples"):
        SessionState.from_dict({**state.to_dict(), "recent": [1, 2]})
