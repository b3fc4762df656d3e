import numpy as np
import pytest

from pipeline.errors import DataError
from pipeline.windows import SESSION_END_ID, count_pairs, last_window, next_event_windows


@pytest.mark.parametrize(
    ("session", "size", "windows", "nexts"),
    [
        ([5, 6, 7, 8], 3, [[0, 0, 5], [0, 5, 6], [5, 6, 7]], [6, 7, 8]),
        ([5, 6, 7, 8], 2, [[0, 5], [5, 6], [6, 7]], [6, 7, 8]),
        ([5, 6], 4, [[0, 0, 0, 5]], [6]),
        ([5], 3, np.zeros((0, 3)), []),
        ([], 3, np.zeros((0, 3)), []),
    ],
)
def test_next_event_windows_left_pads(session, size, windows, nexts):
    got_windows, got_nexts = next_event_windows(session, size)
    assert got_windows.dtype == np.int64 and got_windows.shape == (len(nexts), size)
    np.testing.assert_array_equal(got_windows, np.asarray(windows, dtype=np.int64).reshape(-1, size))
    np.testing.assert_array_equal(got_nexts, nexts)


def test_end_of_session_adds_one_pair_targeting_the_end_id():
    windows, nexts = next_event_windows([5, 6], 3, end_of_session=True)
    np.testing.assert_array_equal(windows, [[0, 0, 5], [0, 5, 6]])
    np.testing.assert_array_equal(nexts, [6, SESSION_END_ID])
    assert SESSION_END_ID >= 1 << 52  # outside the template id range


def test_window_size_must_be_positive():
    with pytest.raises(DataError, match="window_size"):
        next_event_windows([1, 2], 0)


@pytest.mark.parametrize(
    ("history", "size", "expected"), [([1, 2], 4, [0, 0, 1, 2]), ([1, 2, 3, 4, 5], 3, [3, 4, 5])]
)
def test_last_window_matches_training_windows(history, size, expected):
    np.testing.assert_array_equal(last_window(history, size), expected)
    windows, _ = next_event_windows([*history, 99], size)
    np.testing.assert_array_equal(windows[-1], expected)


def test_count_pairs_dedupes_across_sessions():
    windows, nexts, counts = count_pairs([[1, 2, 3], [1, 2, 3], [1, 2]], 2)
    got = {
        (tuple(w), n): c for w, n, c in zip(windows.tolist(), nexts.tolist(), counts.tolist(), strict=True)
    }
    assert got == {((0, 1), 2): 3, ((1, 2), 3): 2}


@pytest.mark.parametrize(
    ("session", "size", "windows", "nexts"),
    [
        ([5, 6, 7, 8], 2, [[5, 6], [6, 7]], [7, 8]),  # n - l full windows, no left padding
        ([5, 6, 7], 3, [[5, 6, 7]], [0]),  # n <= l: padded at the end, the target is the padding
        ([5, 6], 4, [[5, 6, 0, 0]], [0]),
        ([], 3, np.zeros((0, 3)), []),
    ],
)
def test_full_windows_follow_the_papers(session, size, windows, nexts):
    got_windows, got_nexts = next_event_windows(session, size, full_windows=True)
    np.testing.assert_array_equal(got_windows, np.asarray(windows, dtype=np.int64).reshape(-1, size))
    np.testing.assert_array_equal(got_nexts, nexts)


def test_count_pairs_passes_full_windows_through():
    _, nexts, counts = count_pairs([[1, 2, 3], [1, 2]], 2, full_windows=True)
    assert sorted(zip(nexts.tolist(), counts.tolist(), strict=True)) == [(0, 1), (3, 1)]
