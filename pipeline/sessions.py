"""Per-session state for online detection: the last l template ids, timestamps, causes already alerted.

The state is a small frozen record that round-trips through a plain JSON dict, so the session state
log (`pipeline.session_state_log`) can hold it and a restarted worker resumes where it stopped. The logic is
pure: `advance(state, event, window_size, now)` returns the new state and the next-event query for
the event; `is_expired(state, now, timeout_s)` decides inactivity. Time always comes in as an
argument. `SessionTracker` keeps many sessions in memory (offline replay, tests) with memory bounded
by expiry and a hard cap.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from pipeline.errors import DataError
from pipeline.windows import PAD_ID

log = logging.getLogger(__name__)

# Version 2 added `recent` (raw coordinates of the last events); version 1 states still load.
SESSION_SCHEMA_VERSION = 2
_READABLE_VERSIONS = frozenset({1, SESSION_SCHEMA_VERSION})

# (partition, offset, line) of a raw record in the raw topic: a few ints, so that an alert can read
# its raw lines back (`pipeline.raw_lines`) without any raw text kept in the state or the events.
RawPosition = tuple[int, int, int]
# A state keeps its positions flat, (p0, o0, l0, p1, o1, l1, ...): a flat list of ints is what costs
# least to build, write to the state log as JSON and read back, and that happens for every event.
FlatPositions = tuple[int, ...]


def positions(flat: FlatPositions) -> list[RawPosition]:
    """The (partition, offset, line) triples of a flat position tuple, oldest first."""
    it = iter(flat)
    return list(zip(it, it, it, strict=True))


class SessionEvent(Protocol):
    """What a session needs from an event (`pipeline.records.LogEvent` has these fields)."""

    @property
    def source(self) -> str: ...

    @property
    def session_key(self) -> str: ...

    @property
    def template_id(self) -> int: ...

    @property
    def timestamp(self) -> float | None: ...


def store_key(source: str, session_key: str) -> str:
    """The key of a session in a store: sessions of different sources never collide."""
    return f"{source}|{session_key}"


@dataclass(frozen=True)
class NextEventQuery:
    """One next-event test: does `next_event` follow `window` (left-padded with 0 to length l)?"""

    source: str
    session_key: str
    window: tuple[int, ...]
    next_event: int
    position: int  # index of the event in its session; 0 for the first event
    previous_ts: float | None = None  # the session's last known timestamp before the event (elapsed time)
    recent: FlatPositions = ()  # raw positions of the window's events, flat (see `positions`)


@dataclass(frozen=True)
class SessionState:
    """A session seen so far. `window` holds at most l ids, oldest first, without padding."""

    source: str
    session_key: str
    window: tuple[int, ...] = ()
    first_ts: float | None = None
    last_ts: float | None = None
    touched_at: float | None = None  # detector clock at the last event, for inactivity expiry
    event_count: int = 0
    alerted: frozenset[str] = field(default_factory=frozenset)  # AlertKind values already sent
    # Per raw topic-partition ("topic/partition"), the (offset, line) of the last event applied. Kafka
    # delivers at least once: after a crash a worker re-reads messages whose effects may already be
    # in the state log, and an event at or before its mark is such a re-delivery.
    marks: tuple[tuple[str, int, int], ...] = ()
    # Raw positions of the last l events (as many as `window`), oldest first and flat (see
    # `positions`): what an alert reads back to show its raw lines. Events outside Kafka add none.
    recent: FlatPositions = ()

    @property
    def key(self) -> str:
        return store_key(self.source, self.session_key)

    @property
    def raw_topic(self) -> str:
        """The raw topic the session's events came from ("" when none came from Kafka)."""
        return self.marks[-1][0].rpartition("/")[0] if self.marks else ""

    def has_alerted(self, kind: str) -> bool:
        return kind in self.alerted

    def with_alerted(self, kind: str) -> SessionState:
        """The state after an alert of `kind` was emitted (one alert per session per cause)."""
        return self if kind in self.alerted else replace(self, alerted=self.alerted | {kind})

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict (in the session state log); lists and numbers only, no pickle."""
        return {
            "v": SESSION_SCHEMA_VERSION,
            "source": self.source,
            "session_key": self.session_key,
            "window": list(self.window),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "touched_at": self.touched_at,
            "event_count": self.event_count,
            "alerted": sorted(self.alerted),
            "marks": [list(mark) for mark in self.marks],
            "recent": list(self.recent),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionState:
        """Inverse of `to_dict` (v1 values load without raw positions); another schema version or
        shape raises DataError."""
        version = data.get("v") if isinstance(data, Mapping) else None
        if version not in _READABLE_VERSIONS:
            raise DataError(
                f"session state: expected schema v1 or v{SESSION_SCHEMA_VERSION}, got {version!r} in "
                f"{str(data)[:120]}; delete the session state topic or migrate it"
            )
        try:
            return cls(
                source=str(data["source"]),
                session_key=str(data["session_key"]),
                window=tuple(int(i) for i in data["window"]),
                first_ts=_optional_float(data["first_ts"]),
                last_ts=_optional_float(data["last_ts"]),
                touched_at=_optional_float(data["touched_at"]),
                event_count=int(data["event_count"]),
                alerted=frozenset(str(k) for k in data["alerted"]),
                marks=tuple((str(m[0]), int(m[1]), int(m[2])) for m in data.get("marks", ())),
                recent=_flat_positions(data.get("recent", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"session state: malformed value {str(data)[:120]} ({exc!r}); expected the fields of "
                f"SessionState.to_dict, delete or repair the session state topic"
            ) from exc


def new_session(source: str, session_key: str) -> SessionState:
    return SessionState(source=source, session_key=session_key)


def raw_position(event: object) -> tuple[str, int, int] | None:
    """("topic/partition", offset, line) of the raw record behind an event; None outside Kafka."""
    raw = getattr(event, "raw", None)
    if raw is None or raw.offset < 0:
        return None
    return f"{raw.topic}/{raw.partition}", int(raw.offset), int(raw.line)


def is_redelivery(state: SessionState, event: object) -> bool:
    """True when the event's raw position is at or before what the session already applied."""
    position = raw_position(event)
    if position is None:
        return False
    stream, offset, line = position
    return any(m[0] == stream and (offset, line) <= (m[1], m[2]) for m in state.marks)


