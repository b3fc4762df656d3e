"""Wire records: what the parsing stage writes to Kafka, as versioned JSON (orjson).

Every record carries `"schema": "<name>/<version>"`; a reader rejects other names and versions with
a `DataError` that says what arrived, so a producer upgrade cannot be misread silently.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.errors import DataError

LOG_EVENT_SCHEMA = "log-event/1"
EVENT_BATCH_SCHEMA = "event-batch/1"
DEAD_LETTER_SCHEMA = "dead-letter/1"
TEMPLATE_RECORD_SCHEMA = "log-template/1"


@dataclass(frozen=True, slots=True)
class SourceOffset:
    """Where a raw record came from; offset -1 when it did not come from Kafka.

    `line` is the record's index within its raw message (a message holds many lines): with it, an
    event re-delivered after a crash is recognised by its exact position (`pipeline.sessions`).
    `timestamp` is the raw message's Kafka timestamp (ingest time), the detector's clock
    (`pipeline.stream_clock`).
    """

    topic: str = ""
    partition: int = -1
    offset: int = -1
    line: int = 0
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One parsed log line for one session (a line naming two blocks gives two events)."""

    source: str
    session_key: str
    timestamp: float | None
    template_id: int
    template: str
    params: tuple[str, ...]
    oov: bool
    raw: SourceOffset = SourceOffset()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": LOG_EVENT_SCHEMA,
            "source": self.source,
            "session_key": self.session_key,
            "timestamp": self.timestamp,
            "template_id": self.template_id,
            "template": self.template,
            "params": list(self.params),
            "oov": self.oov,
            "topic": self.raw.topic,
            "partition": self.raw.partition,
            "offset": self.raw.offset,
            "line": self.raw.line,
            "ingested_at": self.raw.timestamp,
        }

    @classmethod
    def from_json(cls, raw: Any) -> LogEvent:
        obj = _expect_schema(raw, LOG_EVENT_SCHEMA)
        try:
            timestamp = obj["timestamp"]
            return cls(
                source=_typed(obj, "source", str),
                session_key=_typed(obj, "session_key", str),
                timestamp=None if timestamp is None else float(timestamp),
                template_id=_typed(obj, "template_id", int),
                template=_typed(obj, "template", str),
                params=tuple(str(p) for p in _typed(obj, "params", list)),
                oov=_typed(obj, "oov", bool),
                raw=SourceOffset(
                    _typed(obj, "topic", str),
                    _typed(obj, "partition", int),
                    _typed(obj, "offset", int),
                    int(obj.get("line", 0)),  # line and ingested_at: absent in earlier releases
                    None if obj.get("ingested_at") is None else float(obj["ingested_at"]),
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"decode {LOG_EVENT_SCHEMA}: field missing or malformed ({exc}) in {obj!r:.200}"
            ) from exc

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def decode(cls, data: bytes) -> LogEvent:
        return cls.from_json(_loads(data, LOG_EVENT_SCHEMA))


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Many events in one Kafka message (one raw message's lines), in order.

    A tick is a batch without events that carries ingest watermarks instead: per raw partition its
    sender holds, the ingest time parsed up to, and how many raw partitions there are
    (`pipeline.stream_clock`)."""

    events: tuple[LogEvent, ...]
    watermarks: tuple[tuple[int, float], ...] = ()
    raw_partitions: int = 0

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"schema": EVENT_BATCH_SCHEMA, "events": [e.to_json() for e in self.events]}
        if self.raw_partitions:
            obj["watermarks"] = [[p, ts] for p, ts in self.watermarks]
            obj["raw_partitions"] = self.raw_partitions
        return orjson.dumps(obj)

    @classmethod
    def decode(cls, data: bytes) -> EventBatch:
        obj = _expect_schema(_loads(data, EVENT_BATCH_SCHEMA), EVENT_BATCH_SCHEMA)
        events = obj.get("events")
        if not isinstance(events, list):
            raise DataError(
                f"decode {EVENT_BATCH_SCHEMA}: expected an 'events' list, got {type(events).__name__}"
            )
        try:
            watermarks = tuple((int(p), float(ts)) for p, ts in obj.get("watermarks", ()))
            raw_partitions = int(obj.get("raw_partitions", 0))
        except (TypeError, ValueError) as exc:
            raise DataError(f"decode {EVENT_BATCH_SCHEMA}: malformed tick watermarks ({exc})") from exc
        return cls(tuple(LogEvent.from_json(e) for e in events), watermarks, raw_partitions)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the stream could not use, kept with its original bytes for replay or inspection.

    `raw` says where it came from: topic, partition, offset and the line index within that raw
    message (0 for a whole-message rejection, and in records written before `line` was added)."""

    reason: str
    step: str
    original: bytes
    raw: SourceOffset = SourceOffset()
    detail: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "schema": DEAD_LETTER_SCHEMA,
                "reason": self.reason,
                "step": self.step,
                "detail": self.detail,
                "original_b64": base64.b64encode(self.original).decode("ascii"),
                "topic": self.raw.topic,
                "partition": self.raw.partition,
                "offset": self.raw.offset,
                "line": self.raw.line,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> DeadLetter:
        obj = _expect_schema(_loads(data, DEAD_LETTER_SCHEMA), DEAD_LETTER_SCHEMA)
        try:
            original = base64.b64decode(_typed(obj, "original_b64", str), validate=True)
            return cls(
                reason=_typed(obj, "reason", str),
                step=_typed(obj, "step", str),
                original=original,
                raw=SourceOffset(
                    _typed(obj, "topic", str),
                    _typed(obj, "partition", int),
                    _typed(obj, "offset", int),
                    _typed(obj, "line", int) if "line" in obj else 0,  # absent in earlier releases
                ),
                detail=_typed(obj, "detail", str),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise DataError(f"decode {DEAD_LETTER_SCHEMA}: field missing or malformed ({exc})") from exc


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    """One entry of the compacted `log-templates` topic, keyed by the template id."""

    template_id: int
    template: str
    first_seen: float
    count: int
    replaces_id: int = 0  # the id this template generalized (0: none)
    oov: bool = False  # first seen as an unknown line in match mode: a candidate for retraining

    @property
    def key(self) -> bytes:
        """Kafka key: compaction keeps the latest record per template id."""
        return str(self.template_id).encode("ascii")

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "schema": TEMPLATE_RECORD_SCHEMA,
                "template_id": self.template_id,
                "template": self.template,
                "first_seen": self.first_seen,
                "count": self.count,
                "replaces_id": self.replaces_id,
                "oov": self.oov,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> TemplateRecord:
        obj = _expect_schema(_loads(data, TEMPLATE_RECORD_SCHEMA), TEMPLATE_RECORD_SCHEMA)
        try:
            return cls(
                template_id=_typed(obj, "template_id", int),
                template=_typed(obj, "template", str),
                first_seen=float(obj["first_seen"]),
                count=_typed(obj, "count", int),
                replaces_id=_typed(obj, "replaces_id", int),
                oov=_typed(obj, "oov", bool),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"decode {TEMPLATE_RECORD_SCHEMA}: field missing or malformed ({exc})") from exc


def _loads(data: bytes, schema: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DataError(
            f"decode {schema}: expected a JSON object, got {len(data)} bytes starting {data[:40]!r} ({exc}); "
            f"check the producer writes this topic with pipeline.records"
        ) from exc


def _expect_schema(obj: Any, schema: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"decode {schema}: expected a JSON object, got {type(obj).__name__}")
    found = obj.get("schema")
    if found != schema:
        raise DataError(
            f"decode {schema}: record has schema {found!r}; this reader understands only {schema!r} "
            f"(upgrade the reader or route the record elsewhere)"
        )
    return obj


def _typed(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj[name]
    # bool is an int subclass: an int field must not accept true/false, nor a bool field 0/1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name!r} should be {kind.__name__}, got {type(value).__name__}")
    return value
