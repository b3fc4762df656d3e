"""Columnar event batches: the `event-batch/2` wire format of `log-events`.

`event-batch/1` (`pipeline.records.EventBatch`) writes one JSON object per event, repeating the
source, session key, template text and raw coordinates in every one (~377 bytes a line on HDFS).
`event-batch/2` writes one column per field instead, strings once per batch:

| field                 | shape / dtype        | meaning                                          |
|-----------------------|----------------------|--------------------------------------------------|
| `schema`              | `"event-batch/2"`    | name and version; other versions are refused     |
| `n`                   | int                  | number of events (rows)                          |
| `sources`             | list of str          | distinct `LogEvent.source` values                |
| `sessions`            | list of str          | distinct session keys                            |
| `topics`              | list of str          | distinct raw topics                              |
| `template_ids`        | array (T,) `<i8`     | distinct (id, text) pairs: the ids ...           |
| `template_texts`      | list of T str        | ... and their texts                              |
| `params`              | str or list of str   | every event's parameters, flat, in row order     |
| `columns.source`      | (n,) unsigned int    | index into `sources`                             |
| `columns.session`     | (n,) unsigned int    | index into `sessions`                            |
| `columns.template`    | (n,) unsigned int    | index into `template_ids` / `template_texts`     |
| `columns.timestamp`   | (n,) `<f8`           | event time, Unix s; NaN means none               |
| `columns.oov`         | (n,) `|b1`           | template unknown to the deployed set             |
| `columns.topic`       | (n,) unsigned int    | index into `topics`                              |
| `columns.partition`   | (n,) signed int      | raw partition                                    |
| `columns.offset`      | (n,) signed int      | raw offset                                       |
| `columns.line`        | (n,) signed int      | record index within the raw message              |
| `columns.ingested_at` | (n,) `<f8`           | raw message's Kafka timestamp; NaN means none    |
| `columns.param_end`   | (n,) signed int      | end of each row's parameters in the flat list    |
| `watermarks`, `raw_partitions` | as in v1    | ticks only (`pipeline.stream_clock`)             |

An array is `[dtype, data]`: a numpy dtype string (little-endian, e.g. `"<u2"`) and either the
base64 of the array's bytes or, when every row holds the same value, that value (a JSON number or
boolean; null for a float column of NaN): one raw message's events share their source, topic,
partition, offset and ingest time, which then cost nothing per row. Integer columns use the
smallest dtype that holds their values. `params` is one string joined by single spaces when no
parameter holds a space (always so for parameters cut from a line by `str.split`), else a JSON
list. Parameters of row i are `params[param_end[i-1]:param_end[i]]`.

`decode_batch` reads both versions as columns, `read_event_batch` as the `EventBatch` of events the
detector takes; `to_events` / `from_events` convert to and from `LogEvent`s
exactly (a NaN time reads back as None, as `event-batch/1` writes NaN as null).
"""

from __future__ import annotations

import base64
import binascii
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from pipeline.errors import DataError
from pipeline.partitioning import partition_for
from pipeline.records import EVENT_BATCH_SCHEMA, EventBatch, LogEvent, SourceOffset

EVENT_BATCH_V2_SCHEMA = "event-batch/2"

# What a decoder accepts per column kind: never an object dtype, always little-endian.
_UNSIGNED = frozenset({"|u1", "<u2", "<u4", "<u8"})
_SIGNED = frozenset({"|i1", "<i2", "<i4", "<i8"})
_FLOAT = frozenset({"<f8"})
_BOOL = frozenset({"|b1"})
_INDEX_COLUMNS = ("source", "session", "template", "topic")
_KINDS: dict[str, frozenset[str]] = {
    "source": _UNSIGNED,
    "session": _UNSIGNED,
    "template": _UNSIGNED,
    "topic": _UNSIGNED,
    "timestamp": _FLOAT,
    "oov": _BOOL,
    "partition": _SIGNED,
    "offset": _SIGNED,
    "line": _SIGNED,
    "ingested_at": _FLOAT,
    "param_end": _SIGNED,
}