def _marked(
    marks: tuple[tuple[str, int, int], ...], position: tuple[str, int, int] | None
) -> tuple[tuple[str, int, int], ...]:
    if position is None:
        return marks
    return (*(m for m in marks if m[0] != position[0]), position)


def advance(
    state: SessionState, event: SessionEvent, window_size: int, now: float | None = None
) -> tuple[SessionState, NextEventQuery]:
    """Append one event: return the new state and the query (window before the event, the event).

    `now` is the detector's clock for expiry; without it the event's timestamp is used. The clock of
    a session never goes backwards, so a late event cannot make it look older than it is.
    """
    template_id = int(event.template_id)
    if template_id <= PAD_ID:
        raise DataError(
            f"session {state.key}: template id must be positive (0 is padding), got {template_id}; "
            f"the parser should dead-letter such a record"
        )
    if window_size < 1:
        raise DataError(f"session {state.key}: window_size must be >= 1, got {window_size}")
    # The padding rule of training (`pipeline.windows.last_window`), in plain tuples: this is the hot path.
    tail = state.window[-window_size:]
    window = (PAD_ID,) * (window_size - len(tail)) + tail
    query = NextEventQuery(
        state.source, state.session_key, window, template_id, state.event_count, state.last_ts, state.recent
    )
    position = raw_position(event)
    recent = state.recent
    if position is not None:
        raw = event.raw  # type: ignore[attr-defined]  # raw_position found it
        recent = (*recent, int(raw.partition), position[1], position[2])[-3 * window_size :]
    ts = event.timestamp
    clock = now if now is not None else ts
    new_state = SessionState(
        source=state.source,
        session_key=state.session_key,
        window=(*tail, template_id)[-window_size:],
        first_ts=state.first_ts if state.first_ts is not None else ts,
        last_ts=ts if ts is not None else state.last_ts,
        touched_at=latest_time(state.touched_at, clock),
        event_count=state.event_count + 1,
        alerted=state.alerted,
        marks=_marked(state.marks, position),
        recent=recent,
    )
    return new_state, query


def is_expired(state: SessionState, now: float, timeout_s: float) -> bool:
    """True when the session saw no event for `timeout_s` of the detector clock (or never had a clock)."""
    return state.touched_at is None or now - state.touched_at >= timeout_s


class SessionStore(Protocol):
    """Where a detector keeps session states: the in-memory tracker, or the partitions of a worker
    (`pipeline.session_partitions.PartitionedSessionStore`)."""

    def advance(self, event: SessionEvent, now: float | None = None) -> NextEventQuery | None:
        """The event's query; None when the event is a re-delivery its session already applied."""
        ...

    def get(self, source: str, session_key: str) -> SessionState | None: ...

    def put(self, state: SessionState) -> None: ...

    # What a whole batch needs (`pipeline.columnar_detect`): the l of the windows, the clock each
    # event would get from `advance`, and the states a batch moved on.
    @property
    def window_size(self) -> int: ...

    def event_clock(self, timestamps: np.ndarray, now: float | None) -> np.ndarray:
        """(n,) the clock `advance` would use for each of n events in order (NaN: none)."""
        ...

    def touch(self, states: Sequence[SessionState]) -> None:
        """Store states a batch advanced, in the order of their sessions' last event in it."""
        ...


