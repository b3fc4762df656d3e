"""Log formats: split a raw line into header fields and content, with its timestamp and sessions.

A `LogFormat` is a regex with named groups (`content` required; `level`, `component` and the
timestamp groups optional), a timestamp rule, and a session-key pattern. Built-in profiles: HDFS,
BGL and a generic one; users add their own with `LogFormat.from_regex`. A `MultilineJoiner` joins
continuation lines (stack traces: lines that do not start with a header) to their first line.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pipeline.errors import ConfigError, ParseError

log = logging.getLogger(__name__)

EPOCH = "epoch"  # timestamp_format value: the timestamp group holds Unix seconds
ISO = "iso"  # timestamp_format value: ISO 8601 (`datetime.fromisoformat`), zone optional
_STANDARD_GROUPS = frozenset({"content", "level", "component"})


@dataclass(frozen=True)
class LogRecord:
    """One log record (a line, plus its continuation lines if any)."""

    line: str
    content: str
    timestamp: float | None = None  # Unix seconds, UTC when the log has no zone
    level: str = ""
    component: str = ""
    session_keys: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()  # the format's other named groups (pid, label, node, ...)

    def field(self, name: str, default: str = "") -> str:
        """Value of another header field, e.g. BGL's alert `label`."""
        return next((v for k, v in self.fields if k == name), default)


