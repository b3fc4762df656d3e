"""Session state of one log-events partition, kept as a log of compact records (no Kafka here).

Why not a changelog record per session: a Faust table writes one record per session touched per
message, each awaited before the message's offset may be committed, and that was the largest single
cost of the worker. Here a handled log-events message costs one `delta` record (every session it
changed or removed, and the log-events offset it covers), written to the state topic's partition of
the same number, and awaited before the message is acknowledged (the commit stays behind the state).

Records of one state partition, each a versioned orjson object (never pickle):

- `open`: a worker took the partition over (restored it). Its `generation` is higher than any before,
  and records of an older generation that land after it are ignored on restore: a worker that lost
  the partition at a rebalance may still be finishing a message (a zombie), and its late delta must not
  overwrite what the new owner wrote.
- `delta`: the full state of every session a message changed (`put`) and the keys it removed.
- `snapshot` chunks: every session of the partition, cut so that no record exceeds `max_record_bytes`.

Every record names `base`, the offset of the first chunk of the newest snapshot whose chunks were all
acknowledged when it was written (-1: none yet, read from the start). Restore reads the last record's
`base` and replays from there: the base snapshot, then the deltas. Snapshots are taken when the
deltas written since the last one outweigh it (`SnapshotPolicy`), so a restore reads at most a few
snapshots' worth and snapshots cost at most about half of what the deltas cost.

Expiry does not scan: `PartitionSessions` keeps a heap of (touched_at, key) with lazy invalidation (an
entry whose session has moved on or left is dropped when it reaches the top).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

import orjson

from pipeline.errors import DataError
from pipeline.sessions import SessionState

STATE_LOG_SCHEMA_VERSION = 1
# `<name>/<version>` like every other topic's records; records written before it carry `"v": 1`.
STATE_LOG_SCHEMA = f"session-state-log/{STATE_LOG_SCHEMA_VERSION}"
# A broker refuses records above its message.max.bytes (1 MiB by default): stay well below.
DEFAULT_MAX_RECORD_BYTES = 512 * 1024
NO_OFFSET = -1


class RecordKind(StrEnum):
    OPEN = "open"
    DELTA = "delta"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True)
class StateRecord:
    """One record of a state partition (see the module docstring for the kinds)."""

    kind: RecordKind
    generation: int
    base: int  # offset of the newest complete snapshot's first chunk when written; -1: none
    covers: int = NO_OFFSET  # the log-events offset whose handling this state follows
    put: tuple[SessionState, ...] = ()
    removed: tuple[str, ...] = ()
    snapshot: int = 0  # snapshot number within its generation (chunks of one snapshot share it)
    chunk: int = 0
    chunks: int = 0

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "schema": STATE_LOG_SCHEMA,
                "kind": self.kind.value,
                "gen": self.generation,
                "base": self.base,
                "covers": self.covers,
                "put": [state.to_dict() for state in self.put],
                "removed": list(self.removed),
                "snapshot": self.snapshot,
                "chunk": self.chunk,
                "chunks": self.chunks,
            }
        )

    @classmethod
    def decode(cls, value: bytes) -> StateRecord:
        """Inverse of `encode`; another schema version or a malformed record raises DataError."""
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise DataError(f"session state log: record is not JSON ({exc}): {value[:120]!r}") from exc
        version = (data.get("schema") or data.get("v")) if isinstance(data, dict) else None
        if version not in (STATE_LOG_SCHEMA, STATE_LOG_SCHEMA_VERSION) or isinstance(version, bool):
            raise DataError(
                f"session state log: expected schema {STATE_LOG_SCHEMA!r}, got {version!r} in "
                f"{value[:120]!r}; run a worker of the version that wrote it, or delete the state topic "
                f"(sessions then start empty)"
            )
        try:
            return cls(
                kind=RecordKind(data["kind"]),
                generation=int(data["gen"]),
                base=int(data["base"]),
                covers=int(data["covers"]),
                put=tuple(SessionState.from_dict(s) for s in data["put"]),
                removed=tuple(str(k) for k in data["removed"]),
                snapshot=int(data["snapshot"]),
                chunk=int(data["chunk"]),
                chunks=int(data["chunks"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"session state log: malformed record {value[:120]!r} ({exc!r}); expected the fields of "
                f"StateRecord.encode"
            ) from exc


def encode_split(record: StateRecord, max_record_bytes: int) -> list[bytes]:
    """`record` encoded, cut into several records of the same kind when it is too large.

    A delta may be cut anywhere: each session's state is whole in one part, and a part applied
    without the others leaves each session at a state it really had (the rest are re-delivered).
    """
    value = record.encode()
    if len(value) <= max_record_bytes or len(record.put) + len(record.removed) <= 1:
        if len(value) > max_record_bytes:
            raise DataError(
                f"session state log: one session's state is {len(value)} bytes, above the "
                f"{max_record_bytes} a record may hold"
            )
        return [value]
    half_put, half_removed = len(record.put) // 2, len(record.removed) // 2
    first = StateRecord(
        record.kind, record.generation, record.base, record.covers,
        record.put[:half_put], record.removed[:half_removed],
    )  # fmt: skip
    second = StateRecord(
        record.kind, record.generation, record.base, record.covers,
        record.put[half_put:], record.removed[half_removed:],
    )  # fmt: skip
    return encode_split(first, max_record_bytes) + encode_split(second, max_record_bytes)


@dataclass(frozen=True)
class SnapshotPolicy:
    """When a partition writes a snapshot.

    When the delta bytes since the last snapshot reach `growth` times its size (at least
    `min_bytes`): a restore then reads at most (1 + growth) snapshots' worth, and snapshots cost at
    most 1/growth of the deltas. Also after `max_age_s` of the caller's clock, so the base of an
    idle partition never ages out of the topic's retention.
    """

    growth: float = 2.0
    min_bytes: int = 4 * 1024 * 1024
    max_age_s: float = 6 * 3600.0


@dataclass
class PartitionSessions:
    """The sessions of one log-events partition, its place in the state log, and its expiry index.

    Changes of the message being handled are applied at once (reads stay a dict lookup) and their
    previous values kept until `checkpoint` (which returns the delta to write) or `discard` (which
    undoes them, for a message that is dead-lettered instead of applied).
    """

    partition: int
    generation: int = 0
    base: int = NO_OFFSET
    covers: int = NO_OFFSET
    states: dict[str, SessionState] = field(default_factory=dict)
    bytes_since_snapshot: int = 0
    snapshot_bytes: int = 0
    snapshot_at: float | None = None  # caller's clock at the last snapshot (or restore)
    snapshots_written: int = 0
    _expiry: list[tuple[float, str]] = field(default_factory=list)
    _undo: dict[str, SessionState | None] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.states)

    def __iter__(self) -> Iterator[SessionState]:
        return iter(list(self.states.values()))

    def get(self, key: str) -> SessionState | None:
        return self.states.get(key)

    def put(self, state: SessionState) -> None:
        key = state.key
        if key not in self._undo:
            self._undo[key] = self.states.get(key)
        self.states[key] = state

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key in self.states:
                if key not in self._undo:
                    self._undo[key] = self.states[key]
                del self.states[key]

    @property
    def changed(self) -> int:
        """Sessions changed since the last checkpoint."""
        return len(self._undo)

    def discard(self) -> int:
        """Undo the changes since the last checkpoint; returns how many sessions they touched."""
        undo, self._undo = self._undo, {}
        for key, previous in undo.items():
            if previous is None:
                self.states.pop(key, None)
            else:
                self.states[key] = previous
                self._index(previous)  # idle() may have taken its entry off the heap
        return len(undo)

    def checkpoint(self, covers: int) -> StateRecord | None:
        """The delta of the changes since the last checkpoint (None when nothing changed), after
        the log-events offset `covers`; the changes become part of the partition's state."""
        undo, self._undo = self._undo, {}
        self.covers = max(self.covers, covers)
        if not undo:
            return None
        put, removed = [], []
        for key in undo:
            state = self.states.get(key)
            if state is None:
                removed.append(key)
            else:
                put.append(state)
                self._index(state)
        return StateRecord(
            RecordKind.DELTA, self.generation, self.base, self.covers, tuple(put), tuple(removed)
        )

    def written(self, record_bytes: int) -> None:
        """Count a delta the broker acknowledged, for the snapshot policy."""
        self.bytes_since_snapshot += record_bytes

    def snapshot_due(self, policy: SnapshotPolicy, now: float) -> bool:
        if self._undo:
            return False  # a snapshot holds checkpointed state only
        if self.snapshot_at is None:
            self.snapshot_at = now
        grown = self.bytes_since_snapshot >= max(policy.min_bytes, policy.growth * self.snapshot_bytes)
        return grown or now - self.snapshot_at >= policy.max_age_s

    def snapshot_records(self, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> list[bytes]:
        """Every session as snapshot chunks (at least one, maybe empty), each at most
        `max_record_bytes`. The snapshot becomes the base only through `snapshot_written`."""
        self.snapshots_written += 1
        envelope = len(StateRecord(RecordKind.SNAPSHOT, self.generation, self.base).encode())
        parts: list[list[SessionState]] = [[]]
        size = envelope
        for state in self.states.values():
            state_bytes = len(orjson.dumps(state.to_dict())) + 1
            if parts[-1] and size + state_bytes > max_record_bytes:
                parts.append([])
                size = envelope
            parts[-1].append(state)
            size += state_bytes
        values = [
            StateRecord(
                RecordKind.SNAPSHOT, self.generation, self.base, self.covers, tuple(part),
                snapshot=self.snapshots_written, chunk=i, chunks=len(parts),
            ).encode()
            for i, part in enumerate(parts)
        ]  # fmt: skip
        for value in values:
            if len(value) > max_record_bytes:
                raise DataError(
                    f"session state log: a snapshot chunk of partition {self.partition} is {len(value)} "
                    f"bytes, above the {max_record_bytes} a record may hold (one session too large?)"
                )
        return values

    def snapshot_written(self, first_offset: int, snapshot_bytes: int, now: float) -> None:
        """Every chunk of the snapshot is acknowledged, the first at `first_offset`: the new base."""
        self.base = first_offset
        self.snapshot_bytes = snapshot_bytes
        self.bytes_since_snapshot = 0
        self.snapshot_at = now

    def idle(self, now: float, timeout_s: float) -> list[SessionState]:
        """Sessions inactive for `timeout_s` of the detector clock (or without a clock), oldest
        first; they stay until `remove`. Costs O(due + stale entries), not O(sessions)."""
        due: list[SessionState] = []
        taken: set[str] = set()
        heap = self._expiry
        while heap and now - heap[0][0] >= timeout_s:
            touched_at, key = heapq.heappop(heap)
            state = self.states.get(key)
            if state is None or key in taken or _clock_of(state) != touched_at:
                continue  # stale: the session moved on (a newer entry exists) or left
            taken.add(key)
            due.append(state)
        # Sessions changed in this message are indexed at checkpoint; a message's own changes are
        # at its clock, never due unless the timeout is 0: look at them too.
        for key in self._undo:
            state = self.states.get(key)
            if state is not None and key not in taken and now - _clock_of(state) >= timeout_s:
                taken.add(key)
                due.append(state)
        return due

    def _index(self, state: SessionState) -> None:
        heapq.heappush(self._expiry, (_clock_of(state), state.key))
        # Stale entries pile up while busy sessions move on: rebuild when they outnumber live ones.
        if len(self._expiry) > 2 * len(self.states) + 1024:
            self._expiry = [(_clock_of(s), k) for k, s in self.states.items()]
            heapq.heapify(self._expiry)

    def reindex(self) -> None:
        """Build the expiry index from `states` (after a restore)."""
        self._expiry = [(_clock_of(s), k) for k, s in self.states.items()]
        heapq.heapify(self._expiry)


def _clock_of(state: SessionState) -> float:
    # A session without a clock is due at once (as `pipeline.sessions.is_expired` says).
    return state.touched_at if state.touched_at is not None else float("-inf")


def restore_start(last: StateRecord | None, low: int) -> int:
    """The first offset to read: the base named by the partition's last record, or the start."""
    if last is None or last.base == NO_OFFSET:
        return low
    if last.base < low:
        raise DataError(
            f"session state log: the newest snapshot (offset {last.base}) is gone from the state "
            f"topic (it starts at {low}); its retention is shorter than the snapshot age. Raise "
            f"retention.ms of the state topic; sessions of this partition cannot be restored"
        )
    return last.base


def restore(partition: int, records: Iterable[tuple[int, bytes]], base: int) -> PartitionSessions:
    """The partition's sessions from its records [base, ...) in offset order.

    The base snapshot's chunks must all be there. A record of a generation older than one already
    read is a zombie's and skipped. Any other snapshot chunk is the state at its point of the log,
    so it is applied like a delta of puts. The result's generation is one above any read, so the
    caller's `open` record fences off whoever wrote before.
    """
    part = PartitionSessions(partition, base=base)
    newest = 0
    base_chunks: set[int] = set()
    base_expected: int | None = None
    base_id: tuple[int, int] | None = None
    read_bytes = 0
    for offset, value in records:
        record = StateRecord.decode(value)
        if offset == base:
            if record.kind is not RecordKind.SNAPSHOT or record.chunk != 0:
                raise DataError(
                    f"session state log: partition {partition} offset {base} should start a snapshot, "
                    f"found a {record.kind.value} record (chunk {record.chunk}); the topic was changed "
                    f"by hand?"
                )
            base_expected = record.chunks
            base_id = (record.generation, record.snapshot)
        if record.generation < newest:
            continue
        newest = record.generation
        if record.kind is RecordKind.SNAPSHOT and (record.generation, record.snapshot) == base_id:
            base_chunks.add(record.chunk)
            part.snapshot_bytes += len(value)
        else:
            read_bytes += len(value)
        for state in record.put:
            part.states[state.key] = state
        for key in record.removed:
            part.states.pop(key, None)
        part.covers = max(part.covers, record.covers)
    if base != NO_OFFSET and (base_expected is None or len(base_chunks) != base_expected):
        raise DataError(
            f"session state log: partition {partition}'s base snapshot at offset {base} is incomplete "
            f"({len(base_chunks)} of {base_expected} chunks); the topic lost records"
        )
    part.generation = newest + 1
    part.bytes_since_snapshot = read_bytes
    part.reindex()
    return part


def open_record(part: PartitionSessions) -> bytes:
    """The `open` record a restored partition writes before it handles anything (see module doc)."""
    return StateRecord(RecordKind.OPEN, part.generation, part.base, part.covers).encode()
