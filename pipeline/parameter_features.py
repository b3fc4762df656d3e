"""Parameter value vectors for DeepLog's parameter model: one vector per event of a modelled log key.

A key's vector is the seconds elapsed since the previous event of the same session, then the key's
numeric parameters in line order. A parameter position is numeric when every training value of it
is a plain decimal number (`parse_number`); a key gets features only when the training lines of it
carry a timestamp or a numeric parameter. Training (`pipeline.training.parameters`) and the online
detector (`pipeline.parameter_detection`) both build vectors with `FeatureSchema.vector` and
`elapsed_s`, so they cannot preprocess differently. Pure functions and frozen records: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pipeline.errors import DataError

ELAPSED = -1  # feature source: seconds since the previous event of the same session
PADDING = -2  # feature source: an unused column (keys narrower than the widest key)

# Stricter than float(): no "nan", "inf" or "1_000", which float() accepts but logs do not mean as numbers.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")

Vector = tuple[float, ...]


class ParameterEvent(Protocol):
    """What a parameter vector needs from an event (`pipeline.records.LogEvent` has these fields)."""

    @property
    def source(self) -> str: ...

    @property
    def session_key(self) -> str: ...

    @property
    def timestamp(self) -> float | None: ...

    @property
    def template_id(self) -> int: ...

    @property
    def params(self) -> tuple[str, ...]: ...


E = TypeVar("E", bound=ParameterEvent)


def parse_number(text: str) -> float | None:
    """The value of a plain decimal number (sign, fraction and exponent allowed), else None."""
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def elapsed_s(previous_ts: float | None, timestamp: float | None) -> float:
    """Seconds since the session's previous event; 0 for a session's first event or a missing clock."""
    if previous_ts is None or timestamp is None:
        return 0.0
    return float(timestamp - previous_ts)


def with_previous_ts(events: Iterable[E]) -> Iterator[tuple[E, float | None]]:
    """Events in the given (log) order with their session's last known timestamp before them.

    This is what the online session store hands the detector (`NextEventQuery.previous_ts`), done in
    memory for a finite stream.
    """
    last: dict[tuple[str, str], float] = {}
    for event in events:
        key = (event.source, event.session_key)
        yield event, last.get(key)
        if event.timestamp is not None:
            last[key] = event.timestamp


def with_elapsed(events: Iterable[E]) -> Iterator[tuple[E, float]]:
    """Events in the given order with `elapsed_s` since their session's previous event."""
    for event, previous in with_previous_ts(events):
        yield event, elapsed_s(previous, event.timestamp)


@dataclass(frozen=True)
class KeyFeatures:
    """The features of one log key: `sources[i]` is ELAPSED or the parameter position of feature i."""

    template_id: int
    param_count: int  # parameters a line of this key has; a line with another count gets no vector
    sources: tuple[int, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple("elapsed_s" if s == ELAPSED else f"param_{s}" for s in self.sources)

    def vector(self, params: Sequence[str], elapsed: float) -> Vector | None:
        """The event's vector, or None when its parameters do not fit the key (count or non-number)."""
        if len(params) != self.param_count:
            return None
        values = []
        for source in self.sources:
            if source == ELAPSED:
                values.append(elapsed)
                continue
            value = parse_number(params[source])
            if value is None:
                return None
            values.append(value)
        return tuple(values)


@dataclass(frozen=True)
class FeatureSchema:
    """Features of every modelled key; `width` is the widest key's feature count (D of the model)."""

    keys: Mapping[int, KeyFeatures]

    @property
    def width(self) -> int:
        return max((len(k.sources) for k in self.keys.values()), default=0)

    def vector(self, template_id: int, params: Sequence[str], elapsed: float) -> Vector | None:
        """The event's vector (unpadded), or None for an unmodelled key or unfitting parameters."""
        key = self.keys.get(int(template_id))
        return None if key is None else key.vector(params, elapsed)

    def padded_sources(self, template_id: int) -> tuple[int, ...]:
        """The key's feature sources right-padded with PADDING to `width`."""
        sources = self.keys[template_id].sources
        return sources + (PADDING,) * (self.width - len(sources))

    def padded(self, vector: Vector) -> Vector:
        """`vector` right-padded with 0 to `width` (the model's input columns)."""
        return vector + (0.0,) * (self.width - len(vector))

    def restricted(self, template_ids: Iterable[int]) -> FeatureSchema:
        """The schema of only these keys (those that got a model)."""
        wanted = set(template_ids)
        return FeatureSchema({tid: k for tid, k in self.keys.items() if tid in wanted})

    def to_tables(self) -> tuple[list[int], list[int], list[list[int]]]:
        """Sorted key ids `(K,)`, param counts `(K,)` and sources `(K, D)` padded with PADDING."""
        ids = sorted(self.keys)
        sources = [list(self.padded_sources(i)) for i in ids]
        return ids, [self.keys[i].param_count for i in ids], sources

    @classmethod
    def from_tables(
        cls, key_ids: Sequence[int], param_counts: Sequence[int], sources: Sequence[Sequence[int]]
    ) -> FeatureSchema:
        """Inverse of `to_tables` (the tables a published model carries as buffers and metadata)."""
        if not len(key_ids) == len(param_counts) == len(sources):
            raise DataError(
                f"parameter schema: expected equal-length tables, got {len(key_ids)} ids, "
                f"{len(param_counts)} counts, {len(sources)} source rows; republish the model"
            )
        keys = {
            int(tid): KeyFeatures(int(tid), int(count), tuple(int(s) for s in row if int(s) != PADDING))
            for tid, count, row in zip(key_ids, param_counts, sources, strict=True)
        }
        return cls(keys)

    def to_json(self) -> dict[str, Any]:
        ids, counts, sources = self.to_tables()
        return {"key_ids": ids, "param_counts": counts, "sources": sources}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FeatureSchema:
        try:
            return cls.from_tables(raw["key_ids"], raw["param_counts"], raw["sources"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"parameter schema: malformed {str(raw)[:120]} ({exc!r})") from exc


def learn_schema(events: Iterable[ParameterEvent], min_events: int = 1) -> FeatureSchema:
    """Which features each key has, from training events.

    A key's parameter count is the most common count of its lines; a position is numeric when every
    line with that count has a number there. Elapsed time is a feature when any line of the key has a
    timestamp. Keys with fewer than `min_events` fitting lines, or with no feature, are left out.
    """
    counts: dict[int, Counter[int]] = {}
    # (key, param count) -> per position: every value so far was a number
    positions: dict[tuple[int, int], list[bool]] = {}
    timed: set[int] = set()
    for event in events:
        tid, params = int(event.template_id), event.params
        counts.setdefault(tid, Counter())[len(params)] += 1
        flags = positions.setdefault((tid, len(params)), [True] * len(params))
        for i, text in enumerate(params):
            if flags[i] and parse_number(text) is None:
                flags[i] = False
        if event.timestamp is not None:
            timed.add(tid)
    keys: dict[int, KeyFeatures] = {}
    for tid, by_count in counts.items():
        param_count, seen = by_count.most_common(1)[0]
        if seen < min_events:
            continue
        flags = positions[(tid, param_count)]
        sources = ((ELAPSED,) if tid in timed else ()) + tuple(i for i, ok in enumerate(flags) if ok)
        if sources:
            keys[tid] = KeyFeatures(tid, param_count, sources)
    return FeatureSchema(keys)
