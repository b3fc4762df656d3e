"""Columnar parsing: one raw message in, one `EventColumns` batch out, the same events as `Parser`.

`Parser.parse` works line by line: decode, split, a header regex per line, a multi-line joiner,
per-token masking, a Drain match, parameter extraction and a `LogEvent` per event. `ColumnarParser`
does one pass over a message instead:

1. Screen. The message must be ASCII (so no invalid UTF-8), hold no control byte and no CR, no
   line over `max_fast_line_chars`, fit `max_message_bytes`, and use a vetted format (below).
   Anything else goes to the exact path: today's `Parser` on the whole message (its dead letters,
   multi-line joining and per-line rules apply there, whatever they become).
2. Headers: one `findall` of the format's pattern, anchored to each line, over the whole text.
   Unless every line matched (no blank line, no continuation line, no unparsable line), the message
   goes to the exact path.
3. Session keys and parameters over the joined template texts: one `findall` of the session
   pattern (cut per line by the cached match counts) and one `split` (each line's parameters at
   its cached token positions).
4. Templates: a cache keyed by the line's digit skeleton (digits 1-9 read as `1`, `0` kept: one
   `translate` per message) gives the template, where the parameters sit and how many session
   keys the line holds. A skeleton new to it is looked up by its collapsed form (digit runs as
   length classes, for the default rules) in a second cache, and only then asked of the miner. A
   line whose key cannot vouch for it is matched by the miner itself, exactly as `Parser` does.

Why the skeleton cache is exact. The vetted masking rules (`_DIGIT_BLIND_RULES`) look at a digit
only through `\\d`, `[0-9...]`-style classes holding every digit, and the literal `0` (`0x` of HEX).
Replacing 1-9 by `1` keeps every such test's answer, so on two lines with the same skeleton each rule
matches the same spans, and the masked lines have the same skeleton. If the masked line holds no
digit at all (every digit went into a mask), the two masked lines are equal, and so are Drain's
answer (it sees only the masked line; the miner is frozen) and the parameter positions: a token with
a digit always differs from its template token (which is the masked token or `<*>`, digit-free),
a token without one is the same on both lines. A skeleton whose masked line keeps a digit (`abc123`,
`x86_64`) is marked unproven and its lines take the miner's own match. Under other masking rules
the cache key is the whole template text, which is exact for any rules (the miner is frozen).

Why the collapsed key is exact (default rules only, and only for lines without `0x`/`0X`, so HEX
cannot match). Each default rule takes digit runs whole (BLK and NUM: `\\d+` up to a non-alnum
boundary; PATH: whole non-space runs; IP: octets end at `.`, the last octet and the port at a
non-alnum boundary), and the only length tests are IP's `\\d{1,3}` and `\\d{1,5}`: a run's length
matters only as 1-3, 4-5 or 6+. `_collapse_runs` keeps those classes apart and everything else
as is, so lines with equal collapsed keys get masked the same way, and the argument above holds.

Why the anchored pattern is exact. For the vetted formats, `Parser` matches the header with
`re.match` per line. Each vetted pattern's first successful match on a line reaches the line's end
(the content group is a final `.*`; BGL's fields are forced single-space-separated runs), so
anchoring with `^...$` finds that same match; where `re.match` would stop short, the anchored
pattern fails and the message takes the exact path. No vetted pattern nor session pattern can
match across a newline.
"""

from __future__ import annotations

import enum
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass
from itertools import accumulate, chain, pairwise
from typing import Any

import numpy as np

from pipeline.event_columns import EventColumns
from pipeline.formats import BGL, HDFS, LogFormat
from pipeline.parsing import MAX_LINE_BYTES, MAX_MESSAGE_BYTES, NO_SESSION, DeadReason, Parser, ParserStats
from pipeline.records import DeadLetter, SourceOffset, TemplateRecord
from pipeline.templates import (
    BLOCK_ID,
    HEX,
    IP,
    NUMBER,
    PATH,
    MinerMode,
    ParserMode,
    TemplateMatch,
    TemplateMiner,
    TemplateRegistry,
)

