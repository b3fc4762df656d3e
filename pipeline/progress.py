"""When is a run done? From the pipeline's own positions, never from a quiet spell.

A run (the demo, the end-to-end benchmark, an integration test) replays lines into `raw-logs` and
then waits until the workers have handled all of it before it reads `log-anomalies` and computes
figures. Silence is no evidence: a worker that is slow, paused or still catching up is silent too,
and figures computed then describe a partial run. A run is drained when, in this order:

1. parsed: every raw-logs partition the run wrote to is read through the end offset taken after
   the replay, and the lines handled (parsed or dead-lettered) reach the lines sent;
2. detected: every log-events partition is read through its end offset taken at a poll *after*
   the one that saw step 1 (so the parse agent's last sends have left its producer);
3. closed: no session is open (the worker refreshes that figure after every log-events message
   is fully handled: its alerts and table writes acknowledged).

Then `log-anomalies` holds every alert of the run, and a reader takes its end offsets and reads up
to them (`reached`). This module is the decision only: workers' progress comes in as
`WorkerProgress` (from their `/progress` page), end offsets and the clock as arguments.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import DataError, InfrastructureError

Offsets = Mapping[int, int]


@dataclass(frozen=True)
class WorkerProgress:
    """One worker's (or several workers' combined) progress, as its `/progress` page reports it.

    `positions`: per topic, per partition the worker holds, the offset after the last record it has
    fully handled (None while not known yet). Counters are since the worker started.
    """

    positions: Mapping[str, Mapping[int, int | None]]
    lines_handled: int
    sessions_open: int
    behind: Mapping[str, int | None] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerProgress:
        """Decode a `/progress` body (partition numbers arrive as JSON object keys, i.e. strings)."""
        try:
            positions = {
                str(topic): {int(p): (None if o is None else int(o)) for p, o in parts.items()}
                for topic, parts in data["positions"].items()
            }
            behind = {str(t): (None if n is None else int(n)) for t, n in data.get("behind", {}).items()}
            return cls(positions, int(data["lines_handled"]), int(data["sessions_open"]), behind)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"progress: a worker's /progress body lacks or mistypes {exc}; expected positions, "
                "lines_handled, sessions_open (is the worker the same version as this checkout?)"
            ) from exc


def combine(progresses: Iterable[WorkerProgress]) -> WorkerProgress:
    """Several workers of one group as one: the furthest position per partition (a partition that
    moved keeps its stale entry nowhere: workers report only the partitions they hold), counters
    and open sessions summed."""
    positions: dict[str, dict[int, int | None]] = {}
    behind: dict[str, int | None] = {}
    lines = sessions = 0
    for progress in progresses:
        lines += progress.lines_handled
        sessions += progress.sessions_open
        for topic, parts in progress.positions.items():
            merged = positions.setdefault(topic, {})
            for partition, offset in parts.items():
                known = merged.get(partition)
                merged[partition] = offset if known is None or offset is None else max(known, offset)
        for topic, count in progress.behind.items():
            so_far = behind.get(topic, 0)
            behind[topic] = None if count is None or so_far is None else so_far + count
    return WorkerProgress(positions, lines, sessions, behind)


def records_behind(positions: Mapping[int, int | None], ends: Offsets) -> int | None:
    """Records of `ends` not read yet; None while a partition with records is held by no one."""
    total = 0
    for partition, end in ends.items():
        if end <= 0:  # never written: nothing to read, and its holder may not know a position yet
            continue
        position = positions.get(partition)
        if position is None:
            return None
        total += max(0, end - position)
    return total


def reached(positions: Mapping[int, int], ends: Offsets) -> bool:
    """True when a reader is at or past `ends` on every partition (an empty partition needs nothing)."""
    return all(positions.get(partition, 0) >= end for partition, end in ends.items() if end > 0)


def written(starts: Offsets, ends: Offsets) -> dict[int, int]:
    """The partitions a run wrote to (end past its start), with their end offsets."""
    return {p: end for p, end in ends.items() if end > starts.get(p, 0)}


class Stage(enum.Enum):
    PARSING = "parsing"
    DETECTING = "detecting"
    CLOSING = "closing sessions"
    DRAINED = "drained"


@dataclass(frozen=True)
class DrainTarget:
    """What a run must see handled: raw-logs end offsets taken after its replay, and its lines."""

    raw_topic: str
    events_topic: str
    raw_ends: Offsets  # only the partitions the run wrote to (see `written`)
    lines_sent: int


@dataclass(frozen=True)
class DrainCheck:
    """Where a run stands at one poll."""

    stage: Stage
    lines_handled: int
    lines_sent: int
    raw_behind: int | None
    events_behind: int | None
    sessions_open: int | None

    @property
    def drained(self) -> bool:
        return self.stage is Stage.DRAINED

    def describe(self) -> str:
        def figure(value: int | None) -> str:
            return "unknown" if value is None else f"{value:,}"

        return (
            f"{self.stage.value}: lines read {self.lines_handled:,} / {self.lines_sent:,} sent, "
            f"raw-logs records behind {figure(self.raw_behind)}, log-events records behind "
            f"{figure(self.events_behind)}, sessions open {figure(self.sessions_open)}"
        )


class DrainWatch:
    """The decision across polls (it remembers that parsing was seen done at an earlier poll).

    Each poll: if `wants_event_ends()`, take log-events end offsets, *then* the workers' progress,
    and call `observe`. Positions read after the end offsets were taken can only be further on.
    """

    def __init__(self, target: DrainTarget) -> None:
        self.target = target
        self._parsed_before = False
        self.last = DrainCheck(Stage.PARSING, 0, target.lines_sent, None, None, None)

    def wants_event_ends(self) -> bool:
        return self._parsed_before

    def observe(self, progress: WorkerProgress | None, event_ends: Offsets | None) -> DrainCheck:
        """Judge one poll; `progress` None when no worker answered (nothing is concluded from that)."""
        t = self.target
        if progress is None:
            self.last = DrainCheck(
                Stage.PARSING if not self._parsed_before else self.last.stage,
                self.last.lines_handled,
                t.lines_sent,
                self.last.raw_behind,
                self.last.events_behind,
                self.last.sessions_open,
            )
            return self.last
        raw_behind = records_behind(progress.positions.get(t.raw_topic, {}), t.raw_ends)
        event_positions = progress.positions.get(t.events_topic, {})
        if event_ends is not None:
            events_behind = records_behind(event_positions, event_ends)
        else:  # the worker's own count, for the report only
            events_behind = progress.behind.get(t.events_topic)
        parsed = raw_behind == 0 and progress.lines_handled >= t.lines_sent
        if not parsed:
            stage = Stage.PARSING
        elif not self._parsed_before or event_ends is None or events_behind != 0:
            stage = Stage.DETECTING
        elif progress.sessions_open > 0:
            stage = Stage.CLOSING
        else:
            stage = Stage.DRAINED
        # Parsing done at this poll: the next poll's log-events end offsets include its output.
        self._parsed_before = self._parsed_before or parsed
        self.last = DrainCheck(
            stage, progress.lines_handled, t.lines_sent, raw_behind, events_behind, progress.sessions_open
        )
        return self.last


class NotDrained(InfrastructureError):
    """A run did not drain within its bound: its figures would describe a partial run."""

    def __init__(self, check: DrainCheck, timeout_s: float, why: str = "") -> None:
        self.check = check
        reason = why or f"the pipeline did not finish within {timeout_s:.0f}s"
        super().__init__(
            f"{reason}; it got as far as {check.describe()}. No figures are reported for a partial "
            "run: look at the worker log, or raise the bound if the machine is just slow"
        )
