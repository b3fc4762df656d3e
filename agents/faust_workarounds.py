"""Every place the worker reaches into faust's internals, in one module, checked against the
faust-streaming versions it was verified with (`VERIFIED_FAUST_VERSIONS`, pinned in pyproject.toml).

- In-order handling with read-back: after a rebalance faust can skip records of a partition; they
  are read back directly (`InOrder.records_before`) and `Consumer._add_gap` (private) tells faust's
  consumer that those offsets are done, or its commits for the partition stop at the first one.
- Manual acknowledgement in batches (`InOrder.batches`): `Stream.noack()` and `Stream.ack(event)`,
  because faust's `take_events()` can pair a buffered value with another message's event and lose
  records, and an auto-acked stream acknowledges a record as soon as the next one is taken.

`InOrder.records(stream)` yields the records of an agent's stream in offset order: those faust
skipped are read back and come first, those handled already are left out (see
pipeline.stream_order). A worker refuses to start on a faust-streaming version these workarounds
were not verified with (`check_faust_version`): a private API that changed would lose records
silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from agents.app import app, metrics, settings
from pipeline.adapters.faust_config import check_faust_version
from pipeline.adapters.kafka import PartitionReader
from pipeline.errors import InfrastructureError
from pipeline.stream_order import OffsetTracker

log = logging.getLogger(__name__)

check_faust_version(faust.__version__)


@dataclass(frozen=True)
class InputRecord:
    """One input record, whether faust delivered it or it was read back directly."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None  # seconds
    headers: Any
    key: bytes | None
    value: bytes

    @classmethod
    def of_event(cls, event: Any) -> InputRecord:
        m = event.message
        value = event.value if isinstance(event.value, bytes | bytearray) else b""
        return cls(m.topic, m.partition, m.offset, m.timestamp, m.headers, m.key, bytes(value))

    @classmethod
    def of_confluent(cls, msg: Any) -> InputRecord:
        kind, millis = msg.timestamp()
        return cls(
            msg.topic(),
            msg.partition(),
            msg.offset(),
            millis / 1000.0 if kind else None,
            msg.headers() or [],
            msg.key(),
            msg.value() or b"",
        )


class InOrder:
    """Per agent: the offsets it expects next, and a reader for records faust skipped."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.tracker = OffsetTracker()
        self.reader = PartitionReader(settings, settings.app_id)

    async def records_before(self, event: Any) -> list[InputRecord] | None:
        """None when the event's record was handled already; else the skipped records to handle
        before it (usually none)."""
        m = event.message
        loop = asyncio.get_running_loop()
        if not self.tracker.knows(m.topic, m.partition):
            try:
                committed = await loop.run_in_executor(None, self.reader.committed, m.topic, m.partition)
            except InfrastructureError as exc:
                log.warning("%s: %s; not checking this partition for skipped records", self.agent, exc)
                committed = None
            self.tracker.start(m.topic, m.partition, committed)
        verdict = self.tracker.check(m.topic, m.partition, m.offset)
        if verdict.seen:
            return None
        if verdict.missing_from is None:
            return []
        start = verdict.missing_from
        try:
            read = await loop.run_in_executor(None, self.reader.read, m.topic, m.partition, start, m.offset)
        except InfrastructureError as exc:
            # Not committed past them either: a restart reads them again.
            log.error("%s: offsets %d..%d of %s[%d] were skipped and cannot be read back: %s",
                      self.agent, start, m.offset - 1, m.topic, m.partition, exc)  # fmt: skip
            return []
        log.warning(
            "%s: faust skipped %s[%d] offsets %d..%d after a rebalance; read %d of them back directly",
            self.agent, m.topic, m.partition, start, m.offset - 1, len(read),
        )  # fmt: skip
        metrics.skipped_records.labels(topic=m.topic).inc(len(read))
        # Tell faust those offsets are done, or its commits for the partition stop at the first one.
        await app.consumer._add_gap(TP(m.topic, m.partition), start, m.offset - 1)
        return [InputRecord.of_confluent(msg) for msg in read]

    async def records(self, stream: Any) -> AsyncIterator[InputRecord]:
        """The stream's records in order; each counts as handled once the caller asks for the next
        (faust acknowledges an event when the next one is taken, so after all of its records)."""
        async for event in stream.events():
            before = await self.records_before(event)
            if before is None:
                continue  # handled already (faust re-delivered it after it was read back)
            for record in (*before, InputRecord.of_event(event)):
                yield record
                self.tracker.handled(record.topic, record.partition, record.offset)

    async def batches(
        self, stream: Any, max_records: int, max_bytes: int
    ) -> AsyncIterator[list[InputRecord]]:
        """The stream's records in order, in lists: each list holds what is already waiting (at
        most `max_records` records and about `max_bytes`), never waiting for more, so a quiet stream
        still has each record handled at once and a backlog is handled many records at a time.

        A list's records are acknowledged to faust only when the caller asks for the next list, so
        the committed offset never passes a record whose output the caller still holds (the parse
        agent sends the events of a whole list at its end). Hence the manual acks (`noack`): faust
        would acknowledge each record as soon as the next one is taken.
        """
        manual = stream.noack()
        waiting: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(1, max_records))

        async def pump() -> None:
            async for event in manual.events():
                await waiting.put(event)

        pumping = asyncio.ensure_future(pump())
        try:
            while True:
                getting = asyncio.ensure_future(waiting.get())
                await asyncio.wait({getting, pumping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    pumping.result()  # the stream ended: raise what ended it, if anything
                    return
                events = [getting.result()]
                size = len(events[0].value or b"")
                while len(events) < max_records and size < max_bytes and not waiting.empty():
                    events.append(waiting.get_nowait())
                    size += len(events[-1].value or b"")
                records: list[InputRecord] = []
                for event in events:
                    before = await self.records_before(event)
                    if before is None:
                        continue  # handled already (faust re-delivered it after it was read back)
                    for record in (*before, InputRecord.of_event(event)):
                        records.append(record)
                        # Now, not after the batch: the next event's check must count this one in.
                        self.tracker.handled(record.topic, record.partition, record.offset)
                if records:
                    yield records
                for event in events:
                    await manual.ack(event)
        finally:
            pumping.cancel()


parse_order = InOrder("parse")
detect_order = InOrder("detect")


@app.on_partitions_assigned.connect
async def restart_tracking(sender: Any, assigned: Any, **kwargs: Any) -> None:
    # faust seeks every assigned partition to its committed offset after a rebalance.
    for order in (parse_order, detect_order):
        order.tracker.reset()
