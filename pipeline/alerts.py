"""Alerts for the `log-anomalies` topic: an explicit, versioned JSON schema (orjson), keyed by session.

An alert explains itself: the offending event and the model's expected top-k as template text, the
preceding window as templates, the model and version that scored it, the log's own time of the event,
and the raw lines behind it (the offending line last, with its preceding ones; each with its Kafka
coordinates and index within its raw message) and the header fields that say where it happened
(host, node, component). The raw texts are read back from `raw-logs` only when an alert is raised
(`pipeline.raw_lines`); an alert whose read-back failed carries the coordinates and a `note`.
Its id is a hash of (source, session key, kind), so the alert a worker re-sends after a crash carries
the same id and consumers can drop the duplicate. Rule: one alert per session per cause.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from pipeline.errors import DataError

# Version 2 added event_time, lines, fields, note and RawCoordinates.line; version 1 alerts (older
# topics) still decode, upgraded: their one record's coordinates become `lines`, line index unknown.
ALERT_SCHEMA_VERSION = 2
# The tag every record carries, `<name>/<version>` like the other topics' (pipeline.records); alerts
# written before it carry the bare version number, which readers still take.
ALERT_SCHEMA = f"log-anomaly/{ALERT_SCHEMA_VERSION}"
_READABLE_TAGS: dict[object, int] = {1: 1, 2: 2, ALERT_SCHEMA: 2}
READABLE_SCHEMA_VERSIONS = frozenset(_READABLE_TAGS)
# Raw records an alert carries: the offending one and those before it, as many as a model window.
MAX_ALERT_LINES = 10


class AlertKind(enum.StrEnum):
    """The cause of an alert; a session gets at most one alert of each kind."""

    UNEXPECTED_NEXT_EVENT = "unexpected_next_event"
    OOV_EVENT = "oov_event"
    PARAMETER_VALUE = "parameter_value"
    WINDOW_CLASS = "window_class"


def alert_id(source: str, session_key: str, kind: AlertKind) -> str:
    """Stable id: the same session and cause always give the same id (de-duplication downstream)."""
    text = f"{source}|{session_key}|{AlertKind(kind).value}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class ExpectedEvent:
    """One of the model's top-k predictions for the next event."""

    template_id: int
    template: str
    probability: float


@dataclass(frozen=True)
class RawCoordinates:
    """Where a raw log record lies: the Kafka message (topic, partition, offset) and the record's index
    within it (`line`, as `pipeline.parsing` splits a message: multi-line records joined); -1 if unknown."""

    topic: str = ""
    partition: int = -1
    offset: int = -1
    line: int = -1

    def describe(self) -> str:
        """`topic[partition]@offset line N`, the form people search a topic for."""
        where = f"{self.topic}[{self.partition}]@{self.offset}"
        return where if self.line < 0 else f"{where} line {self.line}"


@dataclass(frozen=True)
class RawLine:
    """One raw log record behind an alert: where it lies and, once read back, its text."""

    at: RawCoordinates
    text: str | None = None  # None: not read back (the alert's `note` says why)


@dataclass(frozen=True)
class Alert:
    """One anomaly, explained. `score` is in [0, 1]; its meaning per kind is documented on the kind's
    producer (`pipeline.detection`)."""

    alert_id: str
    source: str
    session_key: str
    kind: AlertKind
    model: str
    model_version: int
    score: float
    event_template_id: int
    event_template: str
    expected: tuple[ExpectedEvent, ...]
    window: tuple[str, ...]  # preceding events as template text, oldest first, padding left out
    first_timestamp: float | None
    last_timestamp: float | None
    position: int  # index of the offending event in its session
    raw: RawCoordinates  # the offending record (a window's or an ended session's last record)
    label: str = ""  # window class name or parameter name, for the kinds that have one
    event_time: float | None = None  # the log's own time of the offending event (window: its last event)
    lines: tuple[RawLine, ...] = ()  # raw records behind the alert, oldest first, the offending one last
    fields: tuple[tuple[str, str], ...] = ()  # header fields naming where it happened (node, component)
    note: str = ""  # why the raw texts are missing, when they are
    schema: str = ALERT_SCHEMA

    def kafka_key(self) -> bytes:
        """Alerts are keyed by session, so one session's alerts stay in order on one partition."""
        return self.session_key.encode("utf-8")


