"""Alerts and summaries as text for humans (`logad tail`, `logad demo`)."""

from __future__ import annotations

from pipeline.alerts import Alert, AlertKind

_KIND_TEXT = {
    AlertKind.UNEXPECTED_NEXT_EVENT: "unexpected event",
    AlertKind.OOV_EVENT: "never-seen event",
    AlertKind.PARAMETER_VALUE: "abnormal parameter",
    AlertKind.WINDOW_CLASS: "abnormal window",
}


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_alert(alert: Alert, verbose: bool = False) -> str:
    """One line per alert; with `verbose`, the preceding window and the expected events below it."""
    kind = _KIND_TEXT.get(alert.kind, str(alert.kind))
    what = alert.label or alert.event_template
    if alert.kind is AlertKind.PARAMETER_VALUE:
        # The label holds the values and their expected ranges; the template says which line.
        what = f"{_clip(alert.event_template, 60)} | {alert.label}"
    head = (
        f"ALERT {alert.alert_id[:8]} {alert.source}/{alert.session_key} {kind} "
        f"(#{alert.position}, {alert.model} v{alert.model_version}, score {alert.score:.2f}): "
        f"{_clip(what, 160 if alert.kind is AlertKind.PARAMETER_VALUE else 90)}"
    )
    if not verbose:
        return head
    lines = [head]
    lines += [f"    after: {_clip(t, 100)}" for t in alert.window[-3:]]
    lines += [f"    expected ({e.probability:.2f}): {_clip(e.template, 90)}" for e in alert.expected]
    lines.append(f"    raw record: {alert.raw.topic}[{alert.raw.partition}]@{alert.raw.offset}")
    return "\n".join(lines)


def metrics_table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    body = "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
    return f"{title}\n{body}"
