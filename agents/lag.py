"""Lag: the group's committed lag (`logad_consumer_lag`) and this worker's own (`logad_records_behind`).

The value is the group's (committed offsets against end offsets), so every worker reports the same
number: aggregate with max, not sum. The broker calls block, so they run in the default executor
and the event loop keeps processing records meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.errors import IllegalStateError

from agents.app import app, metrics, settings
from pipeline.adapters.kafka import ConsumerLagProbe
from pipeline.errors import InfrastructureError

log = logging.getLogger(__name__)

LAG_EVERY_S = 10.0
BEHIND_EVERY_S = 0.5

# Per input partition, the offset after the last message handled, kept by the parse and detect agents.
read_through: dict[str, dict[int, int]] = {}


async def positions(topic: str) -> dict[int, tuple[int | None, int | None]]:
    """Per partition of `topic` this worker holds: (read position, high watermark), None while unknown.

    The read position is the offset after the last record handled (the agents keep it in
    `read_through`); a partition this worker has not handled a record of yet counts from the
    consumer's position: a group that starts at the end ("latest") has nothing waiting there."""
    consumer = app.consumer
    handled = read_through.get(topic, {})
    found: dict[int, tuple[int | None, int | None]] = {}
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        # A rebalance can take the partition away between `assignment()` and these calls; aiokafka
        # then raises (an AssertionError from `highwater`, IllegalStateError from `position`), which in
        # a timer would crash the worker: the partition counts as unknown instead.
        try:
            read = handled.get(tp.partition)
            if read is None:
                read = await consumer.position(tp)
            found[tp.partition] = (read, consumer.highwater(tp))
        except (AssertionError, IllegalStateError):
            found[tp.partition] = (None, None)
    return found


async def waiting(topic: str) -> dict[int, int | None]:
    """Per partition of `topic` this worker holds, the records waiting there; None while the
    partition's end offset or position is not known yet.

    From the worker's own read positions, not the group's commits: a commit can lag behind what
    was handled with nothing waiting."""
    return {
        # A stale high watermark (just fetched past it) never counts negative.
        p: None if read is None or high is None else max(0, high - read)
        for p, (read, high) in (await positions(topic)).items()
    }


async def behind(topic: str) -> int | None:
    """Records waiting on this worker's partitions of `topic`; None while one is not known."""
    counts = (await waiting(topic)).values()
    return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)


@app.timer(interval=BEHIND_EVERY_S)
async def report_behind() -> None:
    for topic in (settings.raw_logs_topic, settings.log_events_topic):
        if (count := await behind(topic)) is not None:
            metrics.records_behind.labels(topic=topic).set(count)


async def progress() -> dict[str, Any]:
    """The `/progress` body: read positions of both input topics, lines handled, sessions open.

    Positions first, then the counters and the open-session figure with no await in between: a
    message finished meanwhile then shows in the figures but not in the positions, so a run that
    polls this (pipeline.progress) errs on "not done yet", never on "done" too early."""
    topics = (settings.raw_logs_topic, settings.log_events_topic)
    found = {topic: await positions(topic) for topic in topics}
    return {
        # JSON object keys are strings (some encoders refuse int keys).
        "positions": {t: {str(p): read for p, (read, _) in parts.items()} for t, parts in found.items()},
        "behind": {
            t: None
            if any(r is None or h is None for r, h in parts.values())
            else sum(max(0, h - r) for r, h in parts.values() if r is not None and h is not None)
            for t, parts in found.items()
        },
        "lines_handled": int(metrics.lines_handled()),
        "sessions_open": int(metrics.sessions_open()),
    }


probe = ConsumerLagProbe(settings, settings.app_id)
_in_flight: asyncio.Future[dict[str, int]] | None = None


@app.timer(interval=LAG_EVERY_S)
async def report_lag() -> None:
    global _in_flight
    topics = [settings.raw_logs_topic, settings.log_events_topic]
    _in_flight = asyncio.get_running_loop().run_in_executor(None, probe.lag, topics)
    try:
        lag = await _in_flight
    except InfrastructureError as exc:
        # The gauge keeps its last value; a lost broker also shows in the worker's own errors.
        log.warning("lag: %s", exc)
        return
    for topic, value in lag.items():
        metrics.consumer_lag.labels(topic=topic).set(value)


@app.on_before_shutdown.connect
async def close_probe(sender: Any, **kwargs: Any) -> None:
    # The probe's clients must not be closed under a call still running in the executor.
    if _in_flight is not None and not _in_flight.done():
        await asyncio.wait([_in_flight], timeout=30)
    probe.close()
