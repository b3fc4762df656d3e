"""Waiting until workers have handled a run: their `/progress` pages and the topics' end offsets.

The one implementation the demo, the end-to-end benchmark and the integration tests share; the
decision itself is `pipeline.progress` (no I/O there).
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence

import orjson
from confluent_kafka import Consumer

from pipeline.adapters.kafka import end_offsets
from pipeline.errors import InfrastructureError
from pipeline.progress import (
    DrainCheck,
    DrainTarget,
    DrainWatch,
    NotDrained,
    Offsets,
    WorkerProgress,
    combine,
    reached,
    written,
)
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def fetch_progress(port: int, timeout_s: float = 5.0) -> WorkerProgress | None:
    """One worker's `/progress`; None when it does not answer (starting, stopped, paused)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/progress", timeout=timeout_s) as response:
            body = response.read()
    except OSError:
        return None
    return WorkerProgress.from_json(orjson.loads(body))


class RunOffsets:
    """End offsets of a run's topics, read outside any consumer group (blocking; close when done)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = Consumer({**settings.kafka_config(), "group.id": "logad-run-offsets"})

    def ends(self, topic: str) -> dict[int, int]:
        return end_offsets(self._client, topic)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RunOffsets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_read_through(
    positions: Mapping[int, int], ends: Offsets, timeout_s: float, what: str, alive: Callable[[], bool]
) -> None:
    """Until a reader thread's `positions` (offset after its last record, per partition, which it
    updates as it reads) reach `ends`: every record written before `ends` was taken is read."""
    deadline = time.monotonic() + timeout_s
    while not reached(positions, ends):
        if time.monotonic() > deadline or not alive():
            raise InfrastructureError(
                f"reading {what} stopped at {dict(positions)}, short of its end offsets {dict(ends)} "
                f"after {timeout_s:.0f}s; is the broker up (`logad kafka status`)?"
            )
        time.sleep(0.1)


def wait_drained(
    settings: Settings,
    ports: Sequence[int],
    lines_sent: int,
    raw_starts: Offsets | None = None,
    timeout_s: float = 600.0,
    poll_s: float = 0.5,
    problem: Callable[[], str | None] | None = None,
    on_poll: Callable[[DrainCheck], None] | None = None,
) -> DrainCheck:
    """Block until the workers on `ports` have handled everything the run wrote (`pipeline.progress`).

    `raw_starts`: raw-logs end offsets taken before the replay (None: the topic is the run's own,
    from offset 0). `problem()` returns why waiting is pointless (a worker died) or None.
    Raises `NotDrained`, saying how far the run got, when the bound passes or `problem()` speaks.
    """
    deadline = time.monotonic() + timeout_s
    with RunOffsets(settings) as offsets:
        raw_ends = written(raw_starts or {}, offsets.ends(settings.raw_logs_topic))
        watch = DrainWatch(
            DrainTarget(settings.raw_logs_topic, settings.log_events_topic, raw_ends, lines_sent)
        )
        while True:
            # End offsets strictly before the positions they are compared with (see DrainWatch).
            event_ends = offsets.ends(settings.log_events_topic) if watch.wants_event_ends() else None
            answers = [fetch_progress(port) for port in ports]
            progress = combine(a for a in answers if a is not None) if any(answers) else None
            check = watch.observe(progress, event_ends)
            if on_poll is not None:
                on_poll(check)
            if check.drained:
                return check
            if problem is not None and (why := problem()):
                raise NotDrained(check, timeout_s, why)
            if time.monotonic() > deadline:
                raise NotDrained(check, timeout_s)
            time.sleep(poll_s)
