"""Lag: the group's committed lag (`logad_consumer_lag`) and this worker's own (`logad_records_behind`).

The value is the group's (committed offsets against end offsets), so every worker reports the same
number: aggregate with max, not sum. The broker calls block, so they run in the default executor
and the event loop keeps processing records meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agents.app import app, metrics, settings
from pipeline.adapters.kafka import ConsumerLagProbe
from pipeline.errors import InfrastructureError

log = logging.getLogger(__name__)

LAG_EVERY_S = 10.0
BEHIND_EVERY_S = 0.5

# Per input partition, the offset after the last message handled, kept by the parse and detect agents.
read_through: dict[str, dict[int, int]] = {}


async def waiting(topic: str) -> dict[int, int | None]:
    """Per partition of `topic` this worker holds, the records waiting there; None while the
    partition's end offset or position is not known yet.

    From the worker's own read positions, not the group's commits: a commit can lag behind what
    was handled with nothing waiting.

    A partition this worker has not handled a record of yet counts from the consumer's position: a
    group that starts at the end ("latest") has nothing waiting there, whatever the offsets."""
    consumer = app.consumer
    handled = read_through.get(topic, {})
    counts: dict[int, int | None] = {}
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        read = handled.get(tp.partition)
        if read is None:
            read = await consumer.position(tp)
        high = consumer.highwater(tp)
        # A stale high watermark (just fetched past it) never counts negative.
        counts[tp.partition] = None if read is None or high is None else max(0, high - read)
    return counts


async def behind(topic: str) -> int | None:
    """Records waiting on this worker's partitions of `topic`; None while one is not known."""
    counts = (await waiting(topic)).values()
    return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)


@app.timer(interval=BEHIND_EVERY_S)
async def report_behind() -> None:
    for topic in (settings.raw_logs_topic, settings.log_events_topic):
        if (count := await behind(topic)) is not None:
            metrics.records_behind.labels(topic=topic).set(count)


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
