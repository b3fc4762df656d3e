"""The parsing stage: raw Kafka payloads in, `LogEvent`s and `DeadLetter`s out. Never raises on data.

A payload holds one line or several separated by newlines. The unit of rejection is the line: a bad
line becomes a dead letter with its reason, its original bytes (a bounded prefix of oversized ones)
and the Kafka coordinates, and the rest of the payload still parses. Only an absurd payload (over
`max_message_bytes`, default the 16 MiB the broker and clients allow) is rejected whole.

Decoding: a line that is not valid UTF-8 is decoded with replacement characters (counted in
`ParserStats.decode_replacements`) unless it is binary, which stays a dead letter:
- `binary`: the line holds a control byte (C0 other than tab, LF, VT, FF, CR; or DEL), which text
  logs never carry and terminal escapes, NULs and binary frames do;
- `invalid_utf8`: more than `MAX_UNDECODABLE_SHARE` of the line's bytes are undecodable (a binary
  blob or a wrong encoding such as cp1251, whose text would be mostly replacement characters).
A stray Latin-1 byte or a cut multi-byte character in an otherwise good line is replaced instead.
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
# A whole payload is only refused when absurd: the broker, producer and consumers allow 16 MiB.
MAX_MESSAGE_BYTES = 16 << 20
# One line; longer ones are dead letters (`oversized_line`). Real log lines, even long JSON ones, stay
# far below this, and a stack trace is many lines (joined after this check).
MAX_LINE_BYTES = 1 << 20
DEAD_LETTER_KEEP_BYTES = 64 << 10  # keep dead letters well under Kafka's default 1 MB message limit
# Above this share of undecodable bytes a line is not text with a few bad bytes (see the docstring).
MAX_UNDECODABLE_SHARE = 0.2
_ENCODED_REPLACEMENT = "\ufffd".encode()  # a replacement character already in the raw bytes
NO_SESSION = ""  # session key of events from formats without sessions (BGL: windowed by time)
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


class DeadReason(enum.Enum):
    EMPTY = "empty"
    OVERSIZED = "oversized"  # the whole payload is over max_message_bytes
    OVERSIZED_LINE = "oversized_line"  # one line is over max_line_bytes
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
    records: int = 0  # log records parsed (a multi-line record counts once)
    decode_replacements: int = 0  # undecodable bytes replaced by U+FFFD in this payload

    @property
    def format_misses(self) -> int:
        """Lines the format's header did not match (`no_header`): many of them mean a wrong format."""
        return sum(1 for d in self.dead_letters if d.reason == DeadReason.NO_HEADER.value)


