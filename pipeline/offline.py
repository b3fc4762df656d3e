"""Offline detection with a published model version: the streaming path, without Kafka or Triton.

Lines go through the same parser (the version's frozen templates), the same sessions and the same
`ColumnarDetector`, scored in-process by the same TorchScript file Triton serves; at the end every session is
closed as the worker closes idle ones. Streaming results can therefore be compared row for row.
Alerts carry their raw lines as the worker's do: each input line is a message of the pseudo topic
`OFFLINE_TOPIC` (partition 0, offset = its index in the input), kept in memory for the read-back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.alerts import Alert
from pipeline.columnar_detect import ColumnarDetector
from pipeline.deployment import load_template_set
from pipeline.event_columns import EventColumns
from pipeline.parsing import Parser
from pipeline.raw_lines import InMemoryRawMessages, RawLineReader
from pipeline.records import LogEvent, SourceOffset
from pipeline.scoring import TorchScriptNextEventScorer, VersionFollower
from pipeline.sessions import SessionTracker

OFFLINE_TOPIC = "offline"


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
    detector = ColumnarDetector(
        TorchScriptNextEventScorer(_pinned(repo, model, version)), deployed.texts.get, tracker
    )
    messages = InMemoryRawMessages()
    alerts: list[Alert] = []
    count = 0
    iterator = iter(lines)
    while chunk := list(itertools.islice(iterator, batch_lines)):
        events: list[LogEvent] = []
        for offset, line in enumerate(chunk, start=count):
            payload = line.encode("utf-8")
            messages.add(OFFLINE_TOPIC, 0, offset, payload)
            events.extend(parser.parse(payload, source, SourceOffset(OFFLINE_TOPIC, 0, offset)).events)
        count += len(chunk)
        alerts.extend((await detector.process_columns(EventColumns.from_events(events))).alerts)
    states = list(tracker)
    alerts.extend(await detector.close(states, deployed.session_end_id, window_size))
    alerts = await RawLineReader(messages, lambda _source: parser, timeout_s=60.0).attach(alerts)
    return OfflineResult(
        tuple(alerts),
        frozenset(a.session_key for a in alerts),
        frozenset(s.session_key for s in states),
        count,
    )
