"""The detect agent's session state on the state topic (`pipeline.session_state_log`).

A log-events partition is restored before the agent handles its first record here (`hold`, called
by the agent itself, so no message of that partition is still being handled), and dropped when
faust revokes it. Each handled message then costs one delta record (`write`), awaited before faust
may acknowledge the message; snapshots follow the `SnapshotPolicy`.

A write that fails leaves the worker's sessions ahead of the topic: the worker exits (unacknowledged)
rather than go on from a state a restart could not see.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from agents.app import app, metrics, settings, state_log, wall_clock
from agents.failures import exit_unrecorded
from pipeline.adapters.state_log import StateLogReader
from pipeline.errors import DataError
from pipeline.records import SourceOffset
from pipeline.session_partitions import PartitionedSessionStore
from pipeline.session_state_log import (
    DEFAULT_MAX_RECORD_BYTES,
    PartitionSessions,
    SnapshotPolicy,
    encode_split,
    open_record,
    restore,
)

log = logging.getLogger(__name__)

# A restore may read a few snapshots' worth of records: give it more than a read-back of a few records.
RESTORE_TIMEOUT_S = 120.0
POLICY = SnapshotPolicy(min_bytes=settings.session_snapshot_min_bytes)

store = PartitionedSessionStore(settings.window_size)
_reader = StateLogReader(settings, settings.app_id, timeout_s=RESTORE_TIMEOUT_S)


async def hold(partition: int) -> PartitionSessions:
    """The partition's sessions, restored from the state topic first if this worker lacks them."""
    if not store.holds(partition):
        try:
            store.adopt(await _restore(partition))
        except Exception as exc:  # no safe way on without the partition's sessions
            exit_unrecorded("restore", SourceOffset(settings.log_events_topic, partition), exc)
    return store.use(partition)


async def _restore(partition: int) -> PartitionSessions:
    topic = state_log.get_topic_name()
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    part, high, records = await loop.run_in_executor(None, _reader.restore, topic, partition)
    generation = part.generation
    # Fence off the previous owner: its records after this one are ignored by every later restore.
    marker = (await (await state_log.send(value=open_record(part), partition=partition))).offset
    if marker > high:
        # Records landed between the read and the marker (a previous owner finishing a message):
        # take them in, as any later restore will.
        extra = await loop.run_in_executor(None, _reader.records, topic, partition, high, marker)
        part = restore(partition, records + extra, part.base)
        if part.generation > generation:
            raise DataError(
                f"session state: {topic}[{partition}] got a generation {part.generation - 1} record "
                f"while this worker opened generation {generation}: two owners of one partition"
            )
        part.generation = generation
    part.snapshot_at = wall_clock()
    log.info(
        "detect: restored %d sessions of partition %d (generation %d) from %s offsets %s..%d in %.2f s",
        len(part), partition, generation, topic, records[0][0] if records else high, marker,
        time.perf_counter() - started,
    )  # fmt: skip
    return part


async def write(part: PartitionSessions, covers: int, raw: SourceOffset) -> None:
    """Write the changes of the message at log-events offset `covers` (one delta, or a few parts of
    one when large) and a snapshot when due; returns once the broker acknowledged them."""
    try:
        record = part.checkpoint(covers)
        if record is not None:
            values = encode_split(record, DEFAULT_MAX_RECORD_BYTES)
            await _send_all(part.partition, values)
            metrics.state_records.inc(len(values))
            part.written(sum(len(v) for v in values))
        now = wall_clock()
        if part.snapshot_due(POLICY, now):
            values = part.snapshot_records(DEFAULT_MAX_RECORD_BYTES)
            offsets = await _send_all(part.partition, values)
            part.snapshot_written(offsets[0], sum(len(v) for v in values), now)
            metrics.state_snapshots.inc()
            log.info(
                "detect: snapshot of partition %d: %d sessions in %d records from offset %d",
                part.partition, len(part), len(values), offsets[0],
            )  # fmt: skip
    except Exception as exc:
        exit_unrecorded("session state", raw, exc)


async def _send_all(partition: int, values: list[bytes]) -> list[int]:
    futures = [await state_log.send(value=value, partition=partition) for value in values]
    return [metadata.offset for metadata in await asyncio.gather(*futures)]


@app.on_partitions_revoked.connect
async def drop_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    # Another worker may own them next and write on: what this worker holds would go stale.
    events = settings.log_events_topic
    dropped = store.drop(tp.partition for tp in revoked if tp.topic == events)
    if dropped:
        log.info("detect: dropped the sessions of revoked partitions %s", sorted(dropped))