@dataclass(frozen=True, eq=False)
class EventColumns:
    """Events as columns; rows in event order. Arrays are 1-d of length `n` (see the module table)."""

    sources: tuple[str, ...]
    sessions: tuple[str, ...]
    topics: tuple[str, ...]
    template_table: tuple[tuple[int, str], ...]  # distinct (template id, text)
    source_index: np.ndarray  # (n,) unsigned
    session_index: np.ndarray  # (n,) unsigned
    template_index: np.ndarray  # (n,) unsigned
    timestamps: np.ndarray  # (n,) float64, NaN = None
    oov: np.ndarray  # (n,) bool
    topic_index: np.ndarray  # (n,) unsigned
    partitions: np.ndarray  # (n,) int
    offsets: np.ndarray  # (n,) int
    lines: np.ndarray  # (n,) int
    ingested_at: np.ndarray  # (n,) float64, NaN = None
    params: Sequence[str]  # flat, row order
    param_end: np.ndarray  # (n,) int: row i's params are params[param_end[i-1]:param_end[i]]
    watermarks: tuple[tuple[int, float], ...] = ()
    raw_partitions: int = 0

    def __len__(self) -> int:
        return len(self.template_index)

    @property
    def template_ids(self) -> np.ndarray:
        """(n,) int64: each row's template id."""
        ids = np.fromiter((tid for tid, _ in self.template_table), np.int64, len(self.template_table))
        return ids[self.template_index]

    # conversions ------------------------------------------------------------------------------
    @classmethod
    def empty(cls, watermarks: tuple[tuple[int, float], ...] = (), raw_partitions: int = 0) -> EventColumns:
        """No events (a tick when `raw_partitions` is set)."""
        return cls.from_events((), watermarks, raw_partitions)

    @classmethod
    def from_events(
        cls,
        events: Iterable[LogEvent],
        watermarks: tuple[tuple[int, float], ...] = (),
        raw_partitions: int = 0,
    ) -> EventColumns:
        """The columns of `events`, in their order (exact: `to_events()` gives them back)."""
        sources: dict[str, int] = {}
        sessions: dict[str, int] = {}
        topics: dict[str, int] = {}
        templates: dict[tuple[int, str], int] = {}
        cols: list[list[Any]] = [[] for _ in range(11)]
        (src, ses, tpl, ts, oov, top, part, off, line, ing, end) = cols
        params: list[str] = []
        for e in events:
            raw = e.raw
            src.append(sources.setdefault(e.source, len(sources)))
            ses.append(sessions.setdefault(e.session_key, len(sessions)))
            tpl.append(templates.setdefault((e.template_id, e.template), len(templates)))
            ts.append(np.nan if e.timestamp is None else e.timestamp)
            oov.append(e.oov)
            top.append(topics.setdefault(raw.topic, len(topics)))
            part.append(raw.partition)
            off.append(raw.offset)
            line.append(raw.line)
            ing.append(np.nan if raw.timestamp is None else raw.timestamp)
            params.extend(e.params)
            end.append(len(params))
        return cls(
            tuple(sources),
            tuple(sessions),
            tuple(topics),
            tuple(templates),
            np.array(src, np.int64),
            np.array(ses, np.int64),
            np.array(tpl, np.int64),
            np.array(ts, np.float64),
            np.array(oov, np.bool_),
            np.array(top, np.int64),
            np.array(part, np.int64),
            np.array(off, np.int64),
            np.array(line, np.int64),
            np.array(ing, np.float64),
            params,
            np.array(end, np.int64),
            tuple(watermarks),
            raw_partitions,
        )

    def to_events(self) -> list[LogEvent]:
        """One `LogEvent` per row, in order."""
        table = self.template_table
        sources, sessions, topics, params = self.sources, self.sessions, self.topics, self.params
        out: list[LogEvent] = []
        start = 0
        rows = zip(
            self.source_index.tolist(),
            self.session_index.tolist(),
            self.template_index.tolist(),
            self.timestamps.tolist(),
            self.oov.tolist(),
            self.topic_index.tolist(),
            self.partitions.tolist(),
            self.offsets.tolist(),
            self.lines.tolist(),
            self.ingested_at.tolist(),
            self.param_end.tolist(),
            strict=True,
        )
        for src, ses, tpl, ts, oov, top, part, off, line, ing, end in rows:
            tid, text = table[tpl]
            raw = SourceOffset(topics[top], part, off, line, None if ing != ing else ing)
            event_params = tuple(params[start:end])
            start = end
            out.append(
                LogEvent(
                    sources[src], sessions[ses], None if ts != ts else ts, tid, text, event_params, oov, raw
                )
            )
        return out

    @classmethod
    def concat(cls, parts: Sequence[EventColumns]) -> EventColumns:
        """The rows of every part, in order, with the string tables merged (ticks keep no rows here:
        watermarks and raw partitions are taken from the last part)."""
        parts = [part for part in parts if len(part)] or list(parts[-1:])
        if len(parts) == 1:
            return parts[0]
        tables: tuple[dict[Any, int], ...] = ({}, {}, {}, {})
        indexes: tuple[list[np.ndarray], ...] = ([], [], [], [])
        param_ends: list[np.ndarray] = []
        params: list[str] = []
        for part in parts:
            for table, index, (entries, rows) in zip(
                tables,
                indexes,
                (
                    (part.sources, part.source_index),
                    (part.sessions, part.session_index),
                    (part.topics, part.topic_index),
                    (part.template_table, part.template_index),
                ),
                strict=True,
            ):
                renumber = np.fromiter(
                    (table.setdefault(e, len(table)) for e in entries), np.int64, len(entries)
                )
                index.append(renumber[rows])
            param_ends.append(part.param_end + len(params))
            params.extend(part.params)
        joined = [np.concatenate(index) for index in indexes]
        last = parts[-1]
        return cls(
            tuple(tables[0]),
            tuple(tables[1]),
            tuple(tables[2]),
            tuple(tables[3]),
            joined[0],
            joined[1],
            joined[3],
            np.concatenate([part.timestamps for part in parts]),
            np.concatenate([part.oov for part in parts]),
            joined[2],
            np.concatenate([part.partitions for part in parts]),
            np.concatenate([part.offsets for part in parts]),
            np.concatenate([part.lines for part in parts]),
            np.concatenate([part.ingested_at for part in parts]),
            params,
            np.concatenate(param_ends),
            last.watermarks,
            last.raw_partitions,
        )

    # selection ---------------------------------------------------------------------------------
    def take(self, rows: np.ndarray) -> EventColumns:
        """The rows `rows` (increasing indices), with string tables cut to what those rows use."""
        rows = np.asarray(rows, np.int64)
        ends = self.param_end
        counts = (ends - np.concatenate(([0], ends[:-1])))[rows] if len(ends) else ends
        params = _gather(self.params, _param_positions(ends, rows, counts))
        sources, source_index = _reintern(self.sources, self.source_index[rows])
        sessions, session_index = _reintern(self.sessions, self.session_index[rows])
        topics, topic_index = _reintern(self.topics, self.topic_index[rows])
        table, template_index = _reintern(self.template_table, self.template_index[rows])
        return EventColumns(
            sources,
            sessions,
            topics,
            table,
            source_index,
            session_index,
            template_index,
            self.timestamps[rows],
            self.oov[rows],
            topic_index,
            self.partitions[rows],
            self.offsets[rows],
            self.lines[rows],
            self.ingested_at[rows],
            params,
            np.cumsum(counts),
            self.watermarks,
            self.raw_partitions,
        )

    def by_partition(self, partitions: int) -> dict[int, EventColumns]:
        """Rows grouped by the `log-events` partition of their session key, order kept within each
        and partitions in order of first appearance (as `pipeline.partitioning.group_by_partition`)."""
        n = len(self)
        if not n:
            return {}
        memo = _PARTITION_MEMO.setdefault(partitions, {})
        if len(memo) > _PARTITION_MEMO_MAX:
            memo.clear()
        of_session = np.fromiter(
            (
                memo[k] if k in memo else memo.setdefault(k, partition_for(k, partitions))
                for k in self.sessions
            ),
            np.int64,
            len(self.sessions),
        )
        if (of_session == of_session[0]).all():
            return {int(of_session[0]): self}
        row_partition = of_session[self.session_index]
        # One stable sort by partition, then each partition is a contiguous slice of every column.
        order = np.argsort(row_partition, kind="stable")
        bounds = (np.flatnonzero(np.diff(row_partition[order])) + 1).tolist()
        starts, stops = [0, *bounds], [*bounds, n]
        group = np.repeat(np.arange(len(starts)), np.diff([*starts, n]))  # (n,) group of each sorted row
        # Sessions and templates re-interned per group at once: a (groups, table) table of which
        # entries each group uses; an entry's new index is how many used ones come before it.
        sessions_used, session_index = _reintern_groups(len(self.sessions), group, self.session_index[order])
        templates_used, template_index = _reintern_groups(
            len(self.template_table), group, self.template_index[order]
        )
        ends = self.param_end
        counts = (ends - np.concatenate(([0], ends[:-1])))[order]
        params = _gather(self.params, _param_positions(ends, order, counts))
        param_end = np.cumsum(counts).tolist()
        columns = [
            getattr(self, name)[order]
            for name in (
                "source_index",
                "timestamps",
                "oov",
                "topic_index",
                "partitions",
                "offsets",
                "lines",
                "ingested_at",
            )
        ]
        param_end_array = np.asarray(param_end, np.int64)
        groups = []
        for k, (start, stop) in enumerate(zip(starts, stops, strict=True)):
            sources_k, timestamps, oov, topics_k, raw_partitions, offsets, lines, ingested = (
                c[start:stop] for c in columns
            )
            sources, source_index = _reintern(self.sources, sources_k)
            topics, topic_index = _reintern(self.topics, topics_k)
            first_param = param_end[start - 1] if start else 0
            part = EventColumns(
                sources,
                _pick(self.sessions, sessions_used[k]),
                topics,
                _pick(self.template_table, templates_used[k]),
                source_index,
                session_index[start:stop],
                template_index[start:stop],
                timestamps,
                oov,
                topic_index,
                raw_partitions,
                offsets,
                lines,
                ingested,
                params[first_param : param_end[stop - 1]],
                param_end_array[start:stop] - first_param,
                self.watermarks,
                self.raw_partitions,
            )
            groups.append((int(order[start]), int(row_partition[order[start]]), part))
        # First appearance order of partitions, as group_by_partition's dict has it.
        return {partition: part for _, partition, part in sorted(groups)}

    # wire --------------------------------------------------------------------------------------
    def encode(self) -> bytes:
        """`event-batch/2` JSON bytes (see the module docstring)."""
        total = len(self.params)
        blob = " ".join(self.params)
        # Splitting at single spaces gives the parameters back iff none of them holds a space.
        params: str | list[str] = blob if blob.count(" ") == max(0, total - 1) else list(self.params)
        ids = np.fromiter((tid for tid, _ in self.template_table), np.int64, len(self.template_table))
        obj: dict[str, Any] = {
            "schema": EVENT_BATCH_V2_SCHEMA,
            "n": len(self),
            "sources": self.sources,
            "sessions": self.sessions,
            "topics": self.topics,
            "template_ids": _array(ids, "<i8"),
            "template_texts": [text for _, text in self.template_table],
            "params": params,
            "columns": {
                **self._integer_columns(),
                "timestamp": _array(self.timestamps, "<f8"),
                "oov": _array(self.oov, "|b1"),
                "ingested_at": _array(self.ingested_at, "<f8"),
            },
        }
        if self.raw_partitions:
            obj["watermarks"] = [[p, ts] for p, ts in self.watermarks]
            obj["raw_partitions"] = self.raw_partitions
        return orjson.dumps(obj)

    def _integer_columns(self) -> dict[str, list[Any]]:
        """The integer columns in their smallest dtypes. Their ranges come from one stacked min and
        max (a batch is small: per-call overhead, not data, is what costs)."""
        columns = (
            ("source", self.source_index, False),
            ("session", self.session_index, False),
            ("template", self.template_index, False),
            ("topic", self.topic_index, False),
            ("partition", self.partitions, True),
            ("offset", self.offsets, True),
            ("line", self.lines, True),
            ("param_end", self.param_end, True),
        )
        if not len(self):
            return {name: _compact(values, signed) for name, values, signed in columns}
        stacked = np.stack([values for _, values, _ in columns])  # (8, n) int64
        lows, highs = stacked.min(axis=1).tolist(), stacked.max(axis=1).tolist()
        return {
            name: _compact(values, signed, low, high)
            for (name, values, signed), low, high in zip(columns, lows, highs, strict=True)
        }

    @classmethod
    def decode(cls, data: bytes) -> EventColumns:
        """An `event-batch/2` record; `DataError` for anything else (use `decode_batch` for both)."""
        obj = _load(data)
        if obj.get("schema") != EVENT_BATCH_V2_SCHEMA:
            raise DataError(
                f"decode {EVENT_BATCH_V2_SCHEMA}: record has schema {obj.get('schema')!r}; this reader "
                f"understands only {EVENT_BATCH_V2_SCHEMA!r} (use decode_batch for event-batch/1)"
            )
        return cls._from_json(obj)

    @classmethod
    def _from_json(cls, obj: dict[str, Any]) -> EventColumns:
        try:
            n = _int(obj["n"])
            strings = {name: _strings(obj[name], name) for name in ("sources", "sessions", "topics")}
            texts = _strings(obj["template_texts"], "template_texts")
            ids = _read_array(obj["template_ids"], "template_ids", frozenset({"<i8"}), len(texts))
            raw_columns = obj["columns"]
            if not isinstance(raw_columns, dict):
                raise TypeError(f"'columns' should be an object, got {type(raw_columns).__name__}")
            cols = {name: _read_array(raw_columns[name], name, kinds, n) for name, kinds in _KINDS.items()}
            sizes = {
                "source": len(strings["sources"]),
                "session": len(strings["sessions"]),
                "template": len(texts),
                "topic": len(strings["topics"]),
            }
            for name in _INDEX_COLUMNS:
                if n and int(cols[name].max()) >= sizes[name]:
                    raise ValueError(f"column {name!r} indexes past its table of {sizes[name]}")
            ends = cols["param_end"]
            total = int(ends[-1]) if n else 0
            if n and ((ends[0] < 0) or bool((np.diff(ends) < 0).any())):
                raise ValueError("column 'param_end' is not non-decreasing from 0")
            params = _params(obj["params"], total)
            watermarks = tuple((int(p), float(ts)) for p, ts in obj.get("watermarks", ()))
            raw_partitions = int(obj.get("raw_partitions", 0))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise DataError(
                f"decode {EVENT_BATCH_V2_SCHEMA}: field missing or malformed ({exc}); "
                f"the producer must write pipeline.event_columns.EventColumns.encode() output"
            ) from exc
        return cls(
            strings["sources"],
            strings["sessions"],
            strings["topics"],
            tuple(zip(ids.tolist(), texts, strict=True)),
            cols["source"],
            cols["session"],
            cols["template"],
            cols["timestamp"],
            cols["oov"],
            cols["topic"],
            cols["partition"],
            cols["offset"],
            cols["line"],
            cols["ingested_at"],
            params,
            cols["param_end"],
            watermarks,
            raw_partitions,
        )


