"""Sliding next-event windows over a session: the one windowing used by training and streaming.

A session `(s_0, ..., s_{n-1})` yields one pair per position j >= 1: the window holds the up to
`window_size` events before j, left-padded with 0 (the padding id), and the target is `s_j`. Unlike
LAMA's text, which starts predicting only after the first `l` events, every event after the first is
a target here, so an abnormal event early in a session is still checked.

With `end_of_session=True` one more pair is made whose target is `SESSION_END_ID`: the model then
learns where sessions may end, so a session that stops early (most HDFS anomalies without an unseen
event are truncated block lifecycles such as `5 22`) gets an abnormal last pair. DeepLog's public
code does the same in effect by padding short sessions at the end. A streaming worker sends
`SESSION_END_ID` as the next event when it closes a session.

`full_windows=True` is the papers' windowing instead (LAMA Sec. 2.1, DeepLog's public code), used only
to reproduce their numbers: a session of n > l events gives the n - l full windows; a session of at
most l events is padded at the end and gives one pair whose target is the padding, which no model
predicts, so such a session is always anomalous.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.errors import DataError

# Template id 0 is never a template's (`pipeline.templates.template_id`): it pads windows and marks
# "no template" everywhere (windows, window-class inputs, the template registry). The one definition.
PAD_ID = 0
# Template ids are below 2**52 (see `pipeline.templates.template_id`), so this id never collides.
SESSION_END_ID = 1 << 52
# How the marker reads wherever a template text is shown (alerts, expected events, `logad tail`).
SESSION_END_TEXT = "end of session"


def next_event_windows(
    session_ids: Sequence[int], window_size: int, end_of_session: bool = False, full_windows: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Windows `(n-1, window_size)` int64, left-padded with 0, and the next events `(n-1,)` int64.

    With `end_of_session`, the session is closed by `SESSION_END_ID`, giving one more pair. With
    `full_windows`, the papers' windowing (see the module docstring).
    """
    if window_size < 1:
        raise DataError(f"windowing: window_size must be >= 1, got {window_size}; pass a positive size")
    ids = np.asarray(session_ids, dtype=np.int64)
    if end_of_session and len(ids):
        ids = np.append(ids, np.int64(SESSION_END_ID))
    if full_windows:
        return _full_windows(ids, window_size)
    count = max(len(ids) - 1, 0)
    # Prefix the session with padding so that every window is a plain slice of the same array.
    padded = np.concatenate([np.full(window_size, PAD_ID, dtype=np.int64), ids])
    if count == 0:
        return np.zeros((0, window_size), dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.arange(1, count + 1)  # window for target j covers padded[j : j + window_size]
    windows = np.lib.stride_tricks.sliding_window_view(padded, window_size)[starts]
    return np.ascontiguousarray(windows), ids[1:].copy()


def _full_windows(ids: np.ndarray, window_size: int) -> tuple[np.ndarray, np.ndarray]:
    if len(ids) == 0:
        return np.zeros((0, window_size), dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(ids) <= window_size:
        window = np.concatenate([ids, np.full(window_size - len(ids), PAD_ID, dtype=np.int64)])
        return window[None, :], np.asarray([PAD_ID], dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], window_size)
    return np.ascontiguousarray(windows), ids[window_size:].copy()


def last_window(history_ids: Sequence[int], window_size: int) -> np.ndarray:
    """The window `(window_size,)` that precedes the next event of a session seen so far (streaming)."""
    tail = list(history_ids)[-window_size:]
    return np.asarray([PAD_ID] * (window_size - len(tail)) + tail, dtype=np.int64)


def count_pairs(
    sessions: Iterable[Sequence[int]],
    window_size: int,
    end_of_session: bool = False,
    full_windows: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (window, next) pairs over many sessions with their counts: windows, nexts, counts.

    Sessions repeat heavily (HDFS), so training and scoring on distinct pairs saves most of the work.
    """
    counter: Counter[tuple[int, ...]] = Counter()
    for session in sessions:
        windows, nexts = next_event_windows(session, window_size, end_of_session, full_windows)
        if len(nexts):
            rows = np.concatenate([windows, nexts[:, None]], axis=1)
            counter.update(map(tuple, rows.tolist()))
    if not counter:
        empty = np.zeros((0, window_size), dtype=np.int64)
        return empty, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows = np.asarray(list(counter.keys()), dtype=np.int64)
    counts = np.asarray(list(counter.values()), dtype=np.int64)
    return rows[:, :window_size].copy(), rows[:, window_size].copy(), counts
