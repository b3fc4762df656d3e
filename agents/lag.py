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
from pipeline.stream_clock import records_behind

log = logging.getLogger(__name__)

LAG_EVERY_S = 10.0
BEHIND_EVERY_S = 0.5

# Per input partition, the offset after the last message handled, kept by the parse and detect agents.
read_through: dict[str, dict[int, int]] = {}


async def behind(topic: str) -> int | None:
    """Records waiting on this worker's partitions of `topic` (its read position, not commits);
    None while a partition's end offset is not known yet.

    A partition this worker has not handled a record of yet counts from the consumer's position: a
    group that starts at the end ("latest") has nothing waiting there, whatever the offsets."""
    consumer = app.consumer
    assigned = [tp for tp in consumer.assignment() if tp.topic == topic]
    handled = read_through.get(topic, {})
    read = dict(handled)
    for tp in assigned:
        if tp.partition not in handled:
            position = await consumer.position(tp)
            if position is None:
                return None
            read[tp.partition] = position
    return records_behind(read, {tp.partition: consumer.highwater(tp) for tp in assigned})


@app.timer(interval=BEHIND_EVERY_S)
async def report_behind() -> None:
    for topic in (settings.raw_logs_topic, settings.log_events_topic):
        if (waiting := await behind(topic)) is not None:
            metrics.records_behind.labels(topic=topic).set(waiting)


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