# Session key -> partition, per partition count: keys recur across batches (a session's lines
# arrive over many messages), and crc32 of each distinct key per batch adds up.
_PARTITION_MEMO: dict[int, dict[str, int]] = {}
_PARTITION_MEMO_MAX = 100_000


def decode_batch(data: bytes) -> EventColumns:
    """A `log-events` record of either version as columns; `DataError` for an unknown schema
    (the detect agent dead-letters those)."""
    obj = _load(data)
    schema = obj.get("schema")
    if schema == EVENT_BATCH_V2_SCHEMA:
        return EventColumns._from_json(obj)
    if schema == EVENT_BATCH_SCHEMA:
        # The old format reads through its own decoder (a second JSON parse, only for old records).
        batch = EventBatch.decode(data)
        return EventColumns.from_events(batch.events, batch.watermarks, batch.raw_partitions)
    raise DataError(
        f"decode log-events: record has schema {schema!r}; this reader understands "
        f"{EVENT_BATCH_SCHEMA!r} and {EVENT_BATCH_V2_SCHEMA!r} (upgrade the reader or route the record "
        f"elsewhere)"
    )


def read_event_batch(data: bytes) -> EventBatch:
    """A `log-events` record of either version as the `EventBatch` (events, tick watermarks) the
    detector and the topic readers take; `DataError` for an unknown schema or a malformed record.
    The one reader of `log-events` records: every consumer of the topic goes through it."""
    obj = _load(data)
    schema = obj.get("schema")
    if schema == EVENT_BATCH_V2_SCHEMA:
        columns = EventColumns._from_json(obj)
        return EventBatch(tuple(columns.to_events()), columns.watermarks, columns.raw_partitions)
    if schema == EVENT_BATCH_SCHEMA:
        return EventBatch.decode(data)
    raise DataError(
        f"decode log-events: record has schema {schema!r}; this reader understands "
        f"{EVENT_BATCH_SCHEMA!r} and {EVENT_BATCH_V2_SCHEMA!r} (upgrade the reader or route the record "
        f"elsewhere)"
    )


