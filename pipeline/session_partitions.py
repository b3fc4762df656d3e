"""`SessionStore` over the log-events partitions a worker holds, each a `PartitionSessions`.

A message of log-events partition p carries only sessions whose key maps to p
(`pipeline.partitioning`), so the store works on one partition at a time: `use(p)` before handling a
message of p, and every read and change goes to p's sessions. A partition comes in restored
(`adopt`) and leaves when revoked (`drop`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.errors import DataError
from pipeline.session_state_log import PartitionSessions, StateRecord
from pipeline.sessions import (
    NextEventQuery,
    SessionEvent,
    SessionState,
    advance,
    fixed_clock,
    is_redelivery,
    new_session,
    store_key,
)


class PartitionedSessionStore:
    """The sessions of the partitions this worker holds; the `SessionStore` of `Detector`."""

    def __init__(self, window_size: int) -> None:
        self.window_size = window_size
        self.partitions: dict[int, PartitionSessions] = {}
        self.current: PartitionSessions | None = None

    def __len__(self) -> int:
        return sum(len(part) for part in self.partitions.values())

    def holds(self, partition: int) -> bool:
        return partition in self.partitions

    def adopt(self, part: PartitionSessions) -> None:
        """A restored partition joins the store."""
        self.partitions[part.partition] = part

    def drop(self, partitions: Iterable[int]) -> list[int]:
        """Forget revoked partitions; a message still being handled keeps its `current` object (its
        delta carries the old generation, so a new owner's restore ignores it if it lands late)."""
        return [p for p in partitions if self.partitions.pop(p, None) is not None]

    def use(self, partition: int) -> PartitionSessions:
        part = self.partitions.get(partition)
        if part is None:
            raise DataError(f"session store: partition {partition} is not restored here; restore it first")
        self.current = part
        return part

    def _part(self) -> PartitionSessions:
        if self.current is None:
            raise DataError("session store: no partition in use; call use(partition) per message")
        return self.current

    def get(self, source: str, session_key: str) -> SessionState | None:
        return self._part().get(store_key(source, session_key))

    def put(self, state: SessionState) -> None:
        self._part().put(state)

    def advance(self, event: SessionEvent, now: float | None = None) -> NextEventQuery | None:
        part = self._part()
        key = store_key(event.source, event.session_key)
        state = part.get(key) or new_session(event.source, event.session_key)
        if is_redelivery(state, event):
            return None
        state, query = advance(state, event, self.window_size, now)
        part.put(state)
        return query

    def event_clock(self, timestamps: np.ndarray, now: float | None) -> np.ndarray:
        return fixed_clock(timestamps, now)

    def touch(self, states: Sequence[SessionState]) -> None:
        part = self._part()
        for state in states:
            part.put(state)

    def idle(self, now: float, timeout_s: float) -> list[SessionState]:
        """Inactive sessions of the partition in use; they stay until `remove` (so a closed session's
        alerts go out before its removal is written: see `agents.detect`)."""
        return self._part().idle(now, timeout_s)

    def remove(self, states: Iterable[SessionState]) -> None:
        self._part().remove(state.key for state in states)

    def discard(self) -> int:
        """Undo the changes of the message being handled (it is dead-lettered, not applied)."""
        return 0 if self.current is None else self.current.discard()

    def checkpoint(self, covers: int) -> StateRecord | None:
        """The delta of the message being handled (None when it changed nothing)."""
        return self._part().checkpoint(covers)
