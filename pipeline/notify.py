"""`logad notify`'s loop: read alerts, deliver them, and only then commit past them.

At least once, never less: a batch of `log-anomalies` records is posted (retried with the
`RetryPolicy` for as long as it takes) before its offsets are committed, and no new record is read
while a batch is undelivered. A notifier killed at any point re-reads from its last commit; what it
re-posts carries the same alert ids, which Alertmanager deduplicates. Kafka and HTTP sit behind the
two ports below (`pipeline.adapters.kafka.CommittingReader`, `pipeline.adapters.alert_http`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.alert_routing import AlertFilter, RetryPolicy
from pipeline.alerts import Alert, decode_alert
from pipeline.errors import DataError, LogadError

log = logging.getLogger(__name__)


class DeliveryError(LogadError):
    """A receiver did not take a batch (unreachable, timed out, or answered other than 2xx)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TopicRecord:
    """What the loop needs of a Kafka record."""

    topic: str
    partition: int
    offset: int
    value: bytes


class AlertRecords(Protocol):
    """Records of `log-anomalies` under a consumer group that commits only when told."""

    def poll(self, max_records: int, timeout_s: float) -> list[TopicRecord]: ...

    def commit(self, records: Sequence[TopicRecord]) -> None:
        """Commit past every record given (per partition, its highest offset + 1)."""
        ...


class AlertSink(Protocol):
    """A receiver: Alertmanager or a webhook."""

    def describe(self) -> str: ...

    def post(self, alerts: Sequence[Alert]) -> None:
        """Deliver all of `alerts` or raise DeliveryError."""
        ...


@dataclass
class NotifyTally:
    delivered: int = 0
    filtered_out: int = 0
    unreadable: int = 0
    failed_posts: int = 0
    batches: int = 0


@dataclass
class Notifier:
    """Polls `records`, posts the alerts `route` takes to `sink`, commits after each success.

    `wait(seconds)` sleeps between retries and returns True when the notifier should stop (a
    `threading.Event.wait`); a stop during retries leaves the batch uncommitted, to be re-read.
    """

    records: AlertRecords
    sink: AlertSink
    route: AlertFilter = field(default_factory=AlertFilter)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    wait: Callable[[float], bool] = lambda _s: False
    rng: random.Random = field(default_factory=random.Random)
    max_batch: int = 100
    tally: NotifyTally = field(default_factory=NotifyTally)

    def step(self, poll_timeout_s: float = 1.0) -> bool:
        """Handle one polled batch. Returns False when stopped before the batch was delivered."""
        batch = self.records.poll(self.max_batch, poll_timeout_s)
        if not batch:
            return True
        alerts = self._routed(batch)
        if alerts and not self._deliver(alerts):
            return False
        # Filtered-out and unreadable records are passed too: they are not this route's to deliver.
        self.records.commit(batch)
        self.tally.batches += 1
        return True

    def _routed(self, batch: Sequence[TopicRecord]) -> list[Alert]:
        alerts: list[Alert] = []
        for record in batch:
            try:
                alert = decode_alert(record.value)
            except DataError as exc:
                # Not an alert this version can read (another producer, a newer schema): say where it
                # is so that it can be read with `logad tail --from-beginning` or a newer notifier.
                self.tally.unreadable += 1
                log.error(
                    "notify: skipping the unreadable record %s[%d]@%d: %s",
                    record.topic, record.partition, record.offset, exc,
                )  # fmt: skip
                continue
            if self.route.matches(alert):
                alerts.append(alert)
            else:
                self.tally.filtered_out += 1
        return alerts

    def _deliver(self, alerts: Sequence[Alert]) -> bool:
        attempt = 0
        while True:
            try:
                self.sink.post(alerts)
            except DeliveryError as exc:
                self.tally.failed_posts += 1
                delay = self.policy.delay_s(attempt, self.rng)
                # 4xx other than timeouts and throttling will not heal by itself: name the fix.
                fix = (
                    " (the receiver refused the request: check the URL and its API version)"
                    if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (408, 429)
                    else ""
                )
                log.warning(
                    "notify: %d alert(s) not delivered to %s (attempt %d): %s%s; retrying in %.1f s, "
                    "nothing is committed meanwhile",
                    len(alerts), self.sink.describe(), attempt + 1, exc, fix, delay,
                )  # fmt: skip
                attempt += 1
                if self.wait(delay):
                    return False
                continue
            self.tally.delivered += len(alerts)
            if attempt:
                log.info("notify: delivered %d alert(s) after %d retries", len(alerts), attempt)
            return True

    def run(self, stopping: Callable[[], bool], poll_timeout_s: float = 1.0) -> NotifyTally:
        """Steps until `stopping()` (checked between batches) or a stop during retries."""
        while not stopping():
            if not self.step(poll_timeout_s):
                break
        return self.tally
