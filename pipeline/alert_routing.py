"""Alerts from `log-anomalies` to on-call: Alertmanager v2 and webhook payloads, and the retry policy.

Pure: no HTTP, no Kafka, no clock. `pipeline.notify` runs the loop; `pipeline.adapters.alert_http`
posts what is built here.

Alertmanager deduplicates by label set, so the alert id is a label and everything that differs
between two sends of the same alert (model version, score, text) is an annotation: a worker that
re-sends an alert after a crash, or `logad notify` re-posting a batch it could not commit, updates
the one alert Alertmanager already holds instead of paging twice.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.alerts import Alert, AlertKind
from pipeline.errors import ConfigError
from pipeline.presentation import format_alert, iso_time

ALERT_NAME = "LogAnomaly"
WEBHOOK_SCHEMA = "logad-webhook/1"
# Alertmanager keeps annotations whole; a window of long templates would make one alert megabytes.
MAX_ANNOTATION_CHARS = 4000


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts a route takes: empty sets take every kind / source."""

    kinds: frozenset[AlertKind] = frozenset()
    sources: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, kinds: Iterable[str] = (), sources: Iterable[str] = ()) -> AlertFilter:
        """From command-line names; an unknown kind raises ConfigError naming the valid ones."""
        chosen: set[AlertKind] = set()
        for name in kinds:
            try:
                chosen.add(AlertKind(name))
            except ValueError:
                valid = ", ".join(k.value for k in AlertKind)
                raise ConfigError(f"alert filter: unknown kind {name!r}; use one of {valid}") from None
        return cls(frozenset(chosen), frozenset(sources))

    def matches(self, alert: Alert) -> bool:
        return (not self.kinds or alert.kind in self.kinds) and (
            not self.sources or alert.source in self.sources
        )


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ANNOTATION_CHARS else text[: MAX_ANNOTATION_CHARS - 1] + "…"


def _expected_text(alert: Alert) -> str:
    return "\n".join(f"{e.probability:.3f} {e.template}" for e in alert.expected)


def _offending_line(alert: Alert) -> str:
    if not alert.lines:
        return alert.raw.describe() if alert.raw.offset >= 0 else ""
    last = alert.lines[-1]
    return f"{last.at.describe()}: {last.text}" if last.text is not None else last.at.describe()


def alertmanager_alert(alert: Alert, generator_url: str = "") -> dict[str, Any]:
    """One entry of Alertmanager's `POST /api/v2/alerts` body (`postableAlert`).

    No `startsAt`/`endsAt`: Alertmanager stamps the receive time and resolves the alert after its
    `resolve_timeout`, which suits a one-off anomaly; the log's own time is the `event_time`
    annotation (a replayed 2008 log must not open an alert in 2008).
    """
    labels = {
        "alertname": ALERT_NAME,
        "alert_id": alert.alert_id,
        "kind": alert.kind.value,
        "source": alert.source,
        "severity": "warning",
    }
    what = alert.label if alert.kind is AlertKind.WINDOW_CLASS else alert.event_template
    annotations = {
        "summary": _clip(f"{alert.kind.value} in {alert.source}/{alert.session_key}: {what}"),
        "description": _clip(format_alert(alert, verbose=True)),
        "model": alert.model,
        "model_version": str(alert.model_version),
        "session": alert.session_key,
        "expected": _clip(_expected_text(alert)),
        "event_template": _clip(alert.event_template),
        "score": f"{alert.score:.4f}",
        "event_time": iso_time(alert.event_time),
        "raw_line": _clip(_offending_line(alert)),
    }
    if alert.label:
        annotations["label"] = _clip(alert.label)
    if alert.fields:
        annotations["where"] = _clip(" ".join(f"{name}={value}" for name, value in alert.fields))
    if alert.note:
        annotations["note"] = _clip(alert.note)
    # Alertmanager refuses empty label values and shows empty annotations as noise.
    body: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
    }
    if generator_url:
        body["generatorURL"] = generator_url
    return body


def alertmanager_payload(alerts: Sequence[Alert], generator_url: str = "") -> list[dict[str, Any]]:
    """The body of one `POST /api/v2/alerts` (a JSON list)."""
    return [alertmanager_alert(a, generator_url) for a in alerts]


def webhook_payload(alerts: Sequence[Alert]) -> dict[str, Any]:
    """A generic webhook body: the alerts as `log-anomalies` carries them (its JSON Schema), in a
    versioned envelope so a receiver can tell this format from Alertmanager's."""
    return {"schema": WEBHOOK_SCHEMA, "alerts": [asdict(a) for a in alerts]}


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter: the delay before retry `attempt` (0 = the first retry)
    is drawn from [(1 - jitter) * d, d] with d = min(max_delay_s, initial_delay_s * multiplier**attempt).

    Jitter spreads the retries of several notifiers that lost the same receiver, so they do not
    hit it together when it comes back; the cap bounds how long a delivered receiver waits for us.
    """

    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.initial_delay_s <= self.max_delay_s:
            raise ConfigError(
                f"retry policy: need 0 < initial_delay_s <= max_delay_s, got {self.initial_delay_s} "
                f"and {self.max_delay_s}"
            )
        if self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ConfigError(
                f"retry policy: need multiplier >= 1 and 0 <= jitter <= 1, got {self.multiplier} "
                f"and {self.jitter}"
            )

    def ceiling_s(self, attempt: int) -> float:
        """The longest delay before retry `attempt`."""
        # The exponent is bounded so a receiver down for days does not overflow the float.
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier ** min(attempt, 64))

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        ceiling = self.ceiling_s(attempt)
        return ceiling * (1.0 - self.jitter * rng.random())