def _load(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DataError(
            f"decode log-events: expected a JSON object, got {len(data)} bytes starting {data[:40]!r} ({exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"decode log-events: expected a JSON object, got {type(obj).__name__}")
    return obj


def _array(values: np.ndarray, dtype: str, constant: bool | None = None) -> list[Any]:
    """`[dtype, base64]`, or `[dtype, value]` when every row holds one value (JSON null: NaN).
    `constant`: whether that is so, when the caller knows."""
    if constant:
        return [dtype, values[0].item()]
    if constant is None and len(values) > 1:
        # Floats compare by bit pattern, so that -0.0 and 0.0 stay apart; NaN (no time) is null.
        same = values.view(np.int64) if values.dtype.kind == "f" else values
        if same[0] == same[-1] and (same == same[0]).all():
            return [dtype, None if values[0] != values[0] else values[0].item()]
        if values.dtype.kind == "f" and np.isnan(values).all():
            return [dtype, None]
    return [dtype, base64.b64encode(np.ascontiguousarray(values, dtype).tobytes()).decode("ascii")]


def _compact(
    values: np.ndarray, signed: bool = False, low: int | None = None, high: int | None = None
) -> list[Any]:
    """The smallest little-endian integer dtype that holds every value (`low`, `high`: their range,
    when the caller knows it)."""
    if not len(values):
        return _array(values, "|i1" if signed else "|u1")
    if low is None or high is None:
        low, high = int(values.min()), int(values.max())
    constant = len(values) > 1 and low == high
    if signed:
        for dtype, bits in (("|i1", 7), ("<i2", 15), ("<i4", 31)):
            if -(1 << bits) <= low and high < (1 << bits):
                return _array(values, dtype, constant)
        return _array(values, "<i8", constant)
    for dtype, bits in (("|u1", 8), ("<u2", 16), ("<u4", 32)):
        if high < (1 << bits):
            return _array(values, dtype, constant)
    return _array(values, "<u8", constant)


def _read_array(raw: Any, name: str, kinds: frozenset[str], n: int) -> np.ndarray:
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], str)):
        raise TypeError(f"{name!r} should be [dtype, data], got {raw!r:.80}")
    dtype, data = raw
    if dtype not in kinds:
        raise ValueError(f"{name!r} has dtype {dtype!r}, expected one of {sorted(kinds)}")
    if isinstance(data, str):
        values = np.frombuffer(base64.b64decode(data, validate=True), np.dtype(dtype))
        if len(values) != n:
            raise ValueError(f"{name!r} has {len(values)} values, expected {n}")
    else:
        values = np.full(n, _constant(data, name, dtype), np.dtype(dtype))
    if kinds is _UNSIGNED or kinds is _SIGNED:
        return values.astype(np.int64)
    return values


