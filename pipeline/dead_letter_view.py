"""Dead letters for humans and scripts: a safe preview of the original bytes, text and JSON renderings.

The original bytes of a dead letter are by definition what the stream could not use: invalid UTF-8,
NUL and other control bytes, terminal escape sequences, megabyte lines. Printed as they are, they
would garble or even drive the reader's terminal, so the preview shows printable text as it is and
escapes everything else (`\\xNN` for a byte that is not UTF-8 or a control character, `\\uNNNN` for
other unprintable characters, `\\n`, `\\r`, `\\t`), clipped to a width. A backslash is doubled, so an
escape in the preview always stands for a byte that was not printable.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import DataError
from pipeline.records import DeadLetter

DEFAULT_PREVIEW_WIDTH = 120
ELLIPSIS = "…"
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def preview(original: bytes, width: int = DEFAULT_PREVIEW_WIDTH, double_backslash: bool = True) -> str:
    """At most `width` printable characters standing for `original`; `…` at the end when clipped.

    `double_backslash=False` is for our own messages (a detail quotes the bad byte as `'\\x1b'`):
    they hold no escapes to tell apart from raw bytes, and doubling would garble their quotes."""
    if width < 1:
        raise ValueError(f"preview width must be at least 1, got {width}")
    # surrogateescape maps each byte that is not valid UTF-8 to one lone surrogate U+DC80..U+DCFF,
    # so invalid bytes are escaped one by one while the valid text around them stays readable.
    text = original.decode("utf-8", errors="surrogateescape")
    pieces: list[str] = []
    used = 0
    for char in text:
        piece = "\\" if char == "\\" and not double_backslash else _escape(char)
        if used + len(piece) > width:
            # Leave room for the ellipsis: the preview never exceeds `width` characters.
            while pieces and used + len(ELLIPSIS) > width:
                used -= len(pieces.pop())
            return "".join(pieces) + ELLIPSIS
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces)


def _escape(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if char.isprintable():
        return char
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@dataclass(frozen=True)
class Position:
    """Where a record sits on the dead-letter topic itself (not where its original came from)."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def source_position(letter: DeadLetter) -> str:
    """The raw message the dead letter came from, and the line within it."""
    raw = letter.raw
    if raw.offset < 0:
        return "(not from Kafka)"
    return f"{raw.topic}[{raw.partition}]@{raw.offset} line {raw.line}"


def render_text(letter: DeadLetter, width: int = DEFAULT_PREVIEW_WIDTH) -> str:
    """Two lines: reason, step, source position, size and detail; then the indented preview."""
    detail = letter.detail.encode("utf-8")
    shown = preview(detail, max(width, 40), double_backslash=False) if detail else "-"
    head = (
        f"{letter.reason}  step={letter.step}  at {source_position(letter)}  "
        f"{len(letter.original)} bytes  {shown}"
    )
    return f"{head}\n    | {preview(letter.original, width)}"


def to_json(letter: DeadLetter, where: Position, width: int = DEFAULT_PREVIEW_WIDTH) -> dict[str, Any]:
    """One dead letter as a JSON object: the original bytes in base64 (exact) and the preview."""
    return {
        "reason": letter.reason,
        "step": letter.step,
        "detail": letter.detail,
        "topic": letter.raw.topic,
        "partition": letter.raw.partition,
        "offset": letter.raw.offset,
        "line": letter.raw.line,
        "original_bytes": len(letter.original),
        "original_b64": base64.b64encode(letter.original).decode("ascii"),
        "preview": preview(letter.original, width),
        "dead_letter": {"topic": where.topic, "partition": where.partition, "offset": where.offset},
    }


def unreadable_text(where: Position, size: int, error: DataError) -> str:
    """A record on the dead-letter topic that is no dead letter (another producer, a newer schema)."""
    return f"(unreadable record at {where}, {size} bytes: {error})"


def unreadable_json(where: Position, size: int, error: DataError) -> dict[str, Any]:
    return {
        "unreadable": True,
        "error": str(error),
        "bytes": size,
        "dead_letter": {"topic": where.topic, "partition": where.partition, "offset": where.offset},
    }


@dataclass
class Tally:
    """What a run saw: shown records, records left out by the reason filter, unreadable records."""

    shown: int = 0
    unreadable: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)  # every readable record, shown or not

    @property
    def filtered_out(self) -> int:
        return sum(self.by_reason.values()) - self.shown

    def summary(self, topic: str) -> str:
        reasons = ", ".join(f"{r} {n}" for r, n in self.by_reason.most_common()) or "none"
        return (
            f"{self.shown} dead letters shown from {topic} ({self.filtered_out} left out by --reason, "
            f"{self.unreadable} unreadable); reasons read: {reasons}"
        )
