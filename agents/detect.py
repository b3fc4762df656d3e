"""Detection agent: `log-events` -> session table -> one scoring call per message -> `log-anomalies`."""

from __future__ import annotations

import logging
import time

import faust

from agents.app import anomalies, app, dead_letters, log_events, metrics, sessions, settings, wall_clock
from agents.parse import follower
from pipeline.alerts import encode_alert
from pipeline.deployment import next_event_scorer
from pipeline.detection import Detector
from pipeline.errors import DataError
from pipeline.records import DeadLetter, EventBatch, SourceOffset
from pipeline.sessions import TableSessionStore

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 5.0

store = TableSessionStore(sessions, settings.window_size)
scorer = next_event_scorer(settings, wall_clock, on_degraded=metrics.set_degraded)
detector = Detector(scorer, follower.text, store)
_last_expiry: dict[int, float] = {}


@app.agent(log_events)
async def detect(stream: faust.StreamT) -> None:
    # Each message already holds many sessions' events of one partition (see agents.parse), so
    # one message is one scoring batch and table writes go to that partition's changelog.
    async for event in stream.events():
        message = event.message
        try:
            batch = EventBatch.decode(bytes(event.value))
        except DataError as exc:
            raw = SourceOffset(message.topic, message.partition, message.offset)
            metrics.dead_letters.labels(reason="undecodable-event-batch").inc()
            await dead_letters.send(
                key=b"undecodable-event-batch",
                value=DeadLetter(
                    "undecodable-event-batch", "detect", bytes(event.value), raw, str(exc)
                ).encode(),
            )
            continue
        if batch.events:
            started = time.perf_counter()
            result = await detector.process(batch.events, now=wall_clock())
            store.flush()
            metrics.inference_latency.observe(time.perf_counter() - started)
            metrics.batch_size.observe(result.scored)
            for alert in result.alerts:
                metrics.alerts.labels(kind=alert.kind.value).inc()
                await anomalies.send(key=alert.kafka_key(), value=encode_alert(alert))
            for rejected, reason in result.rejected:
                log.warning("detect: event of session %s rejected: %s", rejected.session_key, reason)
        await _expire(message.partition)


async def _expire(partition: int) -> None:
    now = wall_clock()
    if now - _last_expiry.get(partition, 0.0) < EXPIRE_EVERY_S:
        return
    _last_expiry[partition] = now
    closed = store.expire(now, settings.session_timeout_s, partition, settings.topic_partitions)
    if closed:
        end_id = follower.current().session_end_id
        for alert in await detector.close(closed, end_id, settings.window_size):
            metrics.alerts.labels(kind=alert.kind.value).inc()
            await anomalies.send(key=alert.kafka_key(), value=encode_alert(alert))
        verdicts = detector.finalize(closed)
        flagged = sum(1 for v in verdicts if v.anomalous)
        log.info(
            "detect: closed %d idle sessions on partition %d (%d anomalous)", len(closed), partition, flagged
        )
    metrics.sessions.set(len(sessions))


@app.timer(interval=EXPIRE_EVERY_S, on_leader=True)
async def tick() -> None:
    """An empty batch to every partition, so idle partitions still expire (and close) their sessions."""
    empty = EventBatch(()).encode()
    for partition in range(settings.topic_partitions):
        await log_events.send(key=b"tick", value=empty, partition=partition)
