"""Raw lines for alerts: the records an alert's coordinates name, read back only when it is raised.

Events and session states carry no raw text, only where each record lies (raw topic, partition,
offset, and the record's index within its message): the worker's hot path stays as light as it was,
and alerts are rare. When alerts go out, `RawLineReader.attach` reads the few raw messages they name
through a `RawMessages` port (Kafka: `RawMessageReader` in `pipeline.adapters.kafka`; in memory:
`InMemoryRawMessages`, for offline detection and tests), splits each message exactly as the parser
did (`Parser.records`), and fills in the texts and the header fields that say where it happened.

The read blocks, so it runs in an executor with a time bound; one read at a time. When it fails, is
too slow, or an earlier one still runs, the alerts go out anyway with their coordinates and a note.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from pipeline.alerts import Alert, AlertKind, RawLine
from pipeline.errors import ParseError
from pipeline.formats import LogFormat
from pipeline.parsing import Parser

log = logging.getLogger(__name__)

MessageKey = tuple[str, int, int]  # (topic, partition, offset) of a raw message


class RawMessages(Protocol):
    """Raw messages by coordinates. Blocking: `RawLineReader` calls it from an executor thread."""

    def messages(self, keys: Sequence[MessageKey]) -> Mapping[MessageKey, bytes]:
        """The values at `keys`; a message no longer there (retention) is left out."""
        ...


class InMemoryRawMessages:
    """Raw messages held in a dict: offline detection keeps its input here, tests their payloads."""

    def __init__(self) -> None:
        self._values: dict[MessageKey, bytes] = {}

    def add(self, topic: str, partition: int, offset: int, payload: bytes) -> None:
        self._values[(topic, partition, offset)] = payload

    def messages(self, keys: Sequence[MessageKey]) -> Mapping[MessageKey, bytes]:
        return {key: self._values[key] for key in keys if key in self._values}


def record_texts(parser: Parser, payload: bytes) -> list[str]:
    """The message's records as the parser cut them (index = `SourceOffset.line`), joined lines and all."""
    return [item.line for item in parser.records(payload)]


class RawLineReader:
    """Fills in alerts' raw texts and header fields from the raw messages their coordinates name.

    `parser_for(source)` gives the parser of the alert's source (its format and record joining);
    `timeout_s` bounds how long an alert waits for its lines; up to `cache_bytes` of recently read
    messages are kept, since one session's alerts and the alerts of one batch share messages.
    """

    def __init__(
        self,
        messages: RawMessages,
        parser_for: Callable[[str], Parser],
        timeout_s: float = 3.0,
        cache_bytes: int = 8 << 20,
    ) -> None:
        self.source = messages
        self.parser_for = parser_for
        self.timeout_s = timeout_s
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[MessageKey, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._in_flight: asyncio.Future[Mapping[MessageKey, bytes]] | None = None

    @property
    def busy(self) -> bool:
        """An earlier read still runs in its thread (it outlived its time bound)."""
        return self._in_flight is not None and not self._in_flight.done()

    async def settled(self, timeout_s: float) -> None:
        """Wait (up to `timeout_s`) for a read still running, before its client is closed."""
        if self._in_flight is not None and not self._in_flight.done():
            await asyncio.wait({self._in_flight}, timeout=timeout_s)

    async def attach(self, alerts: Sequence[Alert]) -> list[Alert]:
        """The alerts with their raw texts and header fields; on a failed read, with a note instead."""
        wanted = sorted(
            {
                (line.at.topic, line.at.partition, line.at.offset)
                for alert in alerts
                for line in alert.lines
                if line.text is None and line.at.offset >= 0
            }
        )
        if not wanted:
            return list(alerts)
        try:
            payloads = await self._read(wanted)
        except Exception as exc:  # infrastructure of any kind: the alerts still go out, with coordinates
            log.warning(
                "raw lines: %d messages not read back for %d alerts: %s", len(wanted), len(alerts), exc
            )
            note = f"raw lines not read back ({exc}); look them up by their coordinates"
            return [replace(a, note=note) if a.lines else a for a in alerts]
        texts: dict[tuple[str, MessageKey], list[str]] = {}
        return [self._filled(alert, payloads, texts) for alert in alerts]

    async def _read(self, keys: list[MessageKey]) -> Mapping[MessageKey, bytes]:
        found = {key: self._cache[key] for key in keys if key in self._cache}
        missing = [key for key in keys if key not in found]
        if not missing:
            return found
        if self.busy:
            raise TimeoutError("an earlier read-back is still running")
        self._in_flight = asyncio.get_running_loop().run_in_executor(None, self.source.messages, missing)
        # Not wait_for: cancelling cannot stop the thread, and `busy` must see it until it ends.
        done, _ = await asyncio.wait({self._in_flight}, timeout=self.timeout_s)
        if not done:
            raise TimeoutError(f"no answer within {self.timeout_s:g}s")
        read = self._in_flight.result()
        for key, value in read.items():
            self._remember(key, value)
        return {**found, **read}

    def remember(self, key: MessageKey, value: bytes) -> None:
        """Keep a raw message this process has just handled (the parse agent), newest first out last:
        most alerts then need no read-back at all."""
        self._remember(key, value)

    def _remember(self, key: MessageKey, value: bytes) -> None:
        if len(value) > self.cache_bytes or key in self._cache:
            return
        self._cache[key] = value
        self._cached_bytes += len(value)
        while self._cached_bytes > self.cache_bytes:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped)

    def _filled(
        self,
        alert: Alert,
        payloads: Mapping[MessageKey, bytes],
        texts: dict[tuple[str, MessageKey], list[str]],
    ) -> Alert:
        if not alert.lines:
            return alert
        parser = self.parser_for(alert.source)
        lines: list[RawLine] = []
        lost = 0
        for line in alert.lines:
            key = (line.at.topic, line.at.partition, line.at.offset)
            if line.text is not None or line.at.offset < 0:
                lines.append(line)
                continue
            split = texts.get((alert.source, key))
            if split is None and key in payloads:
                split = texts[(alert.source, key)] = record_texts(parser, payloads[key])
            if split is None or not 0 <= line.at.line < len(split):
                lost += 1
                lines.append(line)
                continue
            lines.append(RawLine(line.at, split[line.at.line]))
        note = alert.note
        if lost:
            note = f"{lost} of {len(lines)} raw lines not found (past the topic's retention?)"
        # Where it happened: the offending line's header; a window's, every node and component it holds.
        located = lines if alert.kind is AlertKind.WINDOW_CLASS else lines[-1:]
        fields = location(parser.format, [line.text for line in located if line.text is not None])
        return replace(alert, lines=tuple(lines), fields=fields or alert.fields, note=note)


def location(fmt: LogFormat, texts: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The format's location fields over `texts`: per field, its distinct values in order, joined by ","."""
    values: dict[str, dict[str, None]] = {}
    for text in texts:
        try:
            record = fmt.parse_line(text)
        except ParseError:
            continue  # a line without a header (dead-lettered when parsed) names no place
        for name, value in fmt.location(record):
            values.setdefault(name, {})[value] = None
    return tuple((name, ",".join(found)) for name, found in values.items())
