"""Columnar next-event detection: one `log-events` message in numpy, Python once per session and alert.

`ColumnarDetector.process_columns(columns, now)` returns exactly what `Detector.process` returns for
the same events (`columns.to_events()`) on a store in the same state: the same alerts, positions,
causes, rejections and session states (`tests/unit/test_columnar_detect.py` checks it on HDFS, BGL
and synthetic streams). Only the work is arranged differently:

- rows are grouped by session with one stable sort; each session's previous window and the
  message's template ids are laid out in one array, so the (window, next event) matrix is one fancy
  index (`_windows`);
- the scorer sees each distinct (window, next) row once (`np.unique` over the rows as bytes), and
  the causes are boolean columns;
- Python runs once per distinct session (read its state, build its new `SessionState`) and once per
  alert; re-deliveries are found with a vectorised check and replayed row by row only for the
  sessions that have one (after a crash, never in steady state).

The per-event `Detector.process` stays as the reference this module is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from pipeline.alerts import Alert, AlertKind
from pipeline.detection import DetectionResult, Detector, coordinates, window_lines
from pipeline.errors import InferenceError
from pipeline.event_columns import EventColumns
from pipeline.parameter_detection import parameter_alert
from pipeline.records import LogEvent
from pipeline.scoring import NextEventBatch
from pipeline.sessions import NextEventQuery, SessionState, latest_time, new_session
from pipeline.windows import PAD_ID


@dataclass(frozen=True)
class _Groups:
    """The applied rows of a batch grouped by session: `rows[starts[g]:ends[g]]` are session g's rows,
    in event order; `group[k]` is the session of sorted row k."""

    rows: np.ndarray  # (N,) row indices into the columns
    group: np.ndarray  # (N,) session index per sorted row
    starts: np.ndarray  # (G,)
    ends: np.ndarray  # (G,)


class ColumnarDetector(Detector):
    """A `Detector` that also takes whole `EventColumns` batches (`process_columns`)."""

    async def process_columns(self, columns: EventColumns, now: float | None = None) -> DetectionResult:
        """Advance every session of the batch, score each distinct (window, next) row once, alert."""
        n = len(columns)
        if not n:
            return DetectionResult((), 0)
        window_size = self.store.window_size
        template_ids = columns.template_ids
        # Sessions by (source, key) pair; rows of one session keep their order (stable sort).
        pair = columns.source_index.astype(np.int64) * max(len(columns.sessions), 1) + columns.session_index
        order = np.argsort(pair, kind="stable")
        first = _group_starts(pair[order])
        keys = [(columns.sources[s], columns.sessions[k]) for s, k in _pair_names(columns, order[first])]
        states = [self.store.get(source, key) or new_session(source, key) for source, key in keys]
        # As `Detector.process`: a re-delivery is skipped first; a new event with id 0 is refused.
        valid = template_ids[order] > PAD_ID
        # Raw stream (topic, partition) of every row, and the mark name of each: once per batch.
        every_row = np.arange(n)
        codes = _stream_codes(columns, every_row)
        names = _stream_names(columns, every_row, codes)
        fresh = _not_redelivered(columns, order, first, states, valid, codes[order], names)
        redelivered = len(order) - int(fresh.sum())
        rejected = tuple(
            (event, f"session {event.source}|{event.session_key}: template id must be positive (0 is "
             f"padding), got {event.template_id}; the parser should dead-letter such a record")
            for event in _events(columns, order[fresh & ~valid])
        )  # fmt: skip
        applied = fresh & valid
        if not applied.all():
            keep_group = np.add.reduceat(applied.astype(np.int64), first) > 0
            states = [s for s, keep in zip(states, keep_group.tolist(), strict=True) if keep]
            order = order[applied]
            first = _group_starts(pair[order])
        if not len(order):
            return DetectionResult((), 0, rejected, redelivered)
        groups = _grouped(order, first)
        windows, ctx = _windows(groups, states, template_ids, window_size)
        nexts = template_ids[groups.rows]
        counts = np.fromiter((s.event_count for s in states), np.int64, len(states))
        rank = np.arange(len(groups.rows)) - groups.starts[groups.group]
        positions = counts[groups.group] + rank
        clock = self.store.event_clock(columns.timestamps, now)[groups.rows]
        new_states = _advanced(groups, states, columns, ctx, clock, window_size, codes[groups.rows], names)
        self.store.touch([new_states[g] for g in np.argsort(groups.rows[groups.ends - 1]).tolist()])

        matrix = np.ascontiguousarray(np.concatenate([windows, nexts[:, None]], axis=1))
        distinct, first_row, inverse = np.unique(
            matrix.view(np.dtype((np.void, matrix.dtype.itemsize * matrix.shape[1]))).ravel(),
            return_index=True,
            return_inverse=True,
        )
        unique_rows = matrix[first_row]
        window_part, next_part = unique_rows[:, :window_size], unique_rows[:, window_size:]
        distinct_batch = NextEventBatch(np.ascontiguousarray(window_part), np.ascontiguousarray(next_part))
        scores = await self.scorer.score(distinct_batch)
        if len(scores) != len(distinct):
            raise InferenceError(
                f"detection: scorer {scores.model} v{scores.version} returned {len(scores)} rows for a "
                f"batch of {len(distinct)}; the backend must answer every row"
            )
        inverse = inverse.reshape(-1)
        oov = ~scores.next_known[inverse, 0] | columns.oov[groups.rows]
        unexpected = scores.anomalous[inverse, 0] & ((positions > 0) | self.score_first_event) & ~oov
        batch = _Batch(columns, groups, states, windows, positions, window_size)

        alerts: list[Alert] = []
        accepted = self._accepted(scores, distinct_batch)  # per distinct row; None without feedback
        flagged = np.flatnonzero(oov | unexpected)
        flagged = flagged[np.argsort(groups.rows[flagged], kind="stable")]  # in event order
        for k, event in zip(flagged.tolist(), _events(columns, groups.rows[flagged]), strict=True):
            kind = AlertKind.OOV_EVENT if oov[k] else AlertKind.UNEXPECTED_NEXT_EVENT
            if accepted is not None and accepted[inverse[k]]:
                self._suppressed(kind)  # an operator marked this (window, next) normal
                continue
            query = batch.query(k)
            admitted, state = self._claim(kind, query)
            if admitted:
                alerts.append(self._explain(kind, query, event, state, scores, int(inverse[k])))
        if self.parameters is not None:
            alerts.extend(await self._parameter_alerts(batch))
        return DetectionResult(tuple(alerts), len(groups.rows), rejected, redelivered)

    async def _parameter_alerts(self, batch: _Batch) -> list[Alert]:
        # DeepLog's parameter model reads each event's parameters: events are built for every
        # applied row here (only when a parameter model is deployed), in event order.
        assert self.parameters is not None
        in_order = np.argsort(batch.groups.rows, kind="stable")
        owners = _events(batch.columns, batch.groups.rows[in_order])
        previous = [None if t != t else t for t in batch.previous_ts[in_order].tolist()]
        alerts: list[Alert] = []
        kind = AlertKind.PARAMETER_VALUE
        for found in await self.parameters.check(owners, previous):
            if self._parameter_accepted(found):
                self._suppressed(kind)
                continue
            k = int(in_order[found.index])
            query, event = batch.query(k), owners[found.index]
            admitted, state = self._claim(kind, query)
            if admitted:
                first_ts = state.first_ts if state is not None else None
                raw = coordinates(event)
                alert = parameter_alert(found, query, event, first_ts, self._text, raw)
                alerts.append(replace(alert, event_time=event.timestamp, lines=window_lines(query, raw)))
        return alerts


class _Batch:
    """What building a query for one sorted row needs (only flagged rows get one)."""

    def __init__(
        self,
        columns: EventColumns,
        groups: _Groups,
        states: Sequence[SessionState],
        windows: np.ndarray,
        positions: np.ndarray,
        window_size: int,
    ) -> None:
        self.columns, self.groups, self.states = columns, groups, states
        self.windows, self.positions, self.window_size = windows, positions, window_size

    @cached_property
    def previous_ts(self) -> np.ndarray:
        return _previous_timestamps(self.groups, self.states, self.columns.timestamps)

    def query(self, k: int) -> NextEventQuery:
        g = int(self.groups.group[k])
        state, ts = self.states[g], float(self.previous_ts[k])
        return NextEventQuery(
            state.source,
            state.session_key,
            tuple(self.windows[k].tolist()),
            int(self.columns.template_ids[self.groups.rows[k]]),
            int(self.positions[k]),
            None if ts != ts else ts,
            self._recent(g, k),
        )

    def _recent(self, g: int, k: int) -> tuple[int, ...]:
        """Raw positions of the window before sorted row k: the state's, then its session's earlier rows."""
        cols, start = self.columns, int(self.groups.starts[g])
        rows = self.groups.rows[start:k]
        rows = rows[cols.offsets[rows] >= 0][-self.window_size :]
        flat = list(self.states[g].recent)
        for r in rows.tolist():
            flat += (int(cols.partitions[r]), int(cols.offsets[r]), int(cols.lines[r]))
        return tuple(flat[-3 * self.window_size :])


def _events(columns: EventColumns, rows: np.ndarray) -> list[LogEvent]:
    return columns.take(np.sort(rows)).to_events() if len(rows) else []


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Indices where a new value starts in a sorted array (0 first, none for an empty one)."""
    if not len(sorted_keys):
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))


