"""Detection agent: `log-events` -> sessions -> one scoring call per message -> `log-anomalies`.

Sessions live in worker memory per log-events partition and are written as one delta record per
message to the session state topic (`agents.session_state`, `pipeline.session_state_log`).

Events of the window sources (`LOGAD_WINDOW_SOURCES`) go to in-memory time windows instead; the
windows a message closes are classified in one call (`pipeline.window_detection`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any

import faust
import numpy as np
import orjson

from agents import feedback, lag, session_state
from agents.app import anomalies, app, dead_letters, log_events, metrics, settings, wall_clock
from agents.failures import dead_letter_or_exit
from agents.faust_workarounds import InputRecord, detect_order
from agents.parse import follower, raw_lines, raw_messages, watermark, window_follower
from pipeline.alerts import Alert, encode_alert
from pipeline.columnar_detect import ColumnarDetector
from pipeline.deployment import next_event_scorer, parameter_detector, window_class_scorer
from pipeline.errors import DataError, InfrastructureError
from pipeline.event_columns import decode_batch
from pipeline.records import DeadLetter, EventBatch, SourceOffset
from pipeline.stream_clock import RawWatermarks
from pipeline.window_classifier import WindowClassifier
from pipeline.window_detection import WindowDetector

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 5.0

store = session_state.store
scorer = next_event_scorer(settings, wall_clock, on_degraded=metrics.set_degraded)
# Parameter values are checked too when a `deeplog_params` version exists (see pipeline.deployment).
detector = ColumnarDetector(
    scorer,
    follower.text,
    store,
    parameters=parameter_detector(settings, wall_clock, on_degraded=metrics.set_degraded),
    feedback=feedback.gate,
)
window_detector = WindowDetector(
    WindowClassifier(
        window_class_scorer(settings, wall_clock, on_degraded=metrics.set_degraded), window_follower.text
    ),
    lambda: window_follower.current().require_window_spec(),
    settings.window_source_set,
    idle_s=settings.window_idle_s,
)
_last_expiry: dict[int, float] = {}
clock = RawWatermarks()
events_read_through = lag.read_through.setdefault(settings.log_events_topic, {})


@app.agent(log_events)
async def detect(stream: faust.StreamT) -> None:
    # Each message already holds many sessions' events of one partition (see agents.parse), so
    # one message is one scoring batch and one delta record of that partition's state.
    async for record in detect_order.records(stream):
        await _detect(record)


async def _detect(record: InputRecord) -> None:
    await feedback.wait_ready()  # after a restart, what operators marked normal is known first
    # Restored here, in the agent, before the partition's first record: no message of the partition
    # is still being handled, so the restore sees every delta this worker wrote.
    await session_state.hold(record.partition)
    _handling[:] = [record]
    try:
        await _detect_record(record)
    except Exception as exc:  # a bug or an unusable model must not lose the record (agents.failures)
        # Dead-lettered means not applied: undo the session changes it made and has not written.
        store.discard()
        raw = SourceOffset(record.topic, record.partition, record.offset)
        await dead_letter_or_exit("detect", [record.value], raw, exc, also_wait=_delivered)
        events_read_through[record.partition] = record.offset + 1


# The log-events record being handled: its offset is what a delta covers (`_delivered`).
_handling: list[InputRecord] = []


async def _detect_record(record: InputRecord) -> None:
    try:
        columns = decode_batch(record.value)  # event-batch/1 or /2; another schema is a DataError
    except DataError as exc:
        raw = SourceOffset(record.topic, record.partition, record.offset)
        metrics.dead_letters.labels(reason="undecodable-event-batch").inc()
        await dead_letters.send(
            key=b"undecodable-event-batch",
            value=DeadLetter("undecodable-event-batch", "detect", record.value, raw, str(exc)).encode(),
        )
        events_read_through[record.partition] = record.offset + 1
        return
    # Ingest time, never the wall clock: a backlog must drain with the session boundaries it
    # would have had (pipeline.stream_clock). A session is touched at its batch's newest ingest
    # time and closes once every raw partition is parsed `session_timeout_s` past that.
    if columns.raw_partitions:
        clock.observe_tick(dict(columns.watermarks), columns.raw_partitions)
    clock.observe_many(columns.partitions, columns.ingested_at)
    ingested = columns.ingested_at[~np.isnan(columns.ingested_at)]
    touched = float(ingested.max()) if len(ingested) else None
    session_columns, windowed = window_detector.split_columns(columns)
    if len(session_columns):
        started = time.perf_counter()
        result = await detector.process_columns(session_columns, now=touched or wall_clock())
        metrics.inference_latency.observe(time.perf_counter() - started)
        metrics.batch_size.observe(result.scored)
        metrics.redelivered.inc(result.redelivered)
        await _publish(result.alerts)
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
    if (now := clock.now()) is not None:
        if window_detector.open_windows:
            # A quiet window source: its last windows close on the ingest clock (ticks move it on).
            idle = await window_detector.close_idle(now)
            if idle.closed:
                metrics.windows_open.set(window_detector.open_windows)
                await _publish(idle.alerts)
        await _expire(record.partition, now)
    await _delivered()
    # Both after the message's alerts and state are acknowledged, with no await in between: a run
    # that sees this position reached and no session open has every alert in log-anomalies
    # (pipeline.progress). The open-session figure is refreshed on every message, not only on expiry.
    metrics.sessions.set(len(store))
    events_read_through[record.partition] = record.offset + 1


# Alerts sent for the message being handled, awaited by `_delivered` before its state is written.
_sent: list[Awaitable[Any]] = []


async def _publish(alerts: Iterable[Alert]) -> None:
    for alert in await raw_lines.attach(list(alerts)):
        metrics.alerts.labels(kind=alert.kind.value).inc()
        _sent.append(await anomalies.send(key=alert.kafka_key(), value=encode_alert(alert)))


async def _delivered() -> None:
    """Wait until this message's alerts, then its state, are acknowledged, before faust acks it.

    Faust commits the offsets of acked messages on a timer: without this wait the committed offset
    could cover session state or alerts still queued in the producer, lost with a kill -9 or a
    worker leaving the group, and those events were lost to their session. Waiting keeps
    "committed" behind "written" (at least once), and bounds the queue. The state goes out only
    once the alerts are in: a worker stopped in between leaves the events to be re-read (their
    alerts may repeat under the same id) instead of a state whose alerts never left.
    """
    sent = _sent.copy()
    _sent.clear()
    await asyncio.gather(*sent)
    record = _handling[0]
    raw = SourceOffset(record.topic, record.partition, record.offset)
    part = store.current
    if part is not None:
        await session_state.write(part, record.offset, raw)


async def _expire(partition: int, now: float) -> None:
    if now - _last_expiry.get(partition, 0.0) < EXPIRE_EVERY_S:
        return
    _last_expiry[partition] = now
    closed = store.idle(now, settings.session_timeout_s)
    if closed:
        try:
            end_id = follower.current().session_end_id
            await _publish(await detector.close(closed, end_id, settings.window_size))
        except Exception as exc:
            # Not retried at the next expiry: a session that makes closing fail would fail it every
            # time and never leave. Each is kept as a dead letter (its state) and removed.
            states = [orjson.dumps(state.to_dict()) for state in closed]
            what = "the state of a session that was closing (JSON); it was removed without its end check"
            raw = SourceOffset(settings.log_events_topic, partition)
            await dead_letter_or_exit("expire", states, raw, exc, also_wait=_delivered, what=what)
        store.remove(closed)  # after the alerts (see PartitionedSessionStore.idle)
        verdicts = detector.finalize(closed)
        flagged = sum(1 for v in verdicts if v.anomalous)
        log.info(
            "detect: closed %d idle sessions on partition %d (%d anomalous)", len(closed), partition, flagged
        )


@app.on_before_shutdown.connect
async def close_raw_messages(sender: Any, **kwargs: Any) -> None:
    # The reader's client must not be closed under a read still running in the executor.
    await raw_lines.settled(timeout_s=30.0)
    raw_messages.close()


_raw_partition_count: list[int] = []


async def _raw_partitions() -> int | None:
    """How many raw-logs partitions there are. faust's consumer knows it only on the worker that
    leads the group (elsewhere None, and a tick without it would never let sessions close there),
    so the broker is asked once when faust does not know."""
    known = app.consumer.topic_partitions(settings.raw_logs_topic)
    if known:
        return int(known)
    if not _raw_partition_count:
        loop = asyncio.get_running_loop()
        reader = detect_order.reader
        try:
            count = await loop.run_in_executor(None, reader.partition_count, settings.raw_logs_topic)
        except InfrastructureError as exc:
            log.warning("detect: no partition count of %s yet: %s", settings.raw_logs_topic, exc)
            return None
        _raw_partition_count.append(count)
    return _raw_partition_count[0]


@app.timer(interval=EXPIRE_EVERY_S)
async def tick() -> None:
    """The ingest watermarks of the raw partitions this worker holds, to every log-events partition,
    so sessions still close when input pauses or a partition is idle (pipeline.stream_clock)."""
    raw_topic = settings.raw_logs_topic
    marks = watermark.values(wall_clock(), await lag.waiting(raw_topic))
    partitions = await _raw_partitions()
    if not marks or not partitions:
        return
    value = EventBatch((), tuple(sorted(marks.items())), partitions).encode()
    for partition in range(settings.topic_partitions):
        await log_events.send(key=b"tick", value=value, partition=partition)
