"""Online next-event detection: events in, explained alerts out, one scorer call per batch of events.

The `Detector` is the whole domain logic of the detection agent: advance each event's session, gather
every query of the batch into one `NextEventScorer` call, and turn anomalous rows into alerts, at most
one per session per cause. It runs the same offline (`replay`), so streaming and offline results can
be compared exactly. Causes: an event the model does not know (OOV) and an event outside the model's
top-k (unexpected next event), and, with a `ParameterDetector`, abnormal parameter values of the
event's key (DeepLog's parameter value model, `pipeline.parameter_detection`). Expired sessions get
a final verdict from `finalize`. Sources without session ids (BGL) go through time windows instead
(`pipeline.window_classifier`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipeline.alerts import (
    MAX_ALERT_LINES,
    Alert,
    AlertKind,
    ExpectedEvent,
    RawCoordinates,
    RawLine,
    alert_id,
)
from pipeline.errors import DataError, InferenceError
from pipeline.feedback import FeedbackGate
from pipeline.parameter_detection import ParameterAnomaly, ParameterDetector, parameter_alert
from pipeline.scoring import NextEventBatch, NextEventScorer, NextEventScores
from pipeline.sessions import (
    NextEventQuery,
    RawPosition,
    SessionEvent,
    SessionState,
    SessionStore,
    SessionTracker,
    positions,
)
from pipeline.windows import PAD_ID, SESSION_END_ID, SESSION_END_TEXT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionResult:
    """Alerts of one batch, how many queries were scored, events refused as bad data (with why), and
    events skipped as re-deliveries of what their sessions already applied."""

    alerts: tuple[Alert, ...]
    scored: int
    rejected: tuple[tuple[SessionEvent, str], ...] = ()
    redelivered: int = 0


@dataclass(frozen=True)
class SessionVerdict:
    """The final word on a closed session: anomalous when any cause was alerted."""

    source: str
    session_key: str
    anomalous: bool
    causes: tuple[str, ...]
    event_count: int
    first_timestamp: float | None
    last_timestamp: float | None


TemplateLookup = Callable[[int], str | None] | Mapping[int, str]


class Detector:
    """Sessions + one scorer + template texts -> alerts.

    `score_first_event`: whether a session's first event (whose window is all padding) is tested
    against the top-k. The trainer's windows (`pipeline.windows.next_event_windows`) start at the
    second event, so by default the first event is only tested for OOV, as offline evaluation does.
    """

    def __init__(
        self,
        scorer: NextEventScorer,
        templates: TemplateLookup,
        store: SessionStore,
        score_first_event: bool = False,
        parameters: ParameterDetector | None = None,
        feedback: FeedbackGate | None = None,
    ) -> None:
        self.scorer = scorer
        # Operator feedback (pipeline.feedback): rows marked normal raise no alert and claim nothing.
        self.feedback = feedback
        self.store = store
        self.score_first_event = score_first_event
        self.parameters = parameters
        self._lookup = templates.get if isinstance(templates, Mapping) else templates

    async def process(self, events: Sequence[SessionEvent], now: float | None = None) -> DetectionResult:
        """Advance every event's session in order, score all queries in one call, return new alerts."""
        queries: list[NextEventQuery] = []
        owners: list[SessionEvent] = []
        rejected: list[tuple[SessionEvent, str]] = []
        redelivered = 0
        for event in events:
            try:
                query = self.store.advance(event, now)
            except DataError as exc:
                rejected.append((event, str(exc)))
                continue
            if query is None:
                redelivered += 1
                continue
            queries.append(query)
            owners.append(event)
        if not queries:
            return DetectionResult((), 0, tuple(rejected), redelivered)
        window_size = len(queries[0].window)
        batch = NextEventBatch.of([q.window for q in queries], [q.next_event for q in queries], window_size)
        scores = await self.scorer.score(batch)
        if len(scores) != len(batch):
            raise InferenceError(
                f"detection: scorer {scores.model} v{scores.version} returned {len(scores)} rows for a "
                f"batch of {len(batch)}; the backend must answer every row"
            )
        alerts: list[Alert] = []
        accepted = self._accepted(scores, batch)
        for i, (query, event) in enumerate(zip(queries, owners, strict=True)):
            kind = self._cause(query, event, scores, i)
            if kind is None:
                continue
            if accepted is not None and accepted[i]:
                self._suppressed(kind)
                continue
            admitted, state = self._claim(kind, query)
            if admitted:
                alerts.append(self._explain(kind, query, event, state, scores, i))
        if self.parameters is not None:
            kind = AlertKind.PARAMETER_VALUE
            for found in await self.parameters.check(owners, [q.previous_ts for q in queries]):
                query, event = queries[found.index], owners[found.index]
                if self._parameter_accepted(found):
                    self._suppressed(kind)
                    continue
                admitted, state = self._claim(kind, query)
                if admitted:
                    first_ts = state.first_ts if state is not None else None
                    raw = coordinates(event)
                    alert = parameter_alert(found, query, event, first_ts, self._text, raw)
                    alerts.append(replace(alert, event_time=event.timestamp, lines=window_lines(query, raw)))
        return DetectionResult(tuple(alerts), len(queries), tuple(rejected), redelivered)

    def _accepted(self, scores: NextEventScores, batch: NextEventBatch) -> np.ndarray | None:
        """Rows operators marked normal (None without feedback: nothing to mask)."""
        if self.feedback is None:
            return None
        return self.feedback.accepted(scores.model, int(scores.version), batch.window, batch.next_event[:, 0])

    def _parameter_accepted(self, found: ParameterAnomaly) -> bool:
        """Whether operators widened this key's threshold past the anomaly's score."""
        if self.feedback is None:
            return False
        score = found.score if math.isfinite(found.score) else 1.0
        return self.feedback.parameter_accepted(found.model, found.template_id, score)

    def _suppressed(self, kind: AlertKind) -> None:
        if self.feedback is not None:
            self.feedback.count(kind)

    def _claim(self, kind: AlertKind, query: NextEventQuery) -> tuple[bool, SessionState | None]:
        """Whether the session may get an alert of `kind` (one per session per cause); records it."""
        state = self.store.get(query.source, query.session_key)
        if state is not None:
            if state.has_alerted(kind):
                return False, state
            self.store.put(state.with_alerted(kind))
        return True, state

    def _cause(
        self, query: NextEventQuery, event: SessionEvent, scores: NextEventScores, row: int
    ) -> AlertKind | None:
        if not scores.next_known[row, 0] or getattr(event, "oov", False):
            return AlertKind.OOV_EVENT
        if scores.anomalous[row, 0] and (query.position > 0 or self.score_first_event):
            return AlertKind.UNEXPECTED_NEXT_EVENT
        return None

    def _explain(
        self,
        kind: AlertKind,
        query: NextEventQuery,
        event: SessionEvent,
        state: SessionState | None,
        scores: NextEventScores,
        row: int,
    ) -> Alert:
        expected = tuple(
            ExpectedEvent(int(tid), self._text(int(tid)), float(p))
            for tid, p in zip(scores.topk_ids[row].tolist(), scores.topk_probs[row].tolist(), strict=True)
            if tid != PAD_ID
        )
        # OOV: the model has never seen the event, certain; unexpected: the probability mass the model
        # put on the events it expected, all of which the actual event missed.
        score = 1.0 if kind is AlertKind.OOV_EVENT else min(1.0, sum(e.probability for e in expected))
        raw = coordinates(event)
        return Alert(
            alert_id=alert_id(query.source, query.session_key, kind),
            source=query.source,
            session_key=query.session_key,
            kind=kind,
            model=scores.model,
            model_version=int(scores.version),
            score=score,
            event_template_id=query.next_event,
            event_template=getattr(event, "template", None) or self._text(query.next_event),
            expected=expected,
            window=tuple(self._text(tid) for tid in query.window if tid != PAD_ID),
            first_timestamp=state.first_ts if state is not None else event.timestamp,
            last_timestamp=event.timestamp,
            position=query.position,
            raw=raw,
            event_time=event.timestamp,
            lines=window_lines(query, raw),
        )

    def _text(self, template_id: int) -> str:
        if template_id == SESSION_END_ID:
            return SESSION_END_TEXT
        return self._lookup(template_id) or f"<template {template_id}>"

    async def close(
        self, states: Sequence[SessionState], session_end_id: int | None, window_size: int
    ) -> list[Alert]:
        """Score the end of closed sessions (models trained with an end-of-session marker).

        A session that stops too early (HDFS blocks cut short) is abnormal only at its end, so when
        the deployed model predicts `session_end_id`, the end is one more next-event test.
        """
        closing = [s for s in states if s.event_count and not s.has_alerted(AlertKind.UNEXPECTED_NEXT_EVENT)]
        if session_end_id is None or not closing:
            return []
        windows = [
            (PAD_ID,) * (window_size - len(s.window[-window_size:])) + s.window[-window_size:]
            for s in closing
        ]
        batch = NextEventBatch.of(windows, [session_end_id] * len(closing), window_size)
        scores = await self.scorer.score(batch)
        accepted = self._accepted(scores, batch)
        alerts = []
        for row, state in enumerate(closing):
            if not scores.anomalous[row, 0]:
                continue
            if accepted is not None and accepted[row]:
                self._suppressed(AlertKind.UNEXPECTED_NEXT_EVENT)
                continue
            # The session ended after its last event: that record (and those before it) is the raw context.
            before, last = state.recent[:-3], state.recent[-3:] or (-1, -1, -1)
            query = NextEventQuery(
                state.source, state.session_key, windows[row], session_end_id, state.event_count,
                state.last_ts, before,
            )  # fmt: skip
            end = _SessionEnd(state.source, state.session_key, state.last_ts, _RawAt(state.raw_topic, *last))
            alerts.append(self._explain(AlertKind.UNEXPECTED_NEXT_EVENT, query, end, state, scores, row))
        return alerts

    def finalize(self, states: Iterable[SessionState]) -> list[SessionVerdict]:
        """Final verdicts for sessions that closed (expired by inactivity or drained at the end)."""
        return [
            SessionVerdict(
                source=s.source,
                session_key=s.session_key,
                anomalous=bool(s.alerted),
                causes=tuple(sorted(s.alerted)),
                event_count=s.event_count,
                first_timestamp=s.first_ts,
                last_timestamp=s.last_ts,
            )
            for s in states
        ]