def _grouped(order: np.ndarray, first: np.ndarray) -> _Groups:
    ends = np.append(first[1:], len(order))
    group = np.repeat(np.arange(len(first)), ends - first)
    return _Groups(order, group, first, ends)


def _pair_names(columns: EventColumns, rows: np.ndarray) -> list[tuple[int, int]]:
    return list(zip(columns.source_index[rows].tolist(), columns.session_index[rows].tolist(), strict=True))


def _stream_codes(columns: EventColumns, rows: np.ndarray) -> np.ndarray:
    """An int per row naming its raw (topic, partition) within the batch; -1 for rows not from Kafka."""
    partitions = columns.partitions[rows].astype(np.int64)
    codes = columns.topic_index[rows].astype(np.int64) * (int(columns.partitions.max()) + 2) + partitions + 1
    return np.where(columns.offsets[rows] >= 0, codes, -1)


def _stream_names(columns: EventColumns, rows: np.ndarray, codes: np.ndarray) -> dict[int, str]:
    """ "topic/partition" (as in `SessionState.marks`) of each stream code of `rows`."""
    distinct, first = np.unique(codes, return_index=True)
    picked = rows[first]
    topics = [columns.topics[t] for t in columns.topic_index[picked].tolist()]
    return {
        code: f"{topic}/{partition}"
        for code, topic, partition in zip(
            distinct.tolist(), topics, columns.partitions[picked].tolist(), strict=True
        )
    }