# Messages with a line longer than this take the exact path, so its per-line size rules keep
# applying (keep it at or below `Parser`'s line limit); real log lines are far shorter.
FAST_MAX_LINE_CHARS = 64 << 10
# Control bytes (Parser's binary test) and CR: deleted by translate, a length change finds them.
_CONTROL_OR_CR = bytes(range(0x00, 0x09)) + bytes(range(0x0D, 0x20)) + b"\x7f"
_DIGIT = re.compile(r"[0-9]")
_SKELETON = bytes.maketrans(b"123456789", b"111111111")
_ALL_ONES = bytes.maketrans(b"0123456789", b"1111111111")
# (pattern, session pattern) of the formats whose anchored pattern is proven equal to `re.match`,
# with a literal every session key contains (`_session_keys` checks that no header holds one).
_VETTED_FORMATS: dict[tuple[str, str], str] = {
    (HDFS.pattern, HDFS.session_pattern): "blk_",
    (BGL.pattern, BGL.session_pattern): "",
}
# Masking rules that cannot tell the digits 1-9 apart (see the module docstring). BGL's node rule
# is listed by value, as pipeline.datasets.bgl defines it.
_DEFAULT_RULES = tuple((r.name, r.pattern) for r in (BLOCK_ID, IP, PATH, HEX, NUMBER))
_DIGIT_BLIND_RULES = frozenset(_DEFAULT_RULES) | {("NODE", r"R\d\d-M\d-N[0-9A-F]+(-[A-Z]:J\d\d-U\d\d)?")}


class _KeyMode(enum.Enum):
    COLLAPSED = "collapsed"  # the default rules: skeleton, then digit runs as length classes
    SKELETON = "skeleton"  # digit-blind rules: digits 1-9 as 1, 0 kept
    TEXT = "text"  # any other rules: the template text itself


@dataclass(frozen=True)
class ColumnarResult:
    """One message's events as columns, dead letters and new registry records (as `ParseResult`)."""

    batch: EventColumns
    dead_letters: tuple[DeadLetter, ...] = ()
    new_templates: tuple[TemplateRecord, ...] = ()
    records: int = 0  # log records parsed (a multi-line record counts once)
    exact: bool = False  # the message took the exact path (`Parser`)
    # Undecodable bytes replaced by U+FFFD (only the exact path sees any: the fast one takes ASCII).
    decode_replacements: int = 0

    @property
    def format_misses(self) -> int:
        """Lines the format's header did not match (`no_header`), as `ParseResult.format_misses`."""
        return sum(1 for d in self.dead_letters if d.reason == DeadReason.NO_HEADER.value)


# A cache entry, a plain tuple (fast to build and index):
# (slot, parameter positions, key matches, literal count, oov, token count).
# - slot: the template's index in the parser's template table (`_slots`);
# - parameter positions: which of the line's tokens are its parameters (`extract_params`);
# - key matches: how many matches of the session pattern the template text holds;
# - literal count: occurrences of the format's key literal (`blk_`) in the template text;
# - token count: whitespace-separated tokens in the template text.
# All follow from the cache key: the key keeps every non-digit character, the session pattern
# (`blk_-?\\d+`) is digit-blind and takes whole digit runs, as the masking rules do (module
# docstring).
_Entry = tuple[int, tuple[int, ...], int, int, bool, int]


class _FastFormat:
    """The vetted format compiled for whole messages."""

    def __init__(self, fmt: LogFormat, literal: str) -> None:
        self.format = fmt
        self.lines = re.compile("^(?:" + fmt.pattern + ")$", re.MULTILINE)
        names = {name: index - 1 for name, index in self.lines.groupindex.items()}
        self.content = names["content"]
        self.template_fields = tuple(names[n] for n in fmt.template_fields)
        self.time_groups = tuple(names[n] for n in fmt.timestamp_groups)
        # row -> the timestamp groups' values (a str for one group, a tuple for several): a memo key
        self.time_key = operator.itemgetter(*self.time_groups) if self.time_groups else None
        self.time_names = fmt.timestamp_groups
        self.sessions = re.compile(fmt.session_pattern) if fmt.session_pattern else None
        self.literal = literal


