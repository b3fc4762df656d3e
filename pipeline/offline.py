"""Offline detection with a published model version: the streaming path, without Kafka or Triton.

Lines go through the same parser (the version's frozen templates), the same sessions and the same
`Detector`, scored in-process by the same TorchScript file Triton serves; at the end every session is
closed as the worker closes idle ones. Streaming results can therefore be compared row for row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.alerts import Alert
from pipeline.deployment import load_template_set
from pipeline.detection import Detector
from pipeline.parsing import Parser
from pipeline.records import LogEvent
from pipeline.scoring import TorchScriptNextEventScorer, VersionFollower
from pipeline.sessions import SessionTracker


@dataclass(frozen=True)
class OfflineResult:
    alerts: tuple[Alert, ...]
    flagged_sessions: frozenset[str]
    sessions: frozenset[str]
    lines: int


def _pinned(repo: Path, model: str, version: int) -> VersionFollower:
    return VersionFollower(
        repo, model, clock=lambda: 0.0, reload_interval_s=float("inf"), newest=lambda _repo, _name: version
    )


async def detect_offline(
    lines: Iterable[str],
    repo: Path,
    model: str,
    version: int,
    source: str,
    window_size: int = 10,
    batch_lines: int = 5000,
) -> OfflineResult:
    deployed = load_template_set(repo, model, version)
    parser = Parser(deployed.log_format, deployed.miner)
    tracker = SessionTracker(window_size, timeout_s=float("inf"))
    detector = Detector(
        TorchScriptNextEventScorer(_pinned(repo, model, version)), deployed.texts.get, tracker
    )
    alerts: list[Alert] = []
    count = 0
    iterator = iter(lines)
    while chunk := list(itertools.islice(iterator, batch_lines)):
        count += len(chunk)
        events: list[LogEvent] = []
        for line in chunk:
            events.extend(parser.parse(line.encode("utf-8"), source).events)
        alerts.extend((await detector.process(events)).alerts)
    states = list(tracker)
    alerts.extend(await detector.close(states, deployed.session_end_id, window_size))
    return OfflineResult(
        tuple(alerts),
        frozenset(a.session_key for a in alerts),
        frozenset(s.session_key for s in states),
        count,
    )