@dataclass(frozen=True)
class LogFormat:
    """A log format profile. `timestamp_groups` are joined with a space and read with
    `timestamp_format` (a `strptime` format, or `EPOCH`)."""

    name: str
    pattern: str
    timestamp_groups: tuple[str, ...] = ()
    timestamp_format: str = ""
    session_pattern: str = ""  # every match in the line is a session key; "" means no sessions
    multiline: bool = True
    # Header groups put before the content in the text the template miner sees (BGL: the component,
    # so that one message from KERNEL and from APP stays two templates, as in training).
    template_fields: tuple[str, ...] = ()
    # Header groups an alert shows to say where a line happened (node, component); () means every
    # header group but the content and the timestamp.
    location_fields: tuple[str, ...] = ()
    # A header group whose value is the session key (e.g. a request id); with `session_pattern`, the
    # pattern's matches in that value are the keys instead of matches in the whole line.
    session_field: str = ""
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _session_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _time_memo: dict[str, float | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            regex = re.compile(self.pattern, re.DOTALL)
            session = re.compile(self.session_pattern) if self.session_pattern else None
        except re.error as exc:
            raise ConfigError(f"log format {self.name!r}: invalid regex ({exc}); fix the pattern") from exc
        if "content" not in regex.groupindex:
            raise ConfigError(f"log format {self.name!r}: the regex needs a (?P<content>...) group")
        if session is not None and session.groups > 1:
            raise ConfigError(
                f"log format {self.name!r}: session pattern {self.session_pattern!r} has {session.groups} "
                "capturing groups; use at most one (its text is the key) and (?:...) for the others"
            )
        session_group = (self.session_field,) if self.session_field else ()
        groups = (*self.timestamp_groups, *self.template_fields, *self.location_fields, *session_group)
        missing = [g for g in groups if g not in regex.groupindex]
        if missing:
            raise ConfigError(
                f"log format {self.name!r}: timestamp, template, location or session groups {missing} are "
                "not in the regex"
            )
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_session_regex", session)
        object.__setattr__(self, "_time_memo", {})

    @classmethod
    def from_regex(
        cls,
        name: str,
        pattern: str,
        timestamp_groups: tuple[str, ...] = (),
        timestamp_format: str = "",
        session_pattern: str = "",
        multiline: bool = True,
    ) -> LogFormat:
        """A user-defined format (from config): a regex with a named `content` group."""
        return cls(name, pattern, tuple(timestamp_groups), timestamp_format, session_pattern, multiline)

    @classmethod
    def from_header(
        cls,
        name: str,
        header: str,
        timestamp_groups: tuple[str, ...] = (),
        timestamp_format: str = "",
        session_pattern: str = "",
        multiline: bool = True,
    ) -> LogFormat:
        """A format from a loghub/logparser header string, e.g. `<Date> <Time> <Level>: <Content>`.

        Fields become named groups in snake case (`<NodeRepeat>` is `node_repeat`), so `<Level>`,
        `<Component>` and `<Content>` fill the standard groups; text between fields is a regex, with
        runs of spaces matching any run of whitespace, as in logparser.
        """
        return cls(
            name,
            header_regex(header, name),
            tuple(timestamp_groups),
            timestamp_format,
            session_pattern,
            multiline,
        )

    def starts_record(self, line: str) -> bool:
        """Whether the line has this format's header (else it may continue the previous record)."""
        return self._regex.match(line) is not None

    def parse_line(self, line: str) -> LogRecord:
        """Parse one record; raises `ParseError` when the line lacks this format's header."""
        m = self._regex.match(line)
        if m is None:
            raise ParseError(
                f"parse {self.name} line: expected a header matching {self.pattern!r}, got {line[:120]!r}; "
                f"choose the right log format or add a custom one"
            )
        groups = m.groupdict()
        keys = self._record_keys(line, groups)  # before the standard groups are popped below
        return LogRecord(
            line=line,
            content=groups.pop("content") or "",
            timestamp=self._timestamp(groups),
            level=groups.pop("level", None) or "",
            component=groups.pop("component", None) or "",
            session_keys=keys,
            fields=tuple((k, v) for k, v in groups.items() if v is not None and k not in _STANDARD_GROUPS),
        )

    def template_text(self, record: LogRecord) -> str:
        """What the template miner matches: the content, after the `template_fields` values."""
        if not self.template_fields:
            return record.content
        standard = {"level": record.level, "component": record.component}
        prefix = [standard[name] if name in standard else record.field(name) for name in self.template_fields]
        return " ".join([*prefix, record.content])

    def location(self, record: LogRecord) -> tuple[tuple[str, str], ...]:
        """The header fields that say where the record happened, as (name, value), empty ones left out."""
        standard = {"level": record.level, "component": record.component}
        names = self.location_fields or (
            *(n for n in self._regex.groupindex if n != "content" and n not in self.timestamp_groups),
        )
        pairs = ((name, standard[name] if name in standard else record.field(name)) for name in names)
        return tuple((name, value) for name, value in pairs if value)

    def session_keys(self, text: str) -> tuple[str, ...]:
        """Every session key in the text, de-duplicated, in order of appearance."""
        if self._session_regex is None:
            return ()
        return tuple(dict.fromkeys(self._session_regex.findall(text)))

    def _record_keys(self, line: str, groups: dict[str, str | None]) -> tuple[str, ...]:
        if not self.session_field:
            return self.session_keys(line)
        value = (groups.get(self.session_field) or "").strip()
        if not value:
            return ()
        return self.session_keys(value) if self._session_regex is not None else (value,)

    def _timestamp(self, groups: dict[str, str | None]) -> float | None:
        if not self.timestamp_groups:
            return None
        parts = [groups.get(g) for g in self.timestamp_groups]
        if any(p is None for p in parts):
            return None
        text = " ".join(p for p in parts if p is not None)
        memo = self._time_memo
        if text in memo:
            return memo[text]
        value = _read_timestamp(text, self.timestamp_format)
        if len(memo) > 10_000:  # lines share seconds; a small memo saves most strptime calls
            memo.clear()
        memo[text] = value
        return value


_HEADER_FIELD = re.compile(r"<([A-Za-z][A-Za-z0-9_]*)>")


def header_field_name(field_name: str) -> str:
    """`NodeRepeat` -> `node_repeat`: loghub's field names as regex group names."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", field_name).lower()


def header_regex(header: str, name: str = "custom") -> str:
    """The regex of a loghub header string: every field lazy but the last, anchored at both ends."""
    parts = _HEADER_FIELD.split(header)
    literals, fields = parts[0::2], [header_field_name(f) for f in parts[1::2]]
    if "content" not in fields:
        raise ConfigError(f"log format {name!r}: header {header!r} has no <Content> field; add one")
    duplicates = sorted({f for f in fields if fields.count(f) > 1})
    if duplicates:
        raise ConfigError(f"log format {name!r}: header {header!r} repeats fields {duplicates}; rename them")
    pieces: list[str] = []
    for i, literal in enumerate(literals):
        pieces.append(re.sub(r" +", r"\\s+", literal))
        if i < len(fields):
            last = i == len(fields) - 1
            pieces.append(f"(?P<{fields[i]}>.*)" if last else f"(?P<{fields[i]}>.*?)")
    return "^" + "".join(pieces) + "$"


def _read_timestamp(text: str, fmt: str) -> float | None:
    try:
        if fmt == EPOCH:
            return float(text)
        parsed = datetime.fromisoformat(text) if fmt == ISO else datetime.strptime(text, fmt)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


HDFS = LogFormat(
    "hdfs",
    r"(?P<date>\d{6}) (?P<time>\d{6}) (?P<pid>\d+) (?P<level>[A-Z]+) (?P<component>[^\s:]+): (?P<content>.*)",
    timestamp_groups=("date", "time"),
    timestamp_format="%y%m%d %H%M%S",
    session_pattern=r"blk_-?\d+",
    location_fields=("component", "pid", "level"),
)
BGL = LogFormat(
    "bgl",
    r"(?P<label>\S+) (?P<epoch>\d+) (?P<date>\S+) (?P<node>\S+) (?P<time>\S+) (?P<node_repeat>\S+) "
    r"(?P<type>\S+) (?P<component>\S+) (?P<level>\S+)(?: (?P<content>.*))?",
    timestamp_groups=("epoch",),
    timestamp_format=EPOCH,
    template_fields=("component",),  # as `pipeline.datasets.bgl.BglTemplater.text`
    location_fields=("node", "component", "type", "level"),
)
GENERIC = LogFormat(
    "generic",
    r"(?:(?P<timestamp>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+)?"
    r"(?:\[?(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)\]?\s+)?"
    r"(?:(?P<component>[\w.$-]+):\s+)?(?P<content>\S.*)",
    timestamp_groups=("timestamp",),
    timestamp_format=ISO,
    location_fields=("component", "level"),
)
PROFILES: dict[str, LogFormat] = {f.name: f for f in (HDFS, BGL, GENERIC)}


def get_format(name: str) -> LogFormat:
    """A built-in profile by name."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"log format {name!r} is not built in; choose one of {sorted(PROFILES)}") from None


@dataclass(frozen=True)
class Unparsed:
    """A line that starts no record and continues none (no header, nothing before it)."""

    line: str
    reason: str


class MultilineJoiner:
    """Joins continuation lines to the record they follow.

    Feed lines in order; a record is complete when the next header line arrives or on `flush()`
    (call it at the end of each Kafka message: records do not span messages).
    """

    def __init__(self, fmt: LogFormat, max_lines: int = 500) -> None:
        self.format = fmt
        self.max_lines = max_lines
        self._pending: LogRecord | None = None
        self._extra: list[str] = []

    def feed(self, line: str) -> list[LogRecord | Unparsed]:
        """Complete records (and unusable lines) that this line releases."""
        try:
            record = self.format.parse_line(line)
        except ParseError:
            if self.format.multiline and self._pending is not None and len(self._extra) + 1 < self.max_lines:
                self._extra.append(line)
                return []
            reason = "no_header" if self._pending is None or not self.format.multiline else "too_many_lines"
            return [*self.flush(), Unparsed(line, reason)]
        done = self.flush()
        self._pending = record
        return done

    def flush(self) -> list[LogRecord | Unparsed]:
        """Release the record being joined, if any."""
        pending, extra = self._pending, self._extra
        self._pending, self._extra = None, []
        if pending is None:
            return []
        if not extra:
            return [pending]
        tail = "\n".join(extra)
        joined_line = pending.line + "\n" + tail
        # A key from a header field is the first line's; a key pattern may find more in the tail.
        keys = pending.session_keys if self.format.session_field else self.format.session_keys(joined_line)
        return [replace(pending, line=joined_line, content=pending.content + "\n" + tail, session_keys=keys)]