class ColumnarParser:
    """`Parser`'s results as columns, one pass per message; same format, miner and registry."""

    def __init__(
        self,
        fmt: LogFormat,
        miner: TemplateMiner,
        registry: TemplateRegistry | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_lines_per_record: int = 500,
        max_fast_line_chars: int = FAST_MAX_LINE_CHARS,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.exact = Parser(fmt, miner, registry, max_message_bytes, max_lines_per_record, max_line_bytes)
        self.format = fmt
        self.miner = miner
        self.registry = self.exact.registry
        self.stats: ParserStats = self.exact.stats  # one set of counters for both paths
        # The fast path takes ASCII only (a char is a byte): below the line limit, a line it takes is
        # one `Parser` would not have refused as `oversized_line`.
        self.max_fast_line_chars = min(max_fast_line_chars, max_line_bytes)
        literal = _VETTED_FORMATS.get((fmt.pattern, fmt.session_pattern))
        # Keys are found in the template texts, which must then be the content alone (the header
        # is checked to hold no key literal).
        vetted = literal is not None and not (fmt.session_pattern and fmt.template_fields)
        self._fast = _FastFormat(fmt, literal) if vetted and literal is not None else None
        rules = tuple((r.name, r.pattern) for r in miner.config.masking.rules)
        if miner.config.parser_mode is not ParserMode.DRAIN3:
            self._key_mode = _KeyMode.TEXT  # the digit-skeleton proofs hold for Drain3's masking only
        elif rules == _DEFAULT_RULES:
            self._key_mode = _KeyMode.COLLAPSED
        elif set(rules) <= _DIGIT_BLIND_RULES:
            self._key_mode = _KeyMode.SKELETON
        else:
            self._key_mode = _KeyMode.TEXT
        # key -> entry; None marks a key that cannot vouch for its lines (they take the miner's match)
        self._collapsed_cache: dict[bytes, _Entry | None] = {}
        self._skeleton_cache: dict[bytes, _Entry | None] = {}
        self._text_cache: dict[str, _Entry | None] = {}
        self._slots: list[tuple[int, str]] = []  # template table of every entry, by slot
        self._slot_of: dict[tuple[int, str, bool], int] = {}
        self._slot_match: list[TemplateMatch] = []  # per slot: its (id, text, oov) match
        self._times: dict[Any, float] = {}  # timestamp group values -> Unix s (NaN: none)
        self.fast_messages = 0
        self.exact_messages = 0

    def parse(
        self, payload: bytes, source: str, raw: SourceOffset | None = None, now_s: float = 0.0
    ) -> ColumnarResult:
        """Parse one raw message; the same content as `Parser.parse` (events in the same order)."""
        raw = raw or SourceOffset()
        text = self._screen(payload)
        if text is not None:
            result = self._parse_fast(text, source, raw, now_s)
            if result is not None:
                self.fast_messages += 1
                return result
        return self._parse_exact(payload, source, raw, now_s)

    # paths -----------------------------------------------------------------------------------
    def _screen(self, payload: bytes) -> str | None:
        if (
            self._fast is None
            or self.miner.mode is not MinerMode.MATCH  # learning changes templates under a cache
            or len(payload) > self.exact.max_message_bytes
            or not payload.isascii()
            or len(payload.translate(None, _CONTROL_OR_CR)) != len(payload)
        ):
            return None
        return payload.decode("ascii")

    def _parse_exact(self, payload: bytes, source: str, raw: SourceOffset, now_s: float) -> ColumnarResult:
        self.exact_messages += 1
        records_before = self.stats.records
        result = self.exact.parse(payload, source, raw, now_s)
        return ColumnarResult(
            EventColumns.from_events(result.events),
            result.dead_letters,
            result.new_templates,
            self.stats.records - records_before,
            exact=True,
            decode_replacements=result.decode_replacements,
        )

    def _parse_fast(self, text: str, source: str, raw: SourceOffset, now_s: float) -> ColumnarResult | None:
        fast = self._fast
        assert fast is not None  # _screen checked
        rows = fast.lines.findall(text)
        newlines = text.count("\n")
        # Every line must be one record: a blank, continuation or unparsable line makes the counts differ.
        if not rows or len(rows) != newlines + (0 if text.endswith("\n") else 1):
            return None
        if isinstance(rows[0], str):  # a pattern with one group: findall gives strings
            rows = [(r,) for r in rows]
        texts = self._texts(rows)
        if len(text) > self.max_fast_line_chars and not self._lines_fit(text, newlines, rows, texts):
            return None
        joined = "\n".join(texts)
        cache, keys = self._keys(texts, joined)
        entries: list[_Entry] = list(map(cache.get, keys))
        if None in entries:
            entries = self._resolve(cache, keys, texts, entries)
        n_lines = len(rows)
        line_keys = self._session_keys(text, joined, entries)
        if line_keys is None:
            return None  # a key literal in some header: the exact path finds its keys
        found = self._params(joined, entries)
        if found is None:
            return None
        params, counts = found
        slots = line_slots = [entry[0] for entry in entries]
        stamps = self._stamps(rows)
        lines = np.arange(n_lines, dtype=np.int64)
        if len(line_keys) == n_lines and isinstance(line_keys[0], str):  # one key per line
            sessions: list[str] = line_keys  # type: ignore[assignment]
        else:  # lines with no key or several: one event per key (line_keys holds a tuple per line)
            per_line: list[tuple[str, ...]] = line_keys  # type: ignore[assignment]
            events_per_line = np.fromiter(map(len, per_line), np.int64, n_lines)
            sessions = list(chain.from_iterable(per_line))
            slots = np.repeat(np.array(slots, np.int64), events_per_line).tolist()
            bounds = list(accumulate(counts.tolist(), initial=0))
            params = [
                p
                for keys, a, b in zip(per_line, bounds, bounds[1:], strict=False)
                for _ in keys
                for p in params[a:b]
            ]
            counts = np.repeat(counts, events_per_line)
            lines = np.repeat(lines, events_per_line)
            stamps = np.repeat(stamps, events_per_line)
        new_templates = self._observe(line_slots, now_s)
        stats = self.stats
        stats.payloads += 1
        stats.records += n_lines
        stats.events += len(slots)
        stats.oov_records += sum(map(_OOV, entries))
        batch = self._columns(source, raw, slots, stamps, lines, sessions, params, np.cumsum(counts))
        return ColumnarResult(batch, (), new_templates, n_lines)

    def _session_keys(
        self, text: str, joined: str, entries: list[_Entry]
    ) -> list[str] | list[tuple[str, ...]] | None:
        """Each line's session keys: a list of str when every line has exactly one, else a tuple per
        line (de-duplicated, in order; `(NO_SESSION,)` for none). One `findall` over the joined
        template texts, cut by the entries' match counts; None when the key literal occurs outside
        the template texts (a header), which the exact path handles."""
        fast = self._fast
        assert fast is not None
        if fast.sessions is None:
            return [NO_SESSION] * len(entries)
        if text.count(fast.literal) != sum(map(_LITERALS, entries)):
            return None
        found = fast.sessions.findall(joined)
        matches = list(map(_KEY_MATCHES, entries))
        if len(found) != sum(matches):
            return None  # cannot happen (the counts follow from the keys); the exact path would do
        if matches.count(1) == len(matches):
            return found
        bounds = list(accumulate(matches, initial=0))
        per_line = [
            (found[a],) if b - a == 1 else tuple(dict.fromkeys(found[a:b])) if b > a else (NO_SESSION,)
            for a, b in pairwise(bounds)
        ]
        if max(map(len, per_line)) == 1:  # e.g. a key repeated inside a path
            return [keys[0] for keys in per_line]
        return per_line

    def _params(self, joined: str, entries: list[_Entry]) -> tuple[list[str], np.ndarray] | None:
        """Flat parameters of the message's lines and the (lines,) count of each line's: one split of
        the joined template texts, then each line's parameter positions shifted by its first token.
        None if the token counts do not add up (they do, as the entries follow from the keys)."""
        tokens = joined.split()
        starts = list(accumulate(map(_TOKEN_COUNT, entries), initial=0))
        if starts[-1] != len(tokens):
            return None
        counts = np.fromiter(map(len, map(_POSITIONS, entries)), np.int64, len(entries))
        picked = [start + i for entry, start in zip(entries, starts[:-1], strict=True) for i in entry[1]]
        if len(picked) > 1:
            return list(operator.itemgetter(*picked)(tokens)), counts
        return [tokens[i] for i in picked], counts

    def _texts(self, rows: list[tuple[str, ...]]) -> list[str]:
        """What the miner sees per line (`LogFormat.template_text`)."""
        fast = self._fast
        assert fast is not None
        content, fields = fast.content, fast.template_fields
        if not fields:
            return [row[content] for row in rows]
        return [" ".join([*(row[i] for i in fields), row[content]]) for row in rows]

    def _lines_fit(self, text: str, newlines: int, rows: list[tuple[str, ...]], texts: list[str]) -> bool:
        """Whether no line is over `max_fast_line_chars`. Cheap bound first: a line is at most the
        longest content plus every line's header together."""
        fast = self._fast
        assert fast is not None
        contents = texts if not fast.template_fields else [row[fast.content] for row in rows]
        headers = len(text) - newlines - sum(map(len, contents))
        if max(map(len, contents)) + headers <= self.max_fast_line_chars:
            return True
        return max(map(len, text.split("\n"))) <= self.max_fast_line_chars

    def _keys(self, texts: list[str], joined: str) -> tuple[dict[Any, _Entry | None], list[Any]]:
        """The cache and each line's key in it, computed for the whole message at once."""
        if self._key_mode is _KeyMode.TEXT:
            return self._text_cache, texts
        return self._skeleton_cache, joined.encode("ascii").translate(_SKELETON).split(b"\n")

    def _resolve(
        self, cache: dict[Any, _Entry | None], keys: list[Any], texts: list[str], entries: list[_Entry | None]
    ) -> list[_Entry]:
        """Fill the lines the cache had nothing for: learn new keys; for keys that cannot vouch, an
        entry from the miner's own match of that one line, as `Parser` does."""
        resolved = list(entries)
        for index in [i for i, entry in enumerate(entries) if entry is None]:
            key, line_text = keys[index], texts[index]
            entry = cache.get(key, _MISSING)
            if entry is _MISSING:
                entry = self._learn(cache, key, line_text)
            if entry is None:
                entry = self._entry(self.miner.match(line_text), line_text)
            resolved[index] = entry
        return resolved  # type: ignore[return-value]

    def _learn(self, cache: dict[Any, _Entry | None], key: Any, line_text: str) -> _Entry | None:
        """The entry of a key new to `cache`: through the collapsed cache when the rules allow
        (the default rules, no `0x` in the line: see the module docstring), else from the miner."""
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        collapsible = cache is self._skeleton_cache and self._key_mode is _KeyMode.COLLAPSED
        if collapsible and b"0x" not in key and b"0X" not in key:
            collapsed = _collapse_runs(key.translate(_ALL_ONES))
            entry = self._collapsed_cache.get(collapsed, _MISSING)
            if entry is _MISSING:
                entry = self._learn_from_miner(self._collapsed_cache, collapsed, line_text)
            cache[key] = entry
            return entry
        return self._learn_from_miner(cache, key, line_text)

    def _learn_from_miner(self, cache: dict[Any, _Entry | None], key: Any, line_text: str) -> _Entry | None:
        """Resolve a key through the miner; None when the key cannot vouch for the line."""
        miner = self.miner
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        if cache is not self._text_cache and _DIGIT.search(miner.mask(line_text)) is not None:
            cache[key] = None
            return None
        entry = self._entry(miner.match(line_text), line_text)
        cache[key] = entry
        return entry

    def _entry(self, match: TemplateMatch, line_text: str) -> _Entry:
        """What a line's match and text say about every line with the same key."""
        tokens = line_text.split()
        template_tokens = match.template.split()
        if len(tokens) != len(template_tokens):
            positions: tuple[int, ...] = ()  # extract_params gives () for a token-count mismatch
        else:
            pairs = zip(tokens, template_tokens, strict=True)
            positions = tuple(i for i, (t, tt) in enumerate(pairs) if t != tt)
        key_matches, literal_count = self._key_counts(line_text)
        return (self._slot(match), positions, key_matches, literal_count, match.oov, len(tokens))

    def _key_counts(self, line_text: str) -> tuple[int, int]:
        """Session pattern matches and key literal occurrences in a template text."""
        fast = self._fast
        assert fast is not None
        if fast.sessions is None:
            return 0, 0
        return len(fast.sessions.findall(line_text)), line_text.count(fast.literal)

    def _stamps(self, rows: list[tuple[str, ...]]) -> np.ndarray:
        """(lines,) float64 timestamps (NaN: none), through a memo of the timestamp groups."""
        fast = self._fast
        assert fast is not None
        if not fast.time_groups:
            return np.full(len(rows), math.nan)
        stamp_keys = list(map(fast.time_key, rows))
        stamps = list(map(self._times.get, stamp_keys))
        if None in stamps:  # read each new time once (a second's lines come together), then look up
            missing = dict.fromkeys(k for k, s in zip(stamp_keys, stamps, strict=True) if s is None)
            values = {k: self._timestamp(k) for k in missing}
            stamps = [values[k] if s is None else s for k, s in zip(stamp_keys, stamps, strict=True)]
        return np.array(stamps, np.float64)

    def _slot(self, match: TemplateMatch) -> int:
        key = (match.template_id, match.template, match.oov)
        slot = self._slot_of.get(key)
        if slot is None:
            slot = self._slot_of[key] = len(self._slots)
            self._slots.append((match.template_id, match.template))
            self._slot_match.append(match)
        return slot

    def _timestamp(self, values: str | tuple[str, ...]) -> float:
        fast = self._fast
        assert fast is not None
        parts = values if isinstance(values, tuple) else (values,)
        stamp = self.format._timestamp(dict(zip(fast.time_names, parts, strict=True)))  # the format's own
        if len(self._times) > 10_000:  # lines share seconds: a small memo saves most readings
            self._times.clear()
        value = math.nan if stamp is None else stamp
        self._times[values] = value
        return value

    def _observe(self, line_slots: list[int], now_s: float) -> tuple[TemplateRecord, ...]:
        """Registry counts per record and new records in first-seen order, as one observe per line."""
        new = []
        for slot, count in Counter(line_slots).items():  # Counter keeps first-seen order
            record = self.registry.observe(self._slot_match[slot], now_s, count)
            if record is not None:
                new.append(record)
        return tuple(new)

    def _columns(
        self,
        source: str,
        raw: SourceOffset,
        slots: list[int],
        stamps: np.ndarray,
        lines: np.ndarray,
        session_col: list[str],
        params: list[str],
        ends: np.ndarray,
    ) -> EventColumns:
        n = len(slots)
        used, template_index = np.unique(np.array(slots, np.int64), return_inverse=True)
        used_slots = used.tolist()
        sessions = {key: i for i, key in enumerate(dict.fromkeys(session_col))}
        session_index = np.fromiter(map(sessions.__getitem__, session_col), np.int64, n)
        used_oov = np.array([self._slot_match[s].oov for s in used_slots], np.bool_)
        ingested = math.nan if raw.timestamp is None else raw.timestamp
        zeros = np.zeros(n, np.int64)
        return EventColumns(
            (source,),
            tuple(sessions),
            (raw.topic,),
            tuple(self._slots[s] for s in used_slots),
            zeros,
            session_index,
            template_index.astype(np.int64),
            stamps,
            used_oov[template_index],
            zeros,
            np.full(n, raw.partition, np.int64),
            np.full(n, raw.offset, np.int64),
            lines,
            np.full(n, ingested, np.float64),
            params,
            ends,
        )


_MISSING: Any = object()
_CACHE_MAX = 200_000


_OOV = operator.itemgetter(4)
_LITERALS = operator.itemgetter(3)
_KEY_MATCHES = operator.itemgetter(2)
_POSITIONS = operator.itemgetter(1)
_TOKEN_COUNT = operator.itemgetter(5)


def _collapse_runs(ones: bytes) -> bytes:
    """Digit runs (runs of `1`) rewritten so that the result tells the length classes IP needs apart.

    A run of length 6q + r becomes q bytes 0x06, then for r: 1-3 -> `1`, 4 -> 0x04, 5 -> 0x04 `1`.
    So a run reads `1` iff its length is 1-3, starts with 0x04 iff 4-5, and with 0x06 iff 6 or more:
    equal results have runs of equal classes in the same places (and everything else equal). Control
    bytes never reach here (screened), so the markers cannot collide with the text."""
    text = ones.replace(b"111111", b"\x06").replace(b"1111", b"\x04")
    return text.replace(b"111", b"1").replace(b"11", b"1")