@dataclass(frozen=True)
class _SessionEnd:
    """The pseudo event "the session ended here", explained like any other event."""

    source: str
    session_key: str
    timestamp: float | None
    raw: _RawAt
    template: str = SESSION_END_TEXT
    template_id: int = SESSION_END_ID


@dataclass(frozen=True)
class _RawAt:
    """The raw coordinates of a session's last event, shaped like `LogEvent.raw`."""

    topic: str
    partition: int
    offset: int
    line: int


def coordinates(event: object) -> RawCoordinates:
    """The raw record's Kafka coordinates (`LogEvent.raw`), when the event carries them."""
    raw = getattr(event, "raw", None)
    if raw is None or raw.offset < 0:
        return RawCoordinates()
    return RawCoordinates(str(raw.topic), int(raw.partition), int(raw.offset), int(raw.line))


def window_lines(query: NextEventQuery, raw: RawCoordinates) -> tuple[RawLine, ...]:
    """The raw records behind an event's alert, texts not read yet: the window's, then the event's."""
    return raw_lines(raw.topic, positions(query.recent), raw)


def raw_lines(topic: str, before: Sequence[RawPosition], last: RawCoordinates) -> tuple[RawLine, ...]:
    """`RawLine`s (coordinates only) for positions in `topic` and the offending record, at most
    `MAX_ALERT_LINES`; none when the records did not come from Kafka."""
    if last.offset < 0:
        return ()
    earlier = [RawCoordinates(topic, p, o, n) for p, o, n in before]
    return tuple(RawLine(at) for at in [*earlier, last][-MAX_ALERT_LINES:])


