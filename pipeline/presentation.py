"""Alerts and summaries as text for humans (`logad tail`, `logad demo`)."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.alerts import Alert, AlertKind, RawLine
from pipeline.windows import SESSION_END_ID

_KIND_TEXT = {
    AlertKind.UNEXPECTED_NEXT_EVENT: "unexpected event",
    AlertKind.OOV_EVENT: "never-seen event",
    AlertKind.PARAMETER_VALUE: "abnormal parameter",
    AlertKind.WINDOW_CLASS: "abnormal window",
}
_BRIEF_WINDOW_LINES = 3  # a window alert's last raw lines shown without --verbose


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def iso_time(ts: float | None) -> str:
    """Epoch seconds as ISO 8601 in UTC (`2008-11-09T20:35:18Z`, fractions kept); "time unknown" for None."""
    if ts is None:
        return "time unknown"
    moment = datetime.fromtimestamp(ts, UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _raw_line(line: RawLine, width: int = 200) -> str:
    if line.text is None:
        return f"{line.at.describe()} (text not read back)"
    # A joined multi-line record (a stack trace) shows its lines indented under the first.
    text = "\n        ".join(_clip(part, width) for part in line.text.split("\n")[:20])
    return f"{line.at.describe()}: {text}"


def format_alert(alert: Alert, verbose: bool = False) -> str:
    """An alert for people: a head line (event time, source/session, kind, model version, what), then
    where it happened and the offending raw line(s) with their coordinates; `verbose` adds the raw
    lines before it, the window's templates and the expected events."""
    kind = _KIND_TEXT.get(alert.kind, str(alert.kind))
    window = alert.kind is AlertKind.WINDOW_CLASS
    if window:
        # The window is the session here: show its bounds readable, not its key in epoch seconds.
        where = f"{alert.source} window {iso_time(alert.first_timestamp)} .. {iso_time(alert.last_timestamp)}"
        what = alert.label
        model = f"{alert.model} v{alert.model_version}"
    else:
        where = f"{alert.source}/{alert.session_key}"
        what = alert.event_template
        model = f"#{alert.position}, {alert.model} v{alert.model_version}"
    if alert.kind is AlertKind.PARAMETER_VALUE:
        # The label holds the values and their expected ranges; the template says which line.
        what = f"{_clip(alert.event_template, 60)} | {alert.label}"
    head = (
        f"ALERT {alert.alert_id[:8]} {iso_time(alert.event_time)} {where} {kind} "
        f"({model}, score {alert.score:.2f}): "
        f"{_clip(what, 160 if alert.kind is AlertKind.PARAMETER_VALUE else 90)}"
    )
    lines = [head]
    if alert.fields:
        lines.append("    where: " + " ".join(f"{name}={value}" for name, value in alert.fields))
    ended = alert.event_template_id == SESSION_END_ID
    if window:
        shown = alert.lines if verbose else alert.lines[-_BRIEF_WINDOW_LINES:]
        lines += [f"    line: {_raw_line(line)}" for line in shown]
    elif alert.lines:
        *before, last = alert.lines
        if verbose:
            lines += [f"    before: {_raw_line(line)}" for line in before]
        lines.append(f"    {'session ended after' if ended else 'line'}: {_raw_line(last)}")
    elif alert.raw.offset >= 0:
        lines.append(f"    raw record: {alert.raw.describe()}")
    if alert.note:
        lines.append(f"    note: {alert.note}")
    if verbose:
        label = "templates" if window else "window"
        lines += [f"    {label}: {_clip(t, 100)}" for t in (alert.window if window else alert.window[-3:])]
        lines += [f"    expected ({e.probability:.2f}): {_clip(e.template, 90)}" for e in alert.expected]
    return "\n".join(lines)


def metrics_table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    body = "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
    return f"{title}\n{body}"