def _constant(data: Any, name: str, dtype: str) -> Any:
    """The one value of a constant column, checked against its dtype."""
    kind = np.dtype(dtype).kind
    if kind == "b":
        if isinstance(data, bool):
            return data
    elif kind == "f":
        if data is None:
            return np.nan
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
    elif isinstance(data, int) and not isinstance(data, bool):
        info = np.iinfo(np.dtype(dtype))
        if info.min <= data <= info.max:
            return data
    raise ValueError(f"{name!r}: constant {data!r:.40} does not fit dtype {dtype!r}")


def _strings(raw: Any, name: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise TypeError(f"{name!r} should be a list of strings")
    return tuple(raw)


def _params(raw: Any, total: int) -> list[str]:
    if isinstance(raw, str):
        params = raw.split(" ") if total else []
    elif isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        params = raw
    else:
        raise TypeError("'params' should be a string or a list of strings")
    if len(params) != total:
        raise ValueError(f"'params' holds {len(params)} parameters, 'param_end' says {total}")
    return params


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"'n' should be a non-negative int, got {value!r}")
    return value


def _reintern(table: tuple[Any, ...], index: np.ndarray) -> tuple[tuple[Any, ...], np.ndarray]:
    """The table entries `index` uses (in table order) and the index into that smaller table."""
    if len(table) == 1:
        return table, index
    present = np.bincount(index, minlength=len(table)) > 0
    used = np.flatnonzero(present).tolist()
    if len(used) == len(table):
        return table, index
    return tuple(table[i] for i in used), (np.cumsum(present) - 1)[index]