@dataclass
class ParserStats:
    """Running counters for metrics."""

    payloads: int = 0
    records: int = 0
    events: int = 0
    oov_records: int = 0
    decode_replacements: int = 0  # undecodable bytes replaced in lines that were parsed anyway
    lines_with_replacements: int = 0
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
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.format = fmt
        self.miner = miner
        self.registry = registry if registry is not None else TemplateRegistry()
        self.max_message_bytes = max_message_bytes
        self.max_lines_per_record = max_lines_per_record
        self.max_line_bytes = max_line_bytes
        self.stats = ParserStats()

    def parse(
        self, payload: bytes, source: str, raw: SourceOffset | None = None, now_s: float = 0.0
    ) -> ParseResult:
        """Parse one payload. `now_s` (the caller's clock) stamps templates first seen here."""
        raw = raw or SourceOffset()
        self.stats.payloads += 1
        if len(payload) > self.max_message_bytes:
            detail = (
                f"payload of {len(payload)} bytes > max_message_bytes {self.max_message_bytes}; "
                f"kept the first {DEAD_LETTER_KEEP_BYTES} bytes"
            )
            return self._only_dead(DeadReason.OVERSIZED, payload[:DEAD_LETTER_KEEP_BYTES], raw, detail)
        if not payload.strip():
            return self._only_dead(DeadReason.EMPTY, payload, raw, "no log line in the payload")
        dead: list[DeadLetter] = []
        replaced_before = self.stats.decode_replacements
        # Lines decoded with replacements, to their original bytes: a dead letter keeps the bytes.
        originals: dict[str, bytes] = {}
        items = self.records(payload, raw, dead, originals)
        events: list[LogEvent] = []
        new_templates: list[TemplateRecord] = []
        records = 0
        for index, item in enumerate(items):
            if isinstance(item, Unparsed):
                reason = DeadReason(item.reason)
                detail = f"{self.format.name} header not found and no record to continue"
                original = originals.get(item.line) or item.line.encode("utf-8")
                dead.append(self._dead(reason, original, raw, detail))
                continue
            text = self.format.template_text(item)
            match = self.miner.process(text)
            record = self.registry.observe(match, now_s)
            if record is not None:
                new_templates.append(record)
            records += 1
            events.extend(self._events(item, text, match, source, replace(raw, line=index)))
        self.stats.events += len(events)
        replaced = self.stats.decode_replacements - replaced_before
        return ParseResult(tuple(events), tuple(dead), tuple(new_templates), records, replaced)

    def records(
        self,
        payload: bytes,
        raw: SourceOffset | None = None,
        dead: list[DeadLetter] | None = None,
        originals: dict[str, bytes] | None = None,
    ) -> list[LogRecord | Unparsed]:
        """The payload split into lines and joined into records, in order: an item's index is the
        `SourceOffset.line` of its events. Alerts read raw lines back through this very split
        (`pipeline.raw_lines`), so an index always names the same record."""
        joiner = MultilineJoiner(self.format, self.max_lines_per_record)
        items: list[LogRecord | Unparsed] = []
        lines = self._lines(
            payload,
            raw or SourceOffset(),
            dead if dead is not None else [],
            originals if originals is not None else {},
        )
        for line in lines:
            items.extend(joiner.feed(line))
        items.extend(joiner.flush())
        return items

    def _lines(
        self, payload: bytes, raw: SourceOffset, dead: list[DeadLetter], originals: dict[str, bytes]
    ) -> list[str]:
        if len(payload) <= self.max_line_bytes:  # no line can be too long: try the whole payload at once
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                text = ""
            if text and not _BINARY.search(text):
                return [line.rstrip("\r") for line in text.split("\n") if line.strip()]
        # Line by line, so that one bad line is the only one rejected.
        lines: list[str] = []
        for number, chunk in enumerate(payload.split(b"\n")):
            if not chunk.strip():
                continue
            at = replace(raw, line=number)
            line = self._line(chunk, number, at, dead, originals)
            if line is not None:
                lines.append(line)
        return lines

    def _line(
        self,
        chunk: bytes,
        number: int,
        raw: SourceOffset,
        dead: list[DeadLetter],
        originals: dict[str, bytes],
    ) -> str | None:
        """One line's text, or None after adding its dead letter (`raw.line`: its index in the payload).

        A line decoded with replacements is noted in `originals` with its bytes."""
        if len(chunk) > self.max_line_bytes:
            detail = (
                f"line {number} of the message is {len(chunk)} bytes > max_line_bytes {self.max_line_bytes} "
                f"(LOGAD_MAX_LINE_BYTES); kept the first {DEAD_LETTER_KEEP_BYTES} bytes"
            )
            dead.append(self._dead(DeadReason.OVERSIZED_LINE, chunk[:DEAD_LETTER_KEEP_BYTES], raw, detail))
            return None
        try:
            line = chunk.decode("utf-8")
            replaced = 0
        except UnicodeDecodeError:
            line = chunk.decode("utf-8", errors="replace")
            replaced = line.count("\ufffd") - chunk.count(_ENCODED_REPLACEMENT)
        found = _BINARY.search(line)
        if found:
            detail = f"line {number}: control byte {found.group()!r} at character {found.start()}"
            dead.append(self._dead(DeadReason.BINARY, chunk, raw, detail))
            return None
        if replaced > MAX_UNDECODABLE_SHARE * len(chunk):
            detail = (
                f"line {number}: {replaced} of {len(chunk)} bytes are not UTF-8 (more than "
                f"{MAX_UNDECODABLE_SHARE:.0%}): binary data or another encoding; send UTF-8 text"
            )
            dead.append(self._dead(DeadReason.INVALID_UTF8, chunk, raw, detail))
            return None
        line = line.rstrip("\r")
        if replaced:
            self.stats.decode_replacements += replaced
            self.stats.lines_with_replacements += 1
            originals[line] = chunk
        return line

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
