from __future__ import annotations

from pipeline.stream_clock import IngestWatermark, StreamClock, records_behind


def test_stream_clock_follows_ingest_time_per_partition_and_never_goes_back() -> None:
    clock = StreamClock()
    assert clock.advance(0, []) is None and clock.advance(0, [None]) is None
    assert clock.advance(0, [10.0, 12.5, 11.0]) == 12.5
    assert clock.advance(0, [3.0]) == 12.5  # a late record does not move it back
    assert clock.advance(1, [4.0]) == 4.0  # partitions are independent
    assert clock.advance(0, [None, 20.0]) == 20.0


def test_watermark_is_the_newest_record_unless_caught_up_and_idle() -> None:
    mark = IngestWatermark(idle_after_s=5.0)
    assert mark.value(now=100.0, caught_up=True) == 100.0  # nothing to read: time moves on
    assert mark.value(now=100.0, caught_up=False) is None  # a backlog not yet read: no time to give
    # A backlog: records produced long ago are read now; the tick must not run ahead of them.
    mark.observe(40.0, now=100.0)
    mark.observe(41.0, now=101.0)
    assert mark.value(now=102.0, caught_up=True) == 41.0  # still reading
    assert mark.value(now=120.0, caught_up=False) == 41.0  # nothing fetched (broker down), lag left
    assert mark.value(now=120.0, caught_up=True) == 120.0  # caught up and idle


def test_records_behind_compares_read_positions_with_high_watermarks() -> None:
    assert records_behind({0: 10, 1: 4}, {0: 10, 1: 4}) == 0
    assert records_behind({0: 10}, {0: 10, 1: 4}) == 4  # partition 1 never read, 4 records wait
    assert records_behind({0: 9}, {0: 10}) == 1
    assert records_behind({0: 12}, {0: 10}) == 0  # a stale high watermark never counts negative
    assert records_behind({}, {0: 0}) == 0  # an empty partition
    assert records_behind({0: 10}, {0: 10, 1: None}) is None  # just assigned: not known yet
    assert records_behind({}, {}) == 0  # no input partitions
