"""What a person needs to trust a format profile on a sample of their logs (`logad formats check`).

The sample is parsed as the worker parses it (the profile's format, its multi-line joining, a
template miner with its masks), and the report says which lines the header did not match (with
their line numbers in the file), which templates came out (with counts and an example line each),
which session keys were found, and the range of the timestamps that were read.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.format_profiles import FormatProfile
from pipeline.formats import LogRecord, MultilineJoiner, Unparsed
from pipeline.templates import TemplateMiner


@dataclass(frozen=True)
class TemplateSummary:
    """One template of the sample: its final text, how many records it holds, and the first one."""

    template: str
    count: int
    example_line: int  # line number of the first record with this template (1-based, in the file)
    example: str


@dataclass(frozen=True)
class FormatReport:
    profile: str
    lines: int  # non-empty lines read
    records: int
    continuation_lines: int  # lines without the header joined to the record before them (multi-line)
    dead_count: int  # lines without the header that continue no record (`no_header` dead letters)
    failed: tuple[tuple[int, str, bool], ...]  # the first lines without the header: (number, text, joined)

    @property
    def failed_count(self) -> int:
        """Lines the header did not match: joined as continuation lines or dead."""
        return self.continuation_lines + self.dead_count

    templates: tuple[TemplateSummary, ...]  # most records first
    session_keys: tuple[tuple[str, int], ...]  # key -> records, most first (at most `top_sessions`)
    session_count: int
    records_without_session: int
    first_timestamp: float | None
    last_timestamp: float | None
    records_without_timestamp: int
    example_fields: tuple[tuple[str, str], ...]  # the first record's header fields

    @property
    def failed_fraction(self) -> float:
        return self.failed_count / self.lines if self.lines else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "lines": self.lines,
            "records": self.records,
            "continuation_lines": self.continuation_lines,
            "dead_count": self.dead_count,
            "failed_count": self.failed_count,
            "failed_fraction": self.failed_fraction,
            "failed": [{"line": n, "text": t, "joined": j} for n, t, j in self.failed],
            "templates": [t.__dict__ for t in self.templates],
            "session_count": self.session_count,
            "session_keys": dict(self.session_keys),
            "records_without_session": self.records_without_session,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "records_without_timestamp": self.records_without_timestamp,
            "example_fields": dict(self.example_fields),
        }


def check_lines(
    numbered: Iterable[tuple[int, str]],
    profile: FormatProfile,
    max_failed_shown: int = 20,
    top_sessions: int = 10,
) -> FormatReport:
    """Parse `(line number, text)` pairs (non-empty lines, in file order) with the profile."""
    fmt = profile.log_format
    joiner = MultilineJoiner(fmt)
    miner = TemplateMiner(profile.drain_config())
    starts: deque[int] = deque()  # line numbers of the records the joiner holds or will release
    counts: Counter[int] = Counter()  # cluster id -> records
    examples: dict[int, tuple[int, str]] = {}
    keys: Counter[str] = Counter()
    failed: list[tuple[int, str, bool]] = []
    dead = lines = records = without_session = without_time = 0
    first_time = last_time = None
    example_fields: tuple[tuple[str, str], ...] = ()

    def take(item: LogRecord | Unparsed, number: int) -> None:
        nonlocal dead, records, without_session, without_time, first_time, last_time, example_fields
        if isinstance(item, Unparsed):
            dead += 1
            if failed and failed[-1][0] == number:
                failed[-1] = (number, item.line, False)
            return
        start = starts.popleft()
        records += 1
        if records == 1:
            standard = (("level", item.level), ("component", item.component))
            example_fields = tuple((k, v) for k, v in (*standard, *item.fields) if v)
        match = miner.learn(fmt.template_text(item))
        counts[match.cluster_id] += 1
        examples.setdefault(match.cluster_id, (start, item.line))
        if item.session_keys:
            keys.update(item.session_keys)
        else:
            without_session += 1
        if item.timestamp is None:
            without_time += 1
        else:
            first_time = item.timestamp if first_time is None else min(first_time, item.timestamp)
            last_time = item.timestamp if last_time is None else max(last_time, item.timestamp)

    for number, line in numbered:
        lines += 1
        if fmt.starts_record(line):
            starts.append(number)
        elif len(failed) < max_failed_shown:
            failed.append((number, line, True))  # joined, unless the joiner gives it back as Unparsed
        for item in joiner.feed(line):
            take(item, number)
    for item in joiner.flush():
        take(item, lines)
    templates = tuple(
        TemplateSummary(miner.template_of_cluster(cid), count, *examples[cid])
        for cid, count in counts.most_common()
    )
    return FormatReport(
        profile=profile.name,
        lines=lines,
        records=records,
        continuation_lines=lines - records - dead,
        dead_count=dead,
        failed=tuple(failed),
        templates=templates,
        session_keys=tuple(keys.most_common(top_sessions)),
        session_count=len(keys),
        records_without_session=without_session,
        first_timestamp=first_time,
        last_timestamp=last_time,
        records_without_timestamp=without_time,
        example_fields=example_fields,
    )


def numbered_lines(lines: Iterable[str], limit: int | None = None) -> Iterable[tuple[int, str]]:
    """(1-based line number, text without its newline) of the non-empty lines, at most `limit`."""
    taken = 0
    for number, line in enumerate(lines, 1):
        if limit is not None and taken >= limit:
            return
        text = line.rstrip("\n").rstrip("\r")
        if text.strip():
            taken += 1
            yield number, text


def _time(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


def render(report: FormatReport, profile: FormatProfile, templates_shown: int = 30, width: int = 100) -> str:
    """The report as text for a terminal."""
    fmt = profile.log_format
    out = [
        f"profile {report.profile}: {report.lines} lines read, {report.records} records",
        f"header not matched: {report.failed_count} lines ({report.failed_fraction:.1%}): "
        f"{report.continuation_lines} joined to the record before them as continuation lines, "
        f"{report.dead_count} continuing no record (the worker dead-letters those as no_header)",
    ]
    if report.example_fields:
        fields = " ".join(f"{k}={v!r}" for k, v in report.example_fields)
        out.append(f"first record's fields: {_clip(fields, 2 * width)}")
    if fmt.timestamp_groups:
        out.append(
            f"timestamps ({' + '.join(fmt.timestamp_groups)} as {fmt.timestamp_format!r}): "
            f"{_time(report.first_timestamp)} .. {_time(report.last_timestamp)}; "
            f"{report.records_without_timestamp} records without a readable one"
        )
    else:
        out.append("timestamps: no timestamp rule (events carry none; time windows need one)")
    if profile.has_sessions:
        rule = " in ".join(
            part
            for part in (
                f"pattern {fmt.session_pattern!r}" if fmt.session_pattern else "",
                f"field {fmt.session_field!r}" if fmt.session_field else "",
            )
            if part
        )
        top = ", ".join(f"{k} ({n})" for k, n in report.session_keys)
        out.append(
            f"sessions ({rule}): {report.session_count} keys, {report.records_without_session} records "
            f"without one; most records: {_clip(top, 2 * width)}"
        )
    else:
        out.append("sessions: no session rule (a time-window source: list it in LOGAD_WINDOW_SOURCES)")
    out.append(f"templates: {len(report.templates)} (most records first; example: its first line)")
    for t in report.templates[:templates_shown]:
        out.append(f"  {t.count:>7}  {_clip(t.template, width)}")
        out.append(f"           line {t.example_line}: {_clip(t.example, width)}")
    if len(report.templates) > templates_shown:
        out.append(f"  ... {len(report.templates) - templates_shown} more (--templates N shows more)")
    if report.failed:
        shown = len(report.failed)
        out.append(f"lines without the header (the first {shown} of {report.failed_count}):")
        out.extend(
            f"  line {n} ({'joined' if joined else 'dead'}): {_clip(text, width)}"
            for n, text, joined in report.failed
        )
    return "\n".join(out)
