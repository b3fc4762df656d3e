"""FormatMismatchTracker: a warning when most recent lines of a source fail its format, rate-limited."""

from __future__ import annotations

import pytest

from pipeline.source_health import FormatMismatchTracker


def _tracker() -> FormatMismatchTracker:
    return FormatMismatchTracker(window_lines=1000, min_lines=100, threshold=0.5, warn_every_s=60.0)


def test_mostly_failing_source_is_named_with_format_share_and_remedy() -> None:
    tracker = _tracker()
    assert tracker.observe("bgl", "hdfs", parsed=10, failed=80, now_s=0.0) is None  # under min_lines
    warning = tracker.observe("bgl", "hdfs", parsed=0, failed=100, now_s=1.0)
    assert warning is not None
    assert (warning.source, warning.format_name, warning.failed, warning.lines) == ("bgl", "hdfs", 180, 190)
    text = warning.message()
    assert "'bgl'" in text and "hdfs log format" in text and "95%" in text
    assert "--source" in text and "LOGAD_WINDOW_SOURCES" in text


def test_at_most_one_warning_per_source_per_minute() -> None:
    tracker = _tracker()
    times = [0.0, 10.0, 59.9, 60.0, 61.0, 130.0]
    warned = [tracker.observe("x", "hdfs", 0, 200, t) is not None for t in times]
    assert warned == [True, False, False, True, False, True]
    # Another source has its own limit.
    assert tracker.observe("y", "hdfs", 0, 200, 10.0) is not None


@pytest.mark.parametrize(
    ("parsed", "failed", "warns"), [(500, 500, False), (499, 501, True), (1000, 0, False)]
)
def test_threshold_is_more_than_half(parsed: int, failed: int, warns: bool) -> None:
    assert (_tracker().observe("s", "hdfs", parsed, failed, 0.0) is not None) == warns


def test_only_the_last_window_lines_count() -> None:
    tracker = _tracker()
    assert tracker.observe("s", "hdfs", 0, 900, 0.0) is not None
    # 1,000 good lines push every failed one out of the window: no warning after the minute either.
    assert tracker.observe("s", "hdfs", 1000, 0, 100.0) is None
    assert tracker.observe("s", "hdfs", 10, 0, 200.0) is None
    # A source that goes bad again is warned about again.
    assert tracker.observe("s", "hdfs", 0, 600, 300.0) is not None


def test_partial_blocks_are_trimmed_in_proportion() -> None:
    tracker = FormatMismatchTracker(window_lines=100, min_lines=10)
    tracker.observe("s", "hdfs", 50, 50, 0.0)
    # 120 lines in a window of 100: the first block loses 20, half of them failed ones (40 + 40 left)
    warning = tracker.observe("s", "hdfs", 0, 20, 100.0)
    assert warning is not None and (warning.failed, warning.lines) == (60, 100)


def test_sources_kept_are_bounded() -> None:
    tracker = FormatMismatchTracker(max_sources=2)
    for source in ("a", "b", "c"):
        tracker.observe(source, "hdfs", 1, 0, 0.0)
    assert list(tracker._sources) == ["b", "c"]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        FormatMismatchTracker(threshold=1.0)