def _single_stream(codes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(G,) bool: whether all rows of each group share one stream code (sorted rows, group starts)."""
    return np.minimum.reduceat(codes, starts) == np.maximum.reduceat(codes, starts)


def _not_redelivered(
    columns: EventColumns,
    order: np.ndarray,
    first: np.ndarray,
    states: Sequence[SessionState],
    valid: np.ndarray,
    codes: np.ndarray,
    names: dict[int, str],
) -> np.ndarray:
    """(len(order),) bool: which sorted rows are not re-deliveries of what their session applied.

    Fast check: within each session and raw stream the positions strictly increase and the first is
    past the session's mark; only sessions that fail it are replayed row by row as `is_redelivery`
    does (a refused row, `valid` False, moves no mark).
    """
    fresh = np.ones(len(order), bool)
    offsets = columns.offsets[order]
    if not (offsets >= 0).any():
        return fresh
    lines = columns.lines[order]
    group = np.repeat(np.arange(len(first)), np.diff(np.append(first, len(order))))
    # Rows by (session, stream) in event order; sorted rows already are when each session has one.
    by_pair = (
        np.arange(len(order))
        if _single_stream(codes, first).all()
        else np.lexsort((np.arange(len(order)), codes, group))
    )
    g, c, o, li = group[by_pair], codes[by_pair], offsets[by_pair], lines[by_pair]
    same = (g[1:] == g[:-1]) & (c[1:] == c[:-1])
    later = (o[1:] > o[:-1]) | ((o[1:] == o[:-1]) & (li[1:] > li[:-1]))
    suspect = set(g[1:][same & ~later & (c[1:] >= 0)].tolist())
    has_marks = np.fromiter((bool(state.marks) for state in states), bool, len(states))
    heads = by_pair[np.flatnonzero(np.concatenate(([True], ~same)))]
    heads = heads[has_marks[group[heads]] & (codes[heads] >= 0)]
    for gi, code, offset, line in zip(
        group[heads].tolist(),
        codes[heads].tolist(),
        offsets[heads].tolist(),
        lines[heads].tolist(),
        strict=True,
    ):
        name = names[code]
        for mark in states[gi].marks:
            if mark[0] == name and (offset, line) <= (mark[1], mark[2]):
                suspect.add(gi)
    for gi in sorted(suspect):
        start, end = int(first[gi]), int(first[gi + 1]) if gi + 1 < len(first) else len(order)
        seen = {m[0]: (m[1], m[2]) for m in states[gi].marks}
        for k in range(start, end):
            if codes[k] < 0:
                continue
            name, at = names[int(codes[k])], (int(offsets[k]), int(lines[k]))
            if name in seen and at <= seen[name]:
                fresh[k] = False
            elif valid[k]:
                seen[name] = at
    return fresh


def _windows(
    groups: _Groups, states: Sequence[SessionState], template_ids: np.ndarray, window_size: int
) -> tuple[np.ndarray, list[int]]:
    """(N, l) windows before each sorted row, and the context they were cut from, as a list.

    The context holds, per session, its previous window left-padded to l, then its rows' ids: row k
    of session g sits at k + (g + 1) * l, and its window is the l ids before it.
    """
    n, size = len(groups.rows), window_size
    ctx = np.empty(n + len(states) * size, np.int64)
    prefix: list[int] = []
    for state in states:
        tail = state.window[-size:]
        prefix += (PAD_ID,) * (size - len(tail))
        prefix += tail
    prefix_at = ((groups.starts + np.arange(len(states)) * size)[:, None] + np.arange(size)).ravel()
    ctx[prefix_at] = prefix
    slots = np.arange(n) + (groups.group + 1) * size
    ctx[slots] = template_ids[groups.rows]
    return ctx[slots[:, None] - size + np.arange(size)], ctx.tolist()


def _previous_timestamps(
    groups: _Groups, states: Sequence[SessionState], timestamps: np.ndarray
) -> np.ndarray:
    """(N,) float: each row's session's last timestamp before it (NaN: none), as `previous_ts`."""
    ts = timestamps[groups.rows]
    index = np.arange(len(ts))
    last_valid = np.maximum.accumulate(np.where(np.isnan(ts), -1, index))
    before = np.concatenate(([-1], last_valid[:-1]))
    inside = before >= groups.starts[groups.group]
    state_last = np.array([np.nan if s.last_ts is None else s.last_ts for s in states], np.float64)
    return np.where(inside, ts[np.maximum(before, 0)], state_last[groups.group])


def _advanced(
    groups: _Groups,
    states: Sequence[SessionState],
    columns: EventColumns,
    ctx: list[int],
    clock: np.ndarray,
    window_size: int,
    codes: np.ndarray,
    names: dict[int, str],
) -> list[SessionState]:
    """Each session's state after its rows (what `pipeline.sessions.advance` gives row by row)."""
    rows, starts, ends = groups.rows, groups.starts, groups.ends
    ts = columns.timestamps[rows]
    index = np.arange(len(rows))
    valid = ~np.isnan(ts)
    padded_ts = np.append(ts, np.nan)
    first_ts = padded_ts[np.minimum.reduceat(np.where(valid, index, len(rows)), starts)].tolist()
    last_ts = padded_ts[np.maximum.reduceat(np.where(valid, index, -1), starts)].tolist()
    touched = np.fmax.reduceat(clock, starts).tolist()
    single = _single_stream(codes, starts).tolist()
    offs, parts, lns, code_list = (
        columns.offsets[rows].tolist(),
        columns.partitions[rows].tolist(),
        columns.lines[rows].tolist(),
        codes.tolist(),
    )
    out: list[SessionState] = []
    for g, (state, start, end) in enumerate(zip(states, starts.tolist(), ends.tolist(), strict=True)):
        marks = state.marks
        if single[g]:
            # One stream (or none): its last row is the mark, the last l rows the raw positions.
            tail = range(max(start, end - window_size), end) if code_list[start] >= 0 else range(0)
            if code_list[start] >= 0:
                name = names[code_list[start]]
                marks = (*(m for m in marks if m[0] != name), (name, offs[end - 1], lns[end - 1]))
        else:
            tail = _last_from_kafka(code_list, start, end, window_size)
            for k in range(start, end):
                if code_list[k] >= 0:
                    name = names[code_list[k]]
                    marks = (*(m for m in marks if m[0] != name), (name, offs[k], lns[k]))
        recent = list(state.recent)
        for k in tail:
            recent += (parts[k], offs[k], lns[k])
        end_ctx = end + (g + 1) * window_size
        keep = min(window_size, len(state.window) + end - start)
        first_t, last_t, touched_t = first_ts[g], last_ts[g], touched[g]
        out.append(
            SessionState(
                source=state.source,
                session_key=state.session_key,
                window=tuple(ctx[end_ctx - keep : end_ctx]),
                first_ts=state.first_ts if state.first_ts is not None else _time(first_t),
                last_ts=last_t if last_t == last_t else state.last_ts,
                touched_at=latest_time(state.touched_at, _time(touched_t)),
                event_count=state.event_count + end - start,
                alerted=state.alerted,
                marks=marks,
                recent=tuple(recent[-3 * window_size :]),
            )
        )
    return out


def _last_from_kafka(codes: list[int], start: int, end: int, count: int) -> list[int]:
    """The last `count` indices in [start, end) of rows from Kafka (code >= 0), in order: rows from
    elsewhere have no raw position, so older positions stay in a session's `recent` instead."""
    found: list[int] = []
    k = end - 1
    while k >= start and len(found) < count:
        if codes[k] >= 0:
            found.append(k)
        k -= 1
    return found[::-1]


def _time(value: float) -> float | None:
    return None if value != value else value
