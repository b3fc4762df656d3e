"""pipeline.progress: a run is done only when every stage has handled everything, never on silence."""

from __future__ import annotations

import pytest

from pipeline.errors import DataError
from pipeline.progress import (
    DrainTarget,
    DrainWatch,
    NotDrained,
    Stage,
    WorkerProgress,
    combine,
    reached,
    records_behind,
    written,
)

RAW, EVENTS = "raw", "events"
TARGET = DrainTarget(RAW, EVENTS, raw_ends={0: 100}, lines_sent=1000)


def progress(raw: int | None, events: dict[int, int | None], lines: int, sessions: int) -> WorkerProgress:
    return WorkerProgress({RAW: {0: raw}, EVENTS: events}, lines, sessions, {EVENTS: 7})


def test_the_demo_bug_parsing_done_and_gauge_zero_is_not_done() -> None:
    """The reported bug: lines parsed >= sent and 0 sessions open, but detection far behind."""
    watch = DrainWatch(TARGET)
    first = watch.observe(progress(100, {0: 10, 1: 5}, 1000, 0), None)
    assert first.stage is Stage.DETECTING
    second = watch.observe(progress(100, {0: 10, 1: 5}, 1000, 0), {0: 400, 1: 300})
    assert second.stage is Stage.DETECTING and second.events_behind == 685


def test_stages_in_order_until_drained() -> None:
    watch = DrainWatch(TARGET)
    assert not watch.wants_event_ends()
    # Raw read through, but the last record's lines are not counted yet: still parsing.
    assert watch.observe(progress(100, {0: 5}, 900, 3), None).stage is Stage.PARSING
    assert not watch.wants_event_ends()
    # Parsed at this poll: log-events end offsets only from the next poll on.
    assert watch.observe(progress(100, {0: 5}, 1000, 3), None).stage is Stage.DETECTING
    assert watch.wants_event_ends()
    assert watch.observe(progress(100, {0: 50}, 1000, 3), {0: 60}).stage is Stage.DETECTING
    assert watch.observe(progress(100, {0: 60}, 1000, 3), {0: 60}).stage is Stage.CLOSING
    done = watch.observe(progress(100, {0: 61}, 1000, 0), {0: 61})
    assert done.stage is Stage.DRAINED and done.drained


def test_log_events_end_offsets_taken_in_the_parsing_poll_do_not_count() -> None:
    """End offsets read in the same poll that first saw parsing done may miss the last sends."""
    watch = DrainWatch(TARGET)
    check = watch.observe(progress(100, {0: 60}, 1000, 0), {0: 60})
    assert check.stage is Stage.DETECTING


def test_a_silent_worker_concludes_nothing() -> None:
    watch = DrainWatch(TARGET)
    watch.observe(progress(100, {0: 60}, 1000, 2), None)
    check = watch.observe(None, {0: 60})
    assert not check.drained and check.sessions_open == 2


def test_partition_held_by_no_one_is_unknown_not_done() -> None:
    watch = DrainWatch(DrainTarget(RAW, EVENTS, {0: 100, 1: 50}, 0))
    check = watch.observe(WorkerProgress({RAW: {0: 100}, EVENTS: {}}, 0, 0), None)
    assert check.stage is Stage.PARSING and check.raw_behind is None
    assert "raw-logs records behind unknown" in check.describe()


@pytest.mark.parametrize(
    ("positions", "ends", "behind"),
    [
        ({0: 10, 1: 20}, {0: 10, 1: 25}, 5),
        ({0: 12}, {0: 10}, 0),  # a position past a stale end offset never counts negative
        ({}, {0: 0}, 0),  # a partition never written needs no reader
        ({0: None}, {0: 3}, None),
    ],
)
def test_records_behind(positions: dict[int, int | None], ends: dict[int, int], behind: int | None) -> None:
    assert records_behind(positions, ends) == behind


def test_reached_and_written() -> None:
    assert reached({0: 5, 1: 9}, {0: 5, 1: 9, 2: 0})
    assert not reached({0: 5}, {0: 5, 1: 1})
    assert written({0: 10, 1: 4}, {0: 10, 1: 6, 2: 1}) == {1: 6, 2: 1}


def test_combine_takes_the_furthest_position_and_sums_counts() -> None:
    a = WorkerProgress({RAW: {0: 5, 1: None}}, 10, 2, {RAW: 1})
    b = WorkerProgress({RAW: {0: 8, 2: 3}}, 20, 1, {RAW: 2})
    both = combine([a, b])
    assert both.positions == {RAW: {0: 8, 1: None, 2: 3}}
    assert (both.lines_handled, both.sessions_open, both.behind) == (30, 3, {RAW: 3})


def test_from_json_and_its_error() -> None:
    body = {
        "positions": {RAW: {"0": 4}, EVENTS: {"1": None}},
        "behind": {RAW: 0, EVENTS: None},
        "lines_handled": 7,
        "sessions_open": 1,
    }
    decoded = WorkerProgress.from_json(body)
    assert decoded.positions == {RAW: {0: 4}, EVENTS: {1: None}} and decoded.lines_handled == 7
    with pytest.raises(DataError, match="lines_handled"):
        WorkerProgress.from_json({"positions": {}, "sessions_open": 0})


def test_not_drained_says_how_far_it_got() -> None:
    watch = DrainWatch(TARGET)
    check = watch.observe(progress(40, {0: 5}, 400, 12), None)
    message = str(NotDrained(check, 60))
    assert "within 60s" in message and "lines read 400 / 1,000 sent" in message
    assert "raw-logs records behind 60" in message and "sessions open 12" in message


def test_the_decision_imports_no_client() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, pipeline.progress; "
        "print(sorted(m for m in ('faust', 'confluent_kafka', 'aiokafka', 'urllib.request') "
        "if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"
