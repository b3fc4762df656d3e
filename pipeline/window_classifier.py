"""Closed time windows -> one ProtoSiamese (`WindowClassScorer`) call -> window-class alerts.

For sources without session ids (BGL): the window plays the session's part, so its key
(`window_key`) makes the one-alert-per-session-per-cause rule hold by construction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from pipeline.alerts import MAX_ALERT_LINES, Alert, AlertKind, RawCoordinates, RawLine, alert_id
from pipeline.detection import TemplateLookup
from pipeline.errors import InferenceError
from pipeline.scoring import WindowClassBatch, WindowClassScorer


class ClosedWindow(Protocol):
    """A closed time window (`pipeline.time_windows.Window`): its span and template-id counts."""

    @property
    def start_s(self) -> float: ...

    @property
    def end_s(self) -> float: ...

    @property
    def counts(self) -> tuple[tuple[int, int], ...]: ...

    # Optional, as `Window` has them: `recent` (raw positions of its last events) and `last_event_s`.


class WindowClassifier:
    """Closed time windows -> one `WindowClassScorer` call -> a window-class alert per abnormal window.

    The window is the session here (key `window_key(start, end)`), so the one-alert-per-session-per-
    cause rule holds by construction. `score` is the softmax over negative prototype distances at the
    chosen class. An alert lists the window's `top_templates` most frequent templates, most first.
    """

    def __init__(
        self,
        scorer: WindowClassScorer,
        templates: TemplateLookup,
        normal_class: str = "normal",
        top_templates: int = 10,
    ) -> None:
        self.scorer = scorer
        self.normal_class = normal_class
        self.top_templates = top_templates
        self._lookup = templates.get if isinstance(templates, Mapping) else templates

    async def classify(self, source: str, windows: Sequence[ClosedWindow]) -> list[Alert]:
        """Alerts for the abnormal windows of one source."""
        return await self.classify_sources([(source, w) for w in windows])

    async def classify_sources(self, items: Sequence[tuple[str, ClosedWindow]]) -> list[Alert]:
        """Alerts for the abnormal windows of any sources, all scored in one call."""
        from pipeline.tfidf import pad_windows  # torch-backed module: imported only when windows are scored

        items = [(source, w) for source, w in items if w.counts]
        if not items:
            return []
        template_ids, counts = pad_windows([dict(w.counts) for _, w in items])
        scores = await self.scorer.score(WindowClassBatch(template_ids, counts))
        if scores.class_index.shape[0] != len(items):
            raise InferenceError(
                f"window classification: scorer {scores.model} v{scores.version} returned "
                f"{scores.class_index.shape[0]} rows for {len(items)} windows; the backend must answer "
                "every row"
            )
        alerts = []
        for row, (source, window) in enumerate(items):
            index = int(scores.class_index[row, 0])
            name = scores.class_names[index] if index < len(scores.class_names) else f"class {index}"
            if name == self.normal_class:
                continue
            distances = scores.distances[row].tolist()
            weights = [math.exp(min(distances) - d) for d in distances]
            key = window_key(window.start_s, window.end_s)
            by_count = sorted(window.counts, key=lambda item: (-item[1], item[0]))
            top_id = by_count[0][0]
            recent = [
                RawCoordinates(r.topic, r.partition, r.offset, r.line)
                for r in getattr(window, "recent", ())[-MAX_ALERT_LINES:]
            ]
            alerts.append(
                Alert(
                    alert_id=alert_id(source, key, AlertKind.WINDOW_CLASS),
                    source=source,
                    session_key=key,
                    kind=AlertKind.WINDOW_CLASS,
                    model=scores.model,
                    model_version=int(scores.version),
                    score=weights[index] / sum(weights) if index < len(weights) else 1.0,
                    event_template_id=top_id,
                    event_template=self._text(top_id),
                    expected=(),
                    window=tuple(self._text(tid) for tid, _ in by_count[: self.top_templates]),
                    first_timestamp=window.start_s,
                    last_timestamp=window.end_s,
                    position=-1,  # a window has no position in a session
                    raw=recent[-1] if recent else RawCoordinates(),
                    label=name,
                    event_time=getattr(window, "last_event_s", None),
                    lines=tuple(RawLine(at) for at in recent),
                )
            )
        return alerts

    def _text(self, template_id: int) -> str:
        return self._lookup(template_id) or f"<template {template_id}>"


def window_key(start_s: float, end_s: float) -> str:
    """`<start>-<end>` in seconds, exact to the microsecond (epoch times need all their digits)."""
    return f"{_seconds(start_s)}-{_seconds(end_s)}"


def _seconds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")
