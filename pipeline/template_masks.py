"""The masking of the `logad` parser mode: variables found inside whitespace tokens.

Drain3 masks with regexes over the line and splits on whitespace, so a variable glued to text
(`HWID=1973`, `(TID`, `43)`, `[instance:`, `/10.1.2.3:50010`) either escapes its mask or takes the
whole token with it. Here every whitespace token is cut at the punctuation that separates values in
log lines (`= : , ; ( ) [ ] { } " ' |`), and each piece is masked on its own:

- whole-token kinds first, on the token without its enclosing brackets, quotes and trailing
  punctuation: URL, PATH (two or more `/` segments), UUID, IP (with an optional port);
- then per piece: HEX (`0x...`, or 8+ hex digits with a digit and a letter), and NUM for any other
  piece holding a digit (numbers, durations `12ms`, sizes `3.5GB`, ids `eadmin1`): a digit marks a
  value far more often than a word does, in every loghub system. A word before the number stays
  text (`node-<NUM>`, `core.<NUM>`, `attempt_<NUM>`), as the corrected loghub templates write it.

Masking keeps the token count (pieces keep their separators), and masking a token depends on that
token only, so the miner memoizes it per token. After masking, `collapse_repeats` turns a run of
equal masked tokens into one (`delete blk_<NUM> blk_<NUM> blk_<NUM>`): a list of values of varying
length is one variable, where Drain would start a template per list length. Only such lines have
fewer template tokens than line tokens (their parameters are then not split out, as for any
token-count mismatch in `pipeline.parsing.extract_params`).
"""

from __future__ import annotations

import re

# Separators between a key and its value or between list items; kept in the masked token.
_PIECES = re.compile(r"([=:,;()\[\]{}\"'|]+)")
_EDGES = re.compile(r"^([\[({\"']*)(.*?)([\])}\"',;:.]*)$", re.DOTALL)
_DIGIT = re.compile(r"\d")
_MASK = re.compile(r"<[A-Z]+>")
_WORD_PREFIX = re.compile(r"([A-Za-z]{2,}[.\-#_]+?)[-+]?\d[\w.\-]*")
_ONLY_MASKS = re.compile(r"(?:<[A-Z]+>[=:,;|.\-_/@#+]*)+")

# Kinds recognised on a whole token (or piece), tried in this order: one alternation, one match.
_WHOLE_TOKEN = re.compile(
    r"(?P<URL>[A-Za-z][A-Za-z0-9+.-]*://\S+)"
    r"|(?P<PATH>(?:[A-Za-z]:)?(?:~|\.{1,2})?/[^/\s]*/\S*)"
    r"|(?P<UUID>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<IP>/?(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?)"
)
_HEX = re.compile(r"0[xX][0-9a-fA-F]+|(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}")


def _mask_piece(piece: str) -> str:
    if not piece:
        return piece
    if _DIGIT.search(piece) is None:  # only a path or URL can be a value without a digit
        whole = _WHOLE_TOKEN.fullmatch(piece) if "/" in piece else None
        return piece if whole is None else f"<{whole.lastgroup}>"
    stem = piece.rstrip(".")  # a sentence's full stop is not part of the value
    end = piece[len(stem) :]
    if _HEX.fullmatch(stem):
        return "<HEX>" + end
    whole = _WHOLE_TOKEN.fullmatch(stem)
    if whole is not None:
        return f"<{whole.lastgroup}>{end}"
    prefixed = _WORD_PREFIX.fullmatch(stem)
    if prefixed is not None:  # `node-246`, `core.2275`: the word before the number is constant text
        return f"{prefixed.group(1)}<NUM>{end}"
    return "<NUM>" + end


def mask_token(token: str) -> str:
    """One whitespace token with its variables masked (`HWID=1973` -> `HWID=<NUM>`)."""
    # every kind holds a digit or a slash (a UUID of hex letters only has odds below 1e-13)
    if "/" not in token and _DIGIT.search(token) is None:
        return token
    edges = _EDGES.match(token)
    if edges is not None:
        head, core, tail = edges.groups()
        whole = _WHOLE_TOKEN.fullmatch(core) if core else None
        if whole is not None:
            name = whole.lastgroup
            scheme = core[: core.index("://") + 3] if name == "URL" else ""
            return f"{head}{scheme}<{name}>{tail}"
    masked = "".join(_mask_piece(p) if i % 2 == 0 else p for i, p in enumerate(_PIECES.split(token)))
    edges = _EDGES.match(masked)
    if edges is not None:
        head, core, tail = edges.groups()
        first = _MASK.match(core)
        if first is not None and _ONLY_MASKS.fullmatch(core) and core != first.group():
            # a list or tuple of values (`<IP>,<IP>`, `<NUM>:<NUM>`) is one value of varying length
            return f"{head}{first.group()}{tail}"
    return masked


def is_valued(token: str) -> bool:
    """Whether a masked token holds a mask (`<NUM>`, `blk_<NUM>`)."""
    return "<" in token and _MASK.search(token) is not None


def collapse_repeats(tokens: list[str]) -> list[str]:
    """Masked tokens with each run of one repeated masked token (a value list) cut to one."""
    out: list[str] = []
    for token in tokens:
        if out and token == out[-1] and is_valued(token):
            continue
        out.append(token)
    return out