def fixed_clock(timestamps: np.ndarray, now: float | None) -> np.ndarray:
    """`advance`'s clock per event for a caller's `now`: `now`, or each event's own time."""
    return timestamps if now is None else np.full(len(timestamps), now, np.float64)


class SessionTracker:
    """Many sessions in memory, least recently touched first, bounded by expiry and `max_sessions`.

    The tracker keeps a high-water mark of the clock, so its order by last touch is also its order by
    `touched_at` and `expire` stops at the first live session instead of scanning all of them.
    """

    def __init__(self, window_size: int, timeout_s: float, max_sessions: int = 1_000_000) -> None:
        if window_size < 1 or timeout_s <= 0 or max_sessions < 1:
            raise DataError(
                f"session tracker: expected window_size >= 1, timeout_s > 0, max_sessions >= 1; got "
                f"{window_size}, {timeout_s}, {max_sessions}"
            )
        self.window_size = window_size
        self.timeout_s = timeout_s
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, SessionState] = OrderedDict()
        self._clock: float | None = None
        self._evicted: list[SessionState] = []

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[SessionState]:
        return iter(list(self._sessions.values()))

    def get(self, source: str, session_key: str) -> SessionState | None:
        return self._sessions.get(store_key(source, session_key))

    def put(self, state: SessionState) -> None:
        """Replace a session's state without touching its recency (e.g. to record an alert)."""
        self._sessions[state.key] = state

    def advance(self, event: SessionEvent, now: float | None = None) -> NextEventQuery | None:
        """Advance the event's session (created on first sight) and return its query (None: re-delivery)."""
        self._clock = latest_time(self._clock, now if now is not None else event.timestamp)
        key = store_key(event.source, event.session_key)
        state = self._sessions.pop(key, None) or new_session(event.source, event.session_key)
        if is_redelivery(state, event):
            self._sessions[key] = state
            return None
        state, query = advance(state, event, self.window_size, self._clock)
        self._sessions[key] = state
        if len(self._sessions) > self.max_sessions:
            _, oldest = self._sessions.popitem(last=False)
            log.warning("session tracker full (%d): closing %s early", self.max_sessions, oldest.key)
            self._evicted.append(oldest)
        return query

    def event_clock(self, timestamps: np.ndarray, now: float | None) -> np.ndarray:
        """The tracker's clock at each event (its high-water mark, as `advance` keeps it), moved on."""
        start = np.nan if self._clock is None else self._clock
        running = np.fmax.accumulate(np.concatenate(([start], fixed_clock(timestamps, now))))
        if not np.isnan(running[-1]):
            self._clock = float(running[-1])
        return running[1:]

    def touch(self, states: Sequence[SessionState]) -> None:
        """Store advanced states as most recently touched (a batch's re-deliveries touch nothing,
        unlike `advance`: offline replays have none), evicting beyond `max_sessions`."""
        for state in states:
            self._sessions.pop(state.key, None)
            self._sessions[state.key] = state
        while len(self._sessions) > self.max_sessions:
            _, oldest = self._sessions.popitem(last=False)
            log.warning("session tracker full (%d): closing %s early", self.max_sessions, oldest.key)
            self._evicted.append(oldest)

    def expire(self, now: float | None = None) -> list[SessionState]:
        """Remove and return sessions inactive for `timeout_s` (and any evicted by the cap)."""
        self._clock = latest_time(self._clock, now)
        expired, self._evicted = self._evicted, []
        while self._sessions and self._clock is not None:
            key, state = next(iter(self._sessions.items()))
            if not is_expired(state, self._clock, self.timeout_s):
                break
            del self._sessions[key]
            expired.append(state)
        return expired

    def drain(self) -> list[SessionState]:
        """Remove and return every session (end of an offline replay)."""
        states = [*self._evicted, *self._sessions.values()]
        self._evicted = []
        self._sessions.clear()
        return states


def latest_time(current: float | None, candidate: float | None) -> float | None:
    """The later of two optional times (None: unknown, never later than a known one)."""
    if candidate is None:
        return current
    return candidate if current is None else max(current, candidate)


def _flat_positions(value: Any) -> FlatPositions:
    flat = tuple(map(int, value))
    if len(flat) % 3:
        raise ValueError(f"recent: expected (partition, offset, line) triples, got {len(flat)} numbers")
    return flat


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