def encode_alert(alert: Alert) -> bytes:
    """JSON bytes of an alert (the value on `log-anomalies`)."""
    return orjson.dumps(asdict(alert))


def decode_alert(data: bytes) -> Alert:
    """Parse an alert (schema 2, or 1 upgraded); another version or a malformed value raises DataError."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"decode alert: expected JSON, got {data[:80]!r} ({exc})") from exc
    tag = obj.get("schema") if isinstance(obj, dict) else None
    # bool is an int: `true` must not pass for version 1.
    if not isinstance(obj, dict) or isinstance(tag, bool) or tag not in _READABLE_TAGS:
        found = tag if isinstance(obj, dict) else type(obj).__name__
        raise DataError(
            f"decode alert: expected schema {ALERT_SCHEMA!r} (or 1, 2 from older workers), got {found!r}; "
            f"upgrade the consumer or read the topic with the matching version"
        )
    try:
        return _alert_from_dict(obj)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"decode alert: malformed alert {str(obj)[:160]} ({exc!r}); expected the fields of Alert"
        ) from exc


def _coordinates(obj: dict[str, Any]) -> RawCoordinates:
    return RawCoordinates(
        str(obj["topic"]), int(obj["partition"]), int(obj["offset"]), int(obj.get("line", -1))
    )


def _alert_from_dict(obj: dict[str, Any]) -> Alert:
    raw = _coordinates(obj["raw"])
    kind = AlertKind(obj["kind"])
    last_ts = None if obj["last_timestamp"] is None else float(obj["last_timestamp"])
    if _READABLE_TAGS[obj["schema"]] == 1:
        # Version 1 knew only the one record; an event's time was its session's last timestamp.
        event_time = None if kind is AlertKind.WINDOW_CLASS else last_ts
        lines = (RawLine(raw),) if raw.offset >= 0 else ()
        fields: tuple[tuple[str, str], ...] = ()
        note = ""
    else:
        event_time = None if obj["event_time"] is None else float(obj["event_time"])
        lines = tuple(
            RawLine(_coordinates(line["at"]), None if line["text"] is None else str(line["text"]))
            for line in obj["lines"]
        )
        fields = tuple((str(name), str(value)) for name, value in obj["fields"])
        note = str(obj["note"])
    return Alert(
        alert_id=str(obj["alert_id"]),
        source=str(obj["source"]),
        session_key=str(obj["session_key"]),
        kind=kind,
        model=str(obj["model"]),
        model_version=int(obj["model_version"]),
        score=float(obj["score"]),
        event_template_id=int(obj["event_template_id"]),
        event_template=str(obj["event_template"]),
        expected=tuple(
            ExpectedEvent(int(e["template_id"]), str(e["template"]), float(e["probability"]))
            for e in obj["expected"]
        ),
        window=tuple(str(t) for t in obj["window"]),
        first_timestamp=None if obj["first_timestamp"] is None else float(obj["first_timestamp"]),
        last_timestamp=last_ts,
        position=int(obj["position"]),
        raw=raw,
        label=str(obj.get("label", "")),
        event_time=event_time,
        lines=lines,
        fields=fields,
        note=note,
    )


def deduplicate(alerts: Iterable[Alert]) -> list[Alert]:
    """Keep the first alert per id (one per session per cause), in arrival order."""
    seen: set[str] = set()
    kept: list[Alert] = []
    for alert in alerts:
        if alert.alert_id not in seen:
            seen.add(alert.alert_id)
            kept.append(alert)
    return kept
