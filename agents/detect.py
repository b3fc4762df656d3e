"""Detection agent: `log-events` -> session table -> one scoring call per message -> `log-anomalies`.

Events of the window sources (`LOGAD_WINDOW_SOURCES`) go to in-memory time windows instead; the
windows a message closes are classified in one call (`pipeline.window_detection`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import faust

from agents import lag
from agents.app import anomalies, app, dead_letters, log_events, metrics, sessions, settings, wall_clock
from agents.parse import follower, watermark, window_follower
from pipeline.alerts import Alert, encode_alert
from pipeline.deployment import next_event_scorer, parameter_detector, window_class_scorer
from pipeline.detection import Detector
from pipeline.errors import DataError
from pipeline.records import DeadLetter, EventBatch, SourceOffset
from pipeline.sessions import TableSessionStore
from pipeline.stream_clock import StreamClock
from pipeline.window_classifier import WindowClassifier
from pipeline.window_detection import WindowDetector

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 5.0

store = TableSessionStore(sessions, settings.window_size)
scorer = next_event_scorer(settings, wall_clock, on_degraded=metrics.set_degraded)
# Parameter values are checked too when a `deeplog_params` version exists (see pipeline.deployment).
detector = Detector(scorer, follower.text, store, parameters=parameter_detector(settings, wall_clock))
window_detector = WindowDetector(
    WindowClassifier(
        window_class_scorer(settings, wall_clock, on_degraded=metrics.set_degraded), window_follower.text
    ),
    lambda: window_follower.current().require_window_spec(),
    settings.window_source_set,
)
_last_expiry: dict[int, float] = {}
clock = StreamClock()
events_read_through = lag.read_through.setdefault(settings.log_events_topic, {})


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
            events_read_through[message.partition] = message.offset + 1
            continue
        # Ingest time of the records (a tick: the time it carries), never the wall clock: a backlog
        # must drain with the session boundaries it would have had (pipeline.stream_clock).
        times = [e.raw.timestamp for e in batch.events] if batch.events else [message.timestamp]
        now = clock.advance(message.partition, times) or wall_clock()
        session_events, windowed = window_detector.split(batch.events)
        if session_events:
            started = time.perf_counter()
            result = await detector.process(session_events, now=now)
            metrics.inference_latency.observe(time.perf_counter() - started)
            metrics.batch_size.observe(result.scored)
            metrics.redelivered.inc(result.redelivered)
            await _publish(result.alerts)
            # State after its alerts: a worker stopped in between leaves the events to be re-read
            # (their alerts may repeat under the same id) instead of a state whose alerts never left.
            store.flush()
            for rejected, reason in result.rejected:
                log.warning("detect: event of session %s rejected: %s", rejected.session_key, reason)
        if windowed:
            started = time.perf_counter()
            windows = await window_detector.process(windowed)
            if windows.closed:
                metrics.inference_latency.observe(time.perf_counter() - started)
                metrics.batch_size.observe(windows.closed)
            metrics.windows_open.set(window_detector.open_windows)
            await _publish(windows.alerts)
            for rejected, reason in windows.rejected:
                log.warning("detect: event of %s rejected: %s", rejected.source, reason)
        await _expire(message.partition, now)
        events_read_through[message.partition] = message.offset + 1
        await _delivered()


async def _publish(alerts: Iterable[Alert]) -> None:
    for alert in alerts:
        metrics.alerts.labels(kind=alert.kind.value).inc()
        await anomalies.send(key=alert.kafka_key(), value=encode_alert(alert))


async def _delivered() -> None:
    """Wait until this message's table writes and alerts are delivered, before faust acks it.

    Faust commits the offsets of acked messages on a timer while table writes sit in its producer
    queue (its dict API cannot await them): after a kill -9 the committed offset could cover session
    state that never reached the changelog, and those events were lost to the session. Waiting here
    keeps "committed" behind "written" (at least once), and bounds the queue: without it memory grew
    by ~4 KB per session in the million-session test.
    """
    await app.producer.flush()


async def _expire(partition: int, now: float) -> None:
    if now - _last_expiry.get(partition, 0.0) < EXPIRE_EVERY_S:
        return
    _last_expiry[partition] = now
    closed = store.idle(now, settings.session_timeout_s, partition, settings.topic_partitions)
    if closed:
        end_id = follower.current().session_end_id
        await _publish(await detector.close(closed, end_id, settings.window_size))
        store.remove(closed)  # after the alerts (see TableSessionStore.idle)
        verdicts = detector.finalize(closed)
        flagged = sum(1 for v in verdicts if v.anomalous)
        log.info(
            "detect: closed %d idle sessions on partition %d (%d anomalous)", len(closed), partition, flagged
        )
    metrics.sessions.set(len(sessions))


@app.timer(interval=EXPIRE_EVERY_S, on_leader=True)
async def tick() -> None:
    """An empty batch to every partition, so idle partitions still expire (and close) their sessions.

    Its timestamp is the ingest watermark: behind the wall clock while a backlog is parsed."""
    stamp = watermark.value(wall_clock(), caught_up=await lag.behind(settings.raw_logs_topic) == 0)
    if stamp is None:
        return
    empty = EventBatch(()).encode()
    for partition in range(settings.topic_partitions):
        await log_events.send(key=b"tick", value=empty, partition=partition, timestamp=stamp)
