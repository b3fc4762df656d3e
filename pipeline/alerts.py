"""Alerts for the `log-anomalies` topic: an explicit, versioned JSON schema (orjson), keyed by session.

An alert explains itself: the offending event and the model's expected top-k as template text, the
preceding window as templates, the model and version that scored it, and where the raw record lies
in Kafka. Its id is a hash of (source, session key, kind), so the alert a worker re-sends after a
crash carries the same id and consumers can drop the duplicate. Rule: one alert per session per cause.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from pipeline.errors import DataError

ALERT_SCHEMA_VERSION = 1


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
    """Where the raw log record that caused the alert lies (topic, partition, offset); -1 if unknown."""

    topic: str = ""
    partition: int = -1
    offset: int = -1


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
    raw: RawCoordinates
    label: str = ""  # window class name or parameter name, for the kinds that have one
    schema: int = ALERT_SCHEMA_VERSION

    def kafka_key(self) -> bytes:
        """Alerts are keyed by session, so one session's alerts stay in order on one partition."""
        return self.session_key.encode("utf-8")


def encode_alert(alert: Alert) -> bytes:
    """JSON bytes of an alert (the value on `log-anomalies`)."""
    return orjson.dumps(asdict(alert))


def decode_alert(data: bytes) -> Alert:
    """Parse an alert; another schema version or a malformed value raises DataError."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"decode alert: expected JSON, got {data[:80]!r} ({exc})") from exc
    if not isinstance(obj, dict) or obj.get("schema") != ALERT_SCHEMA_VERSION:
        found = obj.get("schema") if isinstance(obj, dict) else type(obj).__name__
        raise DataError(
            f"decode alert: expected schema {ALERT_SCHEMA_VERSION}, got {found!r}; "
            f"upgrade the consumer or read the topic with the matching version"
        )
    try:
        return _alert_from_dict(obj)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"decode alert: malformed alert {str(obj)[:160]} ({exc!r}); expected the fields of Alert"
        ) from exc


def _alert_from_dict(obj: dict[str, Any]) -> Alert:
    raw = obj["raw"]
    return Alert(
        alert_id=str(obj["alert_id"]),
        source=str(obj["source"]),
        session_key=str(obj["session_key"]),
        kind=AlertKind(obj["kind"]),
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
        last_timestamp=None if obj["last_timestamp"] is None else float(obj["last_timestamp"]),
        position=int(obj["position"]),
        raw=RawCoordinates(str(raw["topic"]), int(raw["partition"]), int(raw["offset"])),
        label=str(obj.get("label", "")),
        schema=int(obj["schema"]),
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
