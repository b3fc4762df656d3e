"""Online time-window detection for sources without session ids (BGL).

Events of the configured window sources (`Settings.window_sources`) skip the session path: each
source has a `TimeWindower` cut by the deployed window model's spec (size and hop from its
metadata, event time from the line's own timestamp), and every window a batch closes is classified
in one `WindowClassifier` call; windows of an anomaly class become `WINDOW_CLASS` alerts.

Window state lives in worker memory: a window still open when the worker stops (or when its
partition moves to another worker) is lost, and its events are not replayed into a new one. All
session-less events share one `log-events` partition (their session key is empty), so a source's
windows are always cut by one worker, in order. A window closes when an event at or after its end
(plus the spec's allowed lateness) arrives. The newest windows of a source that has gone quiet close
when it has been idle for `idle_s` on the ingest watermark (`pipeline.stream_clock`: the raw
records' produce time, which moves on by ticks while nothing arrives), so the last window of a stream
is classified too (`close_idle`); an event the source logs later into those windows counts as late.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from pipeline.alerts import Alert
from pipeline.event_columns import EventColumns
from pipeline.records import LogEvent, SourceOffset
from pipeline.time_windows import TimedEvent, TimeWindower, Window, WindowSpec
from pipeline.window_classifier import WindowClassifier

log = logging.getLogger(__name__)


class WindowedEvent(Protocol):
    """What windowing needs of an event (`pipeline.records.LogEvent` has it)."""

    @property
    def source(self) -> str: ...

    @property
    def timestamp(self) -> float | None: ...

    @property
    def template_id(self) -> int: ...

    # Optional: `raw` (a `SourceOffset`), where the line lies in Kafka and when it was produced.


E = TypeVar("E", bound=WindowedEvent)


@dataclass(frozen=True)
class WindowResult:
    """One batch: alerts, windows closed (and classified), events refused for lack of a timestamp."""

    alerts: tuple[Alert, ...]
    closed: int
    rejected: tuple[tuple[WindowedEvent, str], ...] = ()


class WindowDetector:
    """Per-source time windows + one classifier call per batch -> window-class alerts.

    `spec()` returns the deployed model's window spec; it is asked once per batch, and when it
    changes (a new version trained with other windows) the open windows are dropped with a warning,
    because counts cut one way cannot be classified by a model trained on windows cut another.
    """

    def __init__(
        self,
        classifier: WindowClassifier,
        spec: Callable[[], WindowSpec],
        sources: Iterable[str],
        idle_s: float = 30.0,
    ) -> None:
        self.classifier = classifier
        self.sources = frozenset(sources)
        self.idle_s = idle_s
        self._spec = spec
        self._windowers: dict[str, TimeWindower] = {}
        self._ingested: dict[str, float] = {}  # per source, the newest ingest time of its events

    def is_windowed(self, source: str) -> bool:
        return source in self.sources

    def split(self, events: Sequence[E]) -> tuple[list[E], list[E]]:
        """(events for sessions, events for windows), each in arrival order."""
        sessions: list[E] = []
        windowed: list[E] = []
        for event in events:
            (windowed if event.source in self.sources else sessions).append(event)
        return sessions, windowed

    def split_columns(self, columns: EventColumns) -> tuple[EventColumns, list[LogEvent]]:
        """`split` for a columnar batch: (rows for sessions, as columns; events for windows)."""
        windowed_sources = [i for i, source in enumerate(columns.sources) if source in self.sources]
        if not windowed_sources:
            return columns, []
        windowed = np.isin(columns.source_index, windowed_sources)
        return (
            columns.take(np.flatnonzero(~windowed)),
            columns.take(np.flatnonzero(windowed)).to_events(),
        )

    async def process(self, events: Sequence[WindowedEvent]) -> WindowResult:
        """Add events in order; classify every window they close in one call."""
        if not events:
            return WindowResult((), 0)
        spec = self._spec()
        closed: list[tuple[str, Window]] = []
        rejected: list[tuple[WindowedEvent, str]] = []
        for event in events:
            if event.timestamp is None:
                reason = f"window source {event.source!r}: event without a timestamp cannot be windowed"
                rejected.append((event, reason))
                continue
            windower = self._windower(event.source, spec)
            raw: SourceOffset | None = getattr(event, "raw", None)
            raw = raw if raw is not None and raw.offset >= 0 else None
            if raw is not None and raw.timestamp is not None:
                self._ingested[event.source] = max(
                    self._ingested.get(event.source, raw.timestamp), raw.timestamp
                )
            timed = TimedEvent(event.timestamp, event.template_id, raw=raw)
            closed.extend((event.source, w) for w in windower.add(timed))
        alerts = await self.classifier.classify_sources(closed)
        return WindowResult(tuple(alerts), len(closed), tuple(rejected))

    async def close_idle(self, now: float) -> WindowResult:
        """Close and classify the open windows of every source idle for `idle_s` at ingest time `now`."""
        closed = [
            (source, w)
            for source, windower in self._windowers.items()
            if windower.open_count and now - self._ingested.get(source, now) >= self.idle_s
            for w in windower.flush()
        ]
        if not closed:
            return WindowResult((), 0)
        log.info("windows: closed %d windows of idle sources at ingest time %.3f", len(closed), now)
        return WindowResult(tuple(await self.classifier.classify_sources(closed)), len(closed))

    async def flush(self) -> WindowResult:
        """Close and classify every open window (end of a finite replay; never called by the worker)."""
        closed = [(source, w) for source, windower in self._windowers.items() for w in windower.flush()]
        return WindowResult(tuple(await self.classifier.classify_sources(closed)), len(closed))

    @property
    def open_windows(self) -> int:
        return sum(w.open_count for w in self._windowers.values())

    @property
    def late_events(self) -> int:
        """Events dropped because their windows had already closed."""
        return sum(w.late_events for w in self._windowers.values())

    def _windower(self, source: str, spec: WindowSpec) -> TimeWindower:
        windower = self._windowers.get(source)
        if windower is not None and windower.spec != spec:
            log.warning(
                "windows of %s: spec changed from %s to %s; dropping %d open windows",
                source,
                windower.spec,
                spec,
                windower.open_count,
            )
            windower = None
        if windower is None:
            windower = self._windowers[source] = TimeWindower(spec)
        return windower