def _param_positions(ends: np.ndarray, rows: np.ndarray, counts: np.ndarray) -> list[int]:
    """Flat positions of the parameters of `rows` (whose counts are `counts`), in row order."""
    if not len(rows):
        return []
    starts = ends[rows] - counts
    # Each row's first position, then +1 per further parameter of the row.
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return (shift + np.arange(int(counts.sum()))).tolist()


def _reintern_groups(size: int, group: np.ndarray, index: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """Per group, the table entries its rows use (in table order), and each row's index into its
    group's smaller table. `group` (n,) is non-decreasing from 0; `index` (n,) indexes a table of
    `size` entries."""
    groups = int(group[-1]) + 1
    used = np.zeros((groups, size), np.bool_)
    used[group, index] = True
    renumber = np.cumsum(used, axis=1) - 1  # (groups, size)
    return [np.flatnonzero(row).tolist() for row in used], renumber[group, index]


def _pick(table: Sequence[Any], positions: list[int]) -> tuple[Any, ...]:
    if len(positions) > 1:
        return operator.itemgetter(*positions)(table)  # type: ignore[no-any-return]
    return tuple(table[i] for i in positions)


def _gather(values: Sequence[str], positions: list[int]) -> list[str]:
    if len(positions) > 1:
        return list(operator.itemgetter(*positions)(values))
    return [values[i] for i in positions]
