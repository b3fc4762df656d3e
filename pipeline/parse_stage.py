"""The parse stage: one raw message in; `log-events` batches, dead letters and new templates out.

A plain object with its ports passed in (a sink per output topic, a clock), so that it runs without
Faust or a broker: the parse agent (`agents/parse.py`) only orders records, keeps the watermark and
turns an exception into an `internal-error` dead letter; unit tests use in-memory sinks.

Per raw message (`add`): the source from the header or key (`bad_header` dead letter otherwise),
that source's parser (`SourceParsers.columnar_for_source`: the deployed version's template set, the
exact `Parser` inside for whatever the columnar path cannot prove), the format-mismatch tracker, then
its dead letters and new templates are sent and its events kept. `flush` sends the events kept from
one or more raw messages as one `event-batch/2` message per `log-events` partition they fall on
(`EventColumns.by_partition`); `handle` is `add` + `flush` for one message.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.columnar_parse import ColumnarParser
from pipeline.event_columns import EventColumns
from pipeline.raw_source import BAD_HEADER, BadHeader, source_of
from pipeline.records import DeadLetter, SourceOffset
from pipeline.source_health import FormatMismatch, FormatMismatchTracker

log = logging.getLogger(__name__)

STEP = "parse"

# (log-events partition, key, value): one encoded batch for that partition.
EventSink = Callable[[int, bytes, bytes], Awaitable[Any]]
# (key, value): a dead letter or a template record.
RecordSink = Callable[[bytes, bytes], Awaitable[Any]]


@dataclass(frozen=True)
class MessageOutcome:
    """What one raw message added to the counters (the agent reports it as metrics)."""

    lines: int = 0  # log records parsed (a multi-line record counts once)
    events: int = 0
    oov: int = 0  # events whose template the deployed set does not know
    decode_replacements: int = 0
    dead_letters: tuple[str, ...] = ()  # the reason of each dead letter sent
    batches: int = 0  # log-events messages sent
    mismatch: FormatMismatch | None = None  # a (rate-limited) warning: most lines failed the format


@dataclass
class ParseCounters:
    """Running totals since the stage started."""

    messages: int = 0
    lines: int = 0
    events: int = 0
    oov: int = 0
    decode_replacements: int = 0
    batches: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason
    format_mismatches: Counter[str] = field(default_factory=Counter)  # warnings, by source

    def add(self, outcome: MessageOutcome, source: str | None) -> None:
        self.messages += 1
        self.lines += outcome.lines
        self.events += outcome.events
        self.oov += outcome.oov
        self.decode_replacements += outcome.decode_replacements
        self.batches += outcome.batches
        self.dead_letters.update(outcome.dead_letters)
        if outcome.mismatch is not None and source is not None:
            self.format_mismatches[source] += 1


class ParseStage:
    """Raw messages -> `event-batch/2` per `log-events` partition, dead letters, template records."""

    def __init__(
        self,
        parser_for: Callable[[str], ColumnarParser],
        events: EventSink,
        dead_letters: RecordSink,
        templates: RecordSink,
        clock: Callable[[], float],
        partitions: int,
        format_check: FormatMismatchTracker | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"parse stage: log-events needs at least 1 partition, got {partitions}")
        self.parser_for = parser_for
        self.events, self.dead_letters, self.templates = events, dead_letters, templates
        self.clock = clock
        self.partitions = partitions
        # Warns (rate-limited) when most recent lines of a source fail its format: likely the wrong source.
        self.format_check = format_check if format_check is not None else FormatMismatchTracker()
        self.counters = ParseCounters()
        self._pending: list[EventColumns] = []

    async def handle(
        self, value: bytes, headers: Any, key: bytes | None, raw: SourceOffset
    ) -> MessageOutcome:
        """Parse one raw message (`raw`: where it was read) and send what it produced."""
        outcome = await self.add(value, headers, key, raw)
        return replace(outcome, batches=await self.flush())

    async def add(self, value: bytes, headers: Any, key: bytes | None, raw: SourceOffset) -> MessageOutcome:
        """Parse one raw message: its dead letters and new templates are sent, its events kept until
        `flush`, so that the events of several raw messages leave as one log-events message per
        partition (per-message costs downstream are paid once per many lines)."""
        try:
            source = source_of(headers, key)
        except BadHeader as exc:
            await self._dead_letter(DeadLetter(BAD_HEADER, STEP, value, raw, str(exc)))
            outcome = MessageOutcome(dead_letters=(BAD_HEADER,))
            self.counters.add(outcome, None)
            return outcome
        parser = self.parser_for(source)
        now_s = self.clock()
        result = parser.parse(value, source, raw, now_s)
        batch = result.batch
        mismatch = self.format_check.observe(
            source, parser.format.name, result.records, result.format_misses, now_s
        )
        if mismatch is not None:
            log.warning("parse: %s", mismatch.message())
        for dead in result.dead_letters:
            await self._dead_letter(dead)
        for template in result.new_templates:
            await self.templates(template.key, template.encode())
        if len(batch):
            self._pending.append(batch)
        outcome = MessageOutcome(
            lines=result.records,
            events=len(batch),
            oov=int(batch.oov.sum()),
            decode_replacements=result.decode_replacements,
            dead_letters=tuple(d.reason for d in result.dead_letters),
            mismatch=mismatch,
        )
        self.counters.add(outcome, source)
        return outcome

    @property
    def pending_events(self) -> int:
        return sum(len(batch) for batch in self._pending)

    async def flush(self) -> int:
        """Send the kept events: one `event-batch/2` message per partition they fall on, in order of
        the raw messages (so each session's events stay in order). Returns the messages sent."""
        if not self._pending:
            return 0
        batch = EventColumns.concat(self._pending)
        self._pending = []
        parts = batch.by_partition(self.partitions)
        for partition, part in parts.items():
            await self.events(partition, f"partition-{partition}".encode(), part.encode())
        self.counters.batches += len(parts)
        return len(parts)

    def discard(self) -> int:
        """Drop the kept events (their raw messages are dead-lettered instead); returns how many."""
        dropped, self._pending = self.pending_events, []
        return dropped

    async def _dead_letter(self, dead: DeadLetter) -> None:
        await self.dead_letters(dead.reason.encode(), dead.encode())
