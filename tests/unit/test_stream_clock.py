from __future__ import annotations

import pytest

from pipeline.errors import DataError
from pipeline.records import EventBatch
from pipeline.stream_clock import IngestWatermark, RawWatermarks


def test_watermark_per_partition_is_the_newest_record_unless_caught_up_and_idle() -> None:
    mark = IngestWatermark(idle_after_s=5.0)
    # Nothing read yet: a caught-up partition moves with the wall clock, one with a backlog (or
    # unknown) has no time to give.
    assert mark.values(now=100.0, waiting={0: 0, 1: 5, 2: None}) == {0: 100.0}
    # A backlog: records produced long ago are read now; the tick must not run ahead of them.
    mark.observe(1, 40.0, now=100.0)
    mark.observe(1, 41.0, now=101.0)
    mark.observe(1, 39.0, now=101.5)  # an older record does not move it back
    assert mark.values(now=102.0, waiting={1: 0}) == {1: 41.0}  # still reading
    assert mark.values(now=120.0, waiting={1: 7}) == {1: 41.0}  # nothing fetched (broker down), lag left
    assert mark.values(now=120.0, waiting={1: 0}) == {1: 120.0}  # caught up and idle
    assert mark.values(now=120.0, waiting={}) == {}  # partitions not held are not reported


def test_raw_watermarks_are_the_lowest_partition_and_unknown_until_all_report() -> None:
    clock = RawWatermarks()
    clock.observe(0, 50.0)
    assert clock.now() is None  # how many raw partitions there are comes with the first tick
    clock.observe_tick({1: 200.0}, partitions=2)  # another worker's idle partition: the wall clock
    assert clock.now() == 50.0  # held back by partition 0's backlog
    clock.observe(0, 30.0)  # a late record never moves a partition back
    assert clock.now() == 50.0
    clock.observe_tick({0: 60.0}, partitions=2)
    assert clock.now() == 60.0
    clock.observe_tick({}, partitions=3)  # a partition added: unknown until it reports
    assert clock.now() is None
    clock.observe(2, None)
    assert clock.now() is None
    clock.observe_tick({2: 500.0}, partitions=3)
    assert clock.now() == 60.0


def test_tick_round_trips_its_watermarks_and_events_default_to_none() -> None:
    tick = EventBatch((), ((0, 12.5), (3, 14.0)), raw_partitions=4)
    assert EventBatch.decode(tick.encode()) == tick
    plain = EventBatch.decode(EventBatch(()).encode())
    assert plain.watermarks == () and plain.raw_partitions == 0


def test_malformed_tick_is_a_data_error() -> None:
    bad = b'{"schema": "event-batch/1", "events": [], "watermarks": [["zero", 1.0]], "raw_partitions": 1}'
    with pytest.raises(DataError, match="malformed tick"):
        EventBatch.decode(bad)
