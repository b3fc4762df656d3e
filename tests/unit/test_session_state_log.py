from __future__ import annotations

import random
from dataclasses import dataclass

import orjson
import pytest

from pipeline.errors import DataError
from pipeline.records import SourceOffset
from pipeline.session_partitions import PartitionedSessionStore
from pipeline.session_state_log import (
    NO_OFFSET,
    STATE_LOG_SCHEMA,
    PartitionSessions,
    RecordKind,
    SnapshotPolicy,
    StateRecord,
    encode_split,
    open_record,
    restore,
    restore_start,
)
from pipeline.sessions import SessionState, advance, new_session


@dataclass(frozen=True)
class Ev:
    session_key: str
    template_id: int
    raw: SourceOffset
    timestamp: float | None = None
    source: str = "hdfs"


class Log:
    """One partition of the state topic: offsets are list indexes from `low`."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.low = 0

    def append(self, value: bytes) -> int:
        self.values.append(value)
        return self.low + len(self.values) - 1

    @property
    def high(self) -> int:
        return self.low + len(self.values)

    def read(self, start: int) -> list[tuple[int, bytes]]:
        return [(self.low + i, v) for i, v in enumerate(self.values) if self.low + i >= start]

    def last(self) -> StateRecord | None:
        return StateRecord.decode(self.values[-1]) if self.values else None


class Writer:
    """What agents.session_state does, synchronously: a delta per message, snapshots when due."""

    def __init__(self, log: Log, part: PartitionSessions, policy: SnapshotPolicy, max_bytes: int) -> None:
        self.log, self.part, self.policy, self.max_bytes = log, part, policy, max_bytes
        self.store = PartitionedSessionStore(3)
        self.store.adopt(part)
        self.store.use(part.partition)

    def message(self, offset: int, events: list[Ev], now: float, timeout_s: float = 1e9) -> list[str]:
        for event in events:
            self.store.advance(event, now)
        closed = self.store.idle(now, timeout_s)
        self.store.remove(closed)
        record = self.store.checkpoint(offset)
        if record is not None:
            values = encode_split(record, self.max_bytes)
            for value in values:
                self.log.append(value)
            self.part.written(sum(map(len, values)))
        if self.part.snapshot_due(self.policy, now):
            values = self.part.snapshot_records(self.max_bytes)
            offsets = [self.log.append(v) for v in values]
            self.part.snapshot_written(offsets[0], sum(map(len, values)), now)
        return [s.key for s in closed]


def open_partition(log: Log, partition: int = 0) -> PartitionSessions:
    last = log.last()
    start = restore_start(last, log.low)
    part = restore(partition, log.read(start), last.base if last is not None else NO_OFFSET)
    log.append(open_record(part))
    return part


def random_messages(seed: int, count: int) -> list[list[Ev]]:
    rng = random.Random(seed)
    messages = []
    for offset in range(count):
        keys = rng.sample(range(40), rng.randint(1, 6))
        messages.append(
            [
                Ev(f"blk_{k}", rng.randint(1, 9), SourceOffset("raw", 0, offset, line), float(offset))
                for line, k in enumerate(keys)
            ]
        )
    return messages


def test_record_round_trips_with_an_explicit_version() -> None:
    state, _ = advance(new_session("hdfs", "a"), Ev("a", 4, SourceOffset("raw", 1, 9, 2), 3.0), 3)
    record = StateRecord(RecordKind.DELTA, 3, 17, 41, (state,), ("hdfs|b",))
    value = record.encode()
    assert orjson.loads(value)["schema"] == STATE_LOG_SCHEMA == "session-state-log/1"
    assert StateRecord.decode(value) == record
    # Records written before the string tag carry `"v": 1` and still restore.
    legacy = {k: v for k, v in orjson.loads(value).items() if k != "schema"}
    assert StateRecord.decode(orjson.dumps({**legacy, "v": 1})) == record


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[]",
        b'{"v": 99, "kind": "delta"}',
        b'{"v": 1, "kind": "nope"}',
        b'{"v": 1}',
        b'{"schema": "session-state-log/2", "kind": "delta"}',
        b'{"v": true, "kind": "delta"}',
    ],
)
def test_bad_records_raise_data_error(value: bytes) -> None:
    with pytest.raises(DataError, match="session state log"):
        StateRecord.decode(value)


@pytest.mark.parametrize("max_bytes", [600, 4096, 1 << 20])
def test_restore_from_the_newest_snapshot_equals_the_live_state(max_bytes: int) -> None:
    log = Log()
    part = open_partition(log)
    writer = Writer(log, part, SnapshotPolicy(growth=1.0, min_bytes=8_000), max_bytes)
    for offset, events in enumerate(random_messages(1, 300)):
        writer.message(offset, events, float(offset), timeout_s=50.0)  # sessions expire as well
    assert part.base > 0 and part.snapshots_written >= 2
    # The restore starts at the snapshot the last record names (the newest complete one when it
    # was written: the one before, if the last record is a chunk of the newest), not the beginning.
    last = log.last()
    assert last is not None
    start = restore_start(last, 0)
    assert 0 < start <= part.base
    for base in (start, part.base):
        restored = restore(0, log.read(base), base)
        assert restored.states == part.states and restored.covers == 299
        assert restored.generation == part.generation + 1
    # Every record stays under the limit, snapshot chunks too.
    assert max(map(len, log.values)) <= max(max_bytes, 600)


def test_restored_partition_goes_on_like_the_original() -> None:
    messages = random_messages(2, 200)
    log, reference_log = Log(), Log()
    policy = SnapshotPolicy(growth=1.0, min_bytes=5_000)
    first = Writer(log, open_partition(log), policy, 4096)
    reference = Writer(reference_log, open_partition(reference_log), policy, 4096)
    for offset, events in enumerate(messages):
        if offset == 120:  # the worker dies; another restores the partition and carries on
            first = Writer(log, open_partition(log), policy, 4096)
        assert first.message(offset, events, float(offset), 30.0) == reference.message(
            offset, events, float(offset), 30.0
        )
    assert first.part.states == reference.part.states


def test_records_of_an_older_generation_after_a_newer_open_are_ignored() -> None:
    log = Log()
    old = Writer(log, open_partition(log), SnapshotPolicy(), 1 << 20)
    old.message(0, [Ev("a", 1, SourceOffset("raw", 0, 0, 0), 0.0)], 0.0)
    new = Writer(log, open_partition(log), SnapshotPolicy(), 1 << 20)
    assert new.part.generation == old.part.generation + 1
    # The old owner finishes a message after the new one took over: a zombie's late delta.
    old.message(1, [Ev("a", 2, SourceOffset("raw", 0, 1, 0), 1.0)], 1.0)
    new.message(1, [Ev("b", 3, SourceOffset("raw", 0, 1, 1), 1.0)], 1.0)
    restored = restore(0, log.read(0), NO_OFFSET)
    assert restored.states == new.part.states
    state = restored.states["hdfs|a"]
    assert state.window == (1,)


def test_incomplete_or_missing_base_snapshot_raises() -> None:
    log = Log()
    writer = Writer(log, open_partition(log), SnapshotPolicy(growth=1.0, min_bytes=1), 600)
    for offset, events in enumerate(random_messages(3, 20)):
        writer.message(offset, events, float(offset))
    base = writer.part.base
    chunks = StateRecord.decode(log.values[base]).chunks
    assert chunks > 1
    records = [(o, v) for o, v in log.read(base) if o != base + 1]  # one chunk lost
    with pytest.raises(DataError, match="incomplete"):
        restore(0, records, base)
    with pytest.raises(DataError, match="should start a snapshot"):
        restore(0, log.read(base + 1), base + 1)
    last = log.last()
    with pytest.raises(DataError, match="retention"):
        restore_start(last, base + 1)


def test_a_large_delta_is_cut_into_parts_that_each_apply_alone() -> None:
    states = tuple(
        advance(new_session("hdfs", f"k{i}"), Ev(f"k{i}", 1, SourceOffset("raw", 0, i, 0), 0.0), 3)[0]
        for i in range(200)
    )
    record = StateRecord(RecordKind.DELTA, 1, NO_OFFSET, 5, states, ("hdfs|gone",))
    parts = encode_split(record, 4096)
    assert len(parts) > 1 and all(len(p) <= 4096 for p in parts)
    decoded = [StateRecord.decode(p) for p in parts]
    assert [s for d in decoded for s in d.put] == list(states)
    assert [k for d in decoded for k in d.removed] == ["hdfs|gone"]


def test_expiry_index_finds_due_sessions_without_scanning_live_ones() -> None:
    part = PartitionSessions(0)
    for i, key in enumerate(["a", "b", "c"]):
        part.put(SessionState("hdfs", key, touched_at=float(i)))
    part.checkpoint(0)
    part.put(SessionState("hdfs", "a", touched_at=10.0))  # a moved on: its old entry is stale
    part.checkpoint(1)
    assert [s.session_key for s in part.idle(now=4.5, timeout_s=3.0)] == ["b"]
    part.remove(["hdfs|b"])
    part.checkpoint(2)
    assert [s.session_key for s in part.idle(now=5.0, timeout_s=3.0)] == ["c"]
    part.remove(["hdfs|c"])
    part.checkpoint(3)
    assert part.idle(now=12.0, timeout_s=3.0) == []
    assert [s.session_key for s in part.idle(now=13.0, timeout_s=3.0)] == ["a"]
    # A session without a clock is due at once.
    part.put(SessionState("hdfs", "d"))
    part.checkpoint(4)
    assert "d" in [s.session_key for s in part.idle(now=0.0, timeout_s=3.0)]


def test_expiry_index_stays_bounded_while_sessions_move_on() -> None:
    part = PartitionSessions(0)
    for t in range(5000):
        part.put(SessionState("hdfs", f"k{t % 10}", touched_at=float(t)))
        part.checkpoint(t)
    assert len(part._expiry) <= 2 * len(part.states) + 1024
    assert sorted(s.session_key for s in part.idle(now=5000.0, timeout_s=5.0)) == [f"k{i}" for i in range(6)]


def test_discard_undoes_changes_and_keeps_them_expirable() -> None:
    part = PartitionSessions(0)
    part.put(SessionState("hdfs", "a", touched_at=0.0))
    part.checkpoint(0)
    due = part.idle(now=100.0, timeout_s=1.0)
    part.remove(s.key for s in due)
    part.put(SessionState("hdfs", "new", touched_at=100.0))
    assert part.discard() == 2
    assert list(part.states) == ["hdfs|a"] and part.checkpoint(1) is None
    assert [s.session_key for s in part.idle(now=100.0, timeout_s=1.0)] == ["a"]


def test_delta_names_each_changed_session_once_and_removals() -> None:
    store = PartitionedSessionStore(3)
    store.adopt(PartitionSessions(2))
    with pytest.raises(DataError, match="no partition in use"):
        store.get("hdfs", "a")
    store.use(2)
    for i, key in enumerate(["a", "a", "b", "a", "b"]):
        store.advance(Ev(key, i + 1, SourceOffset("raw", 0, i, 0), float(i)), float(i))
    record = store.checkpoint(7)
    assert record is not None and record.covers == 7
    assert sorted(s.session_key for s in record.put) == ["a", "b"] and record.removed == ()
    assert record.put[0].window == (1, 2, 4)
    b = store.get("hdfs", "b")
    assert b is not None
    store.remove([b])
    record = store.checkpoint(8)
    assert record is not None and record.put == () and record.removed == ("hdfs|b",)
    assert store.checkpoint(9) is None  # nothing changed: nothing to write
    assert len(store) == 1 and store.drop([2, 3]) == [2] and len(store) == 0
    with pytest.raises(DataError, match="not restored"):
        store.use(2)


def test_snapshot_policy_follows_delta_bytes_and_age() -> None:
    part = PartitionSessions(0)
    policy = SnapshotPolicy(growth=2.0, min_bytes=100, max_age_s=60.0)
    assert not part.snapshot_due(policy, 0.0)
    part.written(150)
    assert part.snapshot_due(policy, 1.0)
    part.snapshot_written(5, 100, 1.0)
    part.written(150)
    assert not part.snapshot_due(policy, 2.0)  # below 2 x the last snapshot
    part.written(60)
    assert part.snapshot_due(policy, 2.0)
    part.snapshot_written(9, 100, 2.0)
    assert part.snapshot_due(policy, 62.0)  # old: rewritten so retention never takes the base
