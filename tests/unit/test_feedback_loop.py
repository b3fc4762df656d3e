"""The feedback evaluation's pieces: alert rounds, the split, measuring with an allowlist."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation.feedback_loop import SessionPairs, collect_feedback, measure, split_half
from pipeline.feedback import Allowlist
from pipeline.models.next_event import default_config
from pipeline.training.next_event import TrainConfig, TrainedModel, train_next_event

NORMAL = [(1, 2, 3, 4)] * 30
# 5 after 2 is new behaviour twice in the same session: the worker alerts once per cause, so it
# takes two rounds; 9 is an event training never saw (OOV).
ODD = (1, 2, 5, 2, 5, 3, 4)
WITH_OOV = (1, 2, 9, 3, 4)


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    config = TrainConfig(epochs=40, batch_size=8, learning_rate=1e-2, top_k_candidates=(1,))
    return train_next_event(
        "deeplog", default_config("deeplog", 3, hidden=16, layers=1), NORMAL, config, False
    )


def test_rounds_mark_every_alert_until_none_is_left(trained: TrainedModel) -> None:
    allowlist = Allowlist()
    records, rounds = collect_feedback(trained, [ODD, WITH_OOV, NORMAL[0]], allowlist, "ts")
    kinds = sorted(r.kind.value for r in records)
    assert rounds >= 2 and "oov_event" in kinds and "unexpected_next_event" in kinds
    scope = allowlist.scope("deeplog", "ts", 3)
    assert scope.accepts((1, 2, 9), 3) or scope.accepts((0, 1, 2), 9)  # the OOV pair or what follows
    again, more = collect_feedback(trained, [ODD, WITH_OOV], allowlist, "ts")
    assert (again, more) == ([], 0)


def test_measure_counts_flagged_sessions_with_and_without_the_allowlist(trained: TrainedModel) -> None:
    allowlist = Allowlist()
    collect_feedback(trained, [ODD], allowlist, "ts")
    normal = SessionPairs.of([ODD, NORMAL[0], NORMAL[0]], 3, True)
    abnormal = SessionPairs.of([(1, 3), WITH_OOV], 3, True)
    before = measure(trained, None, normal, abnormal, None, "_b")
    after = measure(trained, allowlist.scope("deeplog", "ts", 3), normal, abnormal, None, "")
    assert (before["normal_flagged_b"], after["normal_flagged"]) == (1, 0)
    assert before["recall_b"] == after["recall"] == 1.0
    assert after["tp_without_oov"] == 1  # the OOV session is left out without OOV


def test_split_is_seeded_and_covers_every_session() -> None:
    sessions = [(i,) for i in range(1, 201)]
    one, two = split_half(sessions, 0)
    assert sorted(one + two) == sessions and 60 < len(one) < 140
    assert split_half(sessions, 0) == (one, two) and split_half(sessions, 1) != (one, two)


def test_session_pairs_check_the_first_event_too() -> None:
    pairs = SessionPairs.of([(7, 8)], 3, False)
    rows = [(*map(int, pairs.windows[i]), int(pairs.nexts[i])) for i in pairs.members[0]]
    assert rows == [(0, 0, 0, 7), (0, 0, 7, 8)]
    assert np.asarray(pairs.members[0]).dtype == np.int64
