"""Tumbling and sliding event-time windows for sources without session ids (BGL).

Windows are aligned to multiples of `step_s` since the epoch: the window starting at `k * step_s`
covers `[k * step_s, k * step_s + size_s)`. `step_s == size_s` gives tumbling windows, a smaller
step gives overlapping sliding windows. Time is always the event's own timestamp; the windower keeps
no clock, so training (a file replay) and streaming (events arriving live) cut identical windows.

A window's label is `NORMAL` when it holds no alert line, else its dominant alert category (most
alert lines; ties go to the alphabetically first category so that labels are deterministic).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError
from pipeline.records import SourceOffset

log = logging.getLogger(__name__)

NORMAL = "normal"
RECENT_RAW = 10  # raw positions a window keeps of its last events, for its alert's raw lines


@dataclass(frozen=True)
class TimedEvent:
    """One parsed line: when it happened, its template, and its alert category (None = normal line)."""

    timestamp_s: float
    template_id: int
    alert: str | None = None
    raw: SourceOffset | None = None  # where the line lies in Kafka (streaming only)


@dataclass(frozen=True)
class WindowSpec:
    """Window length and hop in seconds; `allowed_lateness_s` delays closing for out-of-order events."""

    size_s: float
    step_s: float
    allowed_lateness_s: float = 0.0

    def __post_init__(self) -> None:
        if not (self.size_s > 0 and 0 < self.step_s <= self.size_s and self.allowed_lateness_s >= 0):
            raise ConfigError(
                f"time windows: need size_s > 0, 0 < step_s <= size_s and allowed_lateness_s >= 0, got "
                f"size_s={self.size_s}, step_s={self.step_s}, allowed_lateness_s={self.allowed_lateness_s}"
            )

    def to_json(self) -> dict[str, float]:
        """As stored in a model version's metadata.json (`window`)."""
        return {"size_s": self.size_s, "step_s": self.step_s, "allowed_lateness_s": self.allowed_lateness_s}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> WindowSpec:
        try:
            return cls(float(raw["size_s"]), float(raw["step_s"]), float(raw.get("allowed_lateness_s", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"time windows: expected a spec with size_s and step_s, got {raw!r}; republish the model"
            ) from exc

    def starts(self, timestamp_s: float) -> list[float]:
        """Start times of every window that contains `timestamp_s`, oldest first."""
        last = math.floor(timestamp_s / self.step_s)
        first = math.floor((timestamp_s - self.size_s) / self.step_s) + 1
        return [k * self.step_s for k in range(first, last + 1)]


@dataclass(frozen=True)
class Window:
    """A closed window: its span, template-id counts and alert counts (sorted pairs) and label; when
    its events came from Kafka, the raw positions of its last `RECENT_RAW` events (arrival order) and
    the time of its newest event."""

    start_s: float
    end_s: float
    counts: tuple[tuple[int, int], ...]
    alerts: tuple[tuple[str, int], ...] = ()
    label: str = field(default=NORMAL)
    recent: tuple[SourceOffset, ...] = ()
    last_event_s: float | None = None

    def count_map(self) -> dict[int, int]:
        """Template id -> occurrences, the input of `pipeline.tfidf`."""
        return dict(self.counts)

    @property
    def n_events(self) -> int:
        return sum(c for _, c in self.counts)


def window_label(alerts: Mapping[str, int]) -> str:
    """NORMAL without alerts, else the category with most lines (alphabetical on ties)."""
    if not alerts:
        return NORMAL
    return min(alerts.items(), key=lambda item: (-item[1], item[0]))[0]


class TimeWindower:
    """Incremental windowing: feed events in (roughly) time order, get windows as they close.

    A window closes once an event arrives at or after `end + allowed_lateness_s`; events older than
    a closed window are dropped and counted in `late_events`.
    """

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self._open: dict[float, tuple[Counter[int], Counter[str]]] = {}
        self._recent: dict[float, deque[SourceOffset]] = {}  # only windows with events from Kafka
        self._newest: dict[float, float] = {}
        self._closed_until = -math.inf
        self.late_events = 0

    def add(self, event: TimedEvent) -> list[Window]:
        """Add one event; return the windows its timestamp closes, oldest first."""
        starts = [s for s in self.spec.starts(event.timestamp_s) if s + self.spec.size_s > self._closed_until]
        if not starts:
            self.late_events += 1
            log.debug("time windows: dropped late event at %s", event.timestamp_s)
            return []
        for start in starts:
            counts, alerts = self._open.setdefault(start, (Counter(), Counter()))
            counts[event.template_id] += 1
            if event.alert is not None:
                alerts[event.alert] += 1
            self._newest[start] = max(self._newest.get(start, event.timestamp_s), event.timestamp_s)
            if event.raw is not None:
                self._recent.setdefault(start, deque(maxlen=RECENT_RAW)).append(event.raw)
        return self._close(event.timestamp_s - self.spec.allowed_lateness_s)

    @property
    def open_count(self) -> int:
        """Windows holding events that have not closed yet."""
        return len(self._open)

    def flush(self) -> list[Window]:
        """Close every open window (end of input)."""
        return self._close(math.inf)

    def _close(self, watermark_s: float) -> list[Window]:
        done = sorted(s for s in self._open if s + self.spec.size_s <= watermark_s)
        out = []
        for start in done:
            counts, alerts = self._open.pop(start)
            end = start + self.spec.size_s
            self._closed_until = max(self._closed_until, end)
            out.append(
                Window(
                    start_s=start,
                    end_s=end,
                    counts=tuple(sorted(counts.items())),
                    alerts=tuple(sorted(alerts.items())),
                    label=window_label(alerts),
                    recent=tuple(self._recent.pop(start, ())),
                    last_event_s=self._newest.pop(start, None),
                )
            )
        return out


def time_windows(events: Iterable[TimedEvent], spec: WindowSpec) -> list[Window]:
    """All non-empty windows of a finite event list (sorted by time first), oldest first."""
    windower = TimeWindower(spec)
    out: list[Window] = []
    for event in sorted(events, key=lambda e: e.timestamp_s):
        out.extend(windower.add(event))
    out.extend(windower.flush())
    return out
