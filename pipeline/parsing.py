"""The parsing stage: raw Kafka payloads in, `LogEvent`s and `DeadLetter`s out. Never raises on data.

A payload holds one line or several separated by newlines. Bad input becomes a dead letter with
its reason, the original bytes and the Kafka coordinates; the rest of the payload still parses.
"""

from __future__ import annotations

import enum
import functools
import logging
import re
from dataclasses import dataclass, field, replace

from pipeline.formats import LogFormat, LogRecord, MultilineJoiner, Unparsed
from pipeline.records import DeadLetter, LogEvent, SourceOffset, TemplateRecord
from pipeline.templates import TemplateMatch, TemplateMiner, TemplateRegistry

log = logging.getLogger(__name__)

STEP = "parse"
MAX_MESSAGE_BYTES = 1 << 20
DEAD_LETTER_KEEP_BYTES = 64 << 10  # keep dead letters well under Kafka's default 1 MB message limit
NO_SESSION = ""  # session key of events from formats without sessions (BGL: windowed by time)
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


class DeadReason(enum.Enum):
    EMPTY = "empty"
    OVERSIZED = "oversized"
    INVALID_UTF8 = "invalid_utf8"
    BINARY = "binary"
    NO_HEADER = "no_header"
    TOO_MANY_LINES = "too_many_lines"


@dataclass(frozen=True)
class ParseResult:
    """What one payload produced: events in line order, dead letters, and new registry records."""

    events: tuple[LogEvent, ...] = ()
    dead_letters: tuple[DeadLetter, ...] = ()
    new_templates: tuple[TemplateRecord, ...] = ()


@dataclass
class ParserStats:
    """Running counters for metrics."""

    payloads: int = 0
    records: int = 0
    events: int = 0
    oov_records: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)


@functools.lru_cache(maxsize=4096)
def _template_tokens(template: str) -> tuple[str, ...]:
    return tuple(template.split())  # templates are few and repeat on every line: split each once


def extract_params(template: str, content: str) -> tuple[str, ...]:
    """The content's tokens where the template has a mask or wildcard (tokens that differ)."""
    tokens = content.split()
    template_tokens = _template_tokens(template)
    if len(tokens) != len(template_tokens):
        return ()
    return tuple(t for t, tt in zip(tokens, template_tokens, strict=True) if t != tt)


class Parser:
    """Turns raw payloads into events with one format, one template miner and a registry."""

    def __init__(
        self,
        fmt: LogFormat,
        miner: TemplateMiner,
        registry: TemplateRegistry | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_lines_per_record: int = 500,
    ) -> None:
        self.format = fmt
        self.miner = miner
        self.registry = registry if registry is not None else TemplateRegistry()
        self.max_message_bytes = max_message_bytes
        self.max_lines_per_record = max_lines_per_record
        self.stats = ParserStats()

    def parse(
        self, payload: bytes, source: str, raw: SourceOffset | None = None, now_s: float = 0.0
    ) -> ParseResult:
        """Parse one payload. `now_s` (the caller's clock) stamps templates first seen here."""
        raw = raw or SourceOffset()
        self.stats.payloads += 1
        if len(payload) > self.max_message_bytes:
            detail = f"{len(payload)} bytes > max {self.max_message_bytes}; kept {DEAD_LETTER_KEEP_BYTES}"
            return self._only_dead(DeadReason.OVERSIZED, payload[:DEAD_LETTER_KEEP_BYTES], raw, detail)
        if not payload.strip():
            return self._only_dead(DeadReason.EMPTY, payload, raw, "no log line in the payload")
        dead: list[DeadLetter] = []
        items = self.records(payload, raw, dead)
        events: list[LogEvent] = []
        new_templates: list[TemplateRecord] = []
        for index, item in enumerate(items):
            if isinstance(item, Unparsed):
                reason = DeadReason(item.reason)
                detail = f"{self.format.name} header not found and no record to continue"
                dead.append(self._dead(reason, item.line.encode("utf-8"), raw, detail))
                continue
            text = self.format.template_text(item)
            match = self.miner.process(text)
            record = self.registry.observe(match, now_s)
            if record is not None:
                new_templates.append(record)
            events.extend(self._events(item, text, match, source, replace(raw, line=index)))
        self.stats.events += len(events)
        return ParseResult(tuple(events), tuple(dead), tuple(new_templates))

    def records(
        self, payload: bytes, raw: SourceOffset | None = None, dead: list[DeadLetter] | None = None
    ) -> list[LogRecord | Unparsed]:
        """The payload split into lines and joined into records, in order: an item's index is the
        `SourceOffset.line` of its events. Alerts read raw lines back through this very split
        (`pipeline.raw_lines`), so an index always names the same record."""
        joiner = MultilineJoiner(self.format, self.max_lines_per_record)
        items: list[LogRecord | Unparsed] = []
        for line in self._lines(payload, raw or SourceOffset(), dead if dead is not None else []):
            items.extend(joiner.feed(line))
        items.extend(joiner.flush())
        return items

    def _lines(self, payload: bytes, raw: SourceOffset, dead: list[DeadLetter]) -> list[str]:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if text and not _BINARY.search(text):
            return [line.rstrip("\r") for line in text.split("\n") if line.strip()]
        # Slow path: find the bad lines so that the good lines of the payload still parse.
        lines: list[str] = []
        for chunk in payload.split(b"\n"):
            if not chunk.strip():
                continue
            try:
                line = chunk.decode("utf-8").rstrip("\r")
            except UnicodeDecodeError as exc:
                dead.append(self._dead(DeadReason.INVALID_UTF8, chunk, raw, str(exc)))
                continue
            found = _BINARY.search(line)
            if found:
                detail = f"control byte {found.group()!r} at {found.start()}"
                dead.append(self._dead(DeadReason.BINARY, chunk, raw, detail))
                continue
            lines.append(line)
        return lines

    def _events(
        self, record: LogRecord, text: str, match: TemplateMatch, source: str, raw: SourceOffset
    ) -> list[LogEvent]:
        self.stats.records += 1
        if match.oov:
            self.stats.oov_records += 1
        params = extract_params(match.template, text)
        keys = record.session_keys or (NO_SESSION,)
        return [
            LogEvent(source, key, record.timestamp, match.template_id, match.template, params, match.oov, raw)
            for key in keys
        ]

    def _dead(self, reason: DeadReason, original: bytes, raw: SourceOffset, detail: str) -> DeadLetter:
        counts = self.stats.dead_letters
        counts[reason.value] = counts.get(reason.value, 0) + 1
        log.debug("dead letter %s at %s: %s", reason.value, raw, detail)
        return DeadLetter(reason.value, STEP, original, raw, detail)

    def _only_dead(self, reason: DeadReason, original: bytes, raw: SourceOffset, detail: str) -> ParseResult:
        return ParseResult(dead_letters=(self._dead(reason, original, raw, detail),))
