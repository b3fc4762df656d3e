from __future__ import annotations

from pipeline.stream_order import OffsetTracker, Verdict


def test_tracker_notices_skipped_and_repeated_records_per_partition() -> None:
    order = OffsetTracker()
    assert not order.knows("raw", 3)
    order.start("raw", 3, committed=329)  # where faust seeks a newly assigned partition
    assert order.check("raw", 3, 329) == Verdict()
    order.handled("raw", 3, 329)
    assert order.check("raw", 3, 365) == Verdict(missing_from=330)  # 330..364 skipped by faust
    order.handled("raw", 3, 365)
    assert order.check("raw", 3, 340) == Verdict(seen=True)  # fetched again: handled already
    assert order.check("raw", 0, 7) == Verdict()  # another partition, nothing known: accepted
    order.reset()
    assert not order.knows("raw", 3)


def test_a_group_without_commits_lets_the_first_record_decide() -> None:
    order = OffsetTracker()
    order.start("events", 0, committed=None)
    assert not order.knows("events", 0)
    assert order.check("events", 0, 1200) == Verdict()
    order.handled("events", 0, 1200)
    assert order.check("events", 0, 1201) == Verdict()
