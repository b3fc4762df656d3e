"""Which log source a raw message belongs to: its `source` header, else its key, else "default".

The source picks the parser and namespaces session keys, so a header that cannot be trusted must not
pick one silently: a `source` that is not UTF-8, holds control characters, is longer than
`MAX_SOURCE_CHARS`, or is given twice with different values makes the record a dead letter
(`bad_header`). Other headers are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_SOURCE_CHARS = 128
DEFAULT_SOURCE = "default"
BAD_HEADER = "bad_header"


class BadHeader(ValueError):
    """The record's source header (or key) is unusable; the message says how."""


def _text(value: Any, what: str) -> str:
    if not isinstance(value, bytes | bytearray):
        raise BadHeader(f"{what}: expected bytes, got {type(value).__name__}")
    try:
        text = bytes(value).decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise BadHeader(f"{what}: not UTF-8 ({exc})") from exc
    if len(text) > MAX_SOURCE_CHARS:
        raise BadHeader(f"{what}: {len(text)} characters > {MAX_SOURCE_CHARS}")
    if any(not ch.isprintable() for ch in text):
        raise BadHeader(f"{what}: control characters in {text[:40]!r}")
    return text


def source_of(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None, key: Any) -> str:
    """The source of a raw message; raises BadHeader when its source header or key is unusable."""
    if isinstance(headers, Mapping):
        headers = headers.items()
    given = {_text(value, "source header") for name, value in headers or () if name == "source"}
    given.discard("")
    if len(given) > 1:
        raise BadHeader(f"source header given twice with different values: {sorted(given)}")
    if given:
        return given.pop()
    if isinstance(key, bytes | bytearray) and key:
        return _text(key, "message key") or DEFAULT_SOURCE
    return DEFAULT_SOURCE