@dataclass(frozen=True)
class ReplayResult:
    alerts: tuple[Alert, ...]
    verdicts: tuple[SessionVerdict, ...]
    scored: int
    rejected: int


async def replay(detector: Detector, events: Iterable[SessionEvent], batch_size: int = 1024) -> ReplayResult:
    """Run a finite stream through the detector in batches, as the agent would; close every session.

    With a `SessionTracker` store, sessions expire by event time between batches and the rest are
    drained at the end, so every session gets a verdict.
    """
    alerts: list[Alert] = []
    verdicts: list[SessionVerdict] = []
    scored = rejected = 0
    tracker = detector.store if isinstance(detector.store, SessionTracker) else None
    chunk: list[SessionEvent] = []

    async def flush() -> None:
        nonlocal scored, rejected
        result = await detector.process(chunk)
        alerts.extend(result.alerts)
        scored += result.scored
        rejected += len(result.rejected)
        chunk.clear()
        if tracker is not None:
            verdicts.extend(detector.finalize(tracker.expire()))

    for event in events:
        chunk.append(event)
        if len(chunk) >= batch_size:
            await flush()
    if chunk:
        await flush()
    if tracker is not None:
        verdicts.extend(detector.finalize(tracker.drain()))
    return ReplayResult(tuple(alerts), tuple(verdicts), scored, rejected)
