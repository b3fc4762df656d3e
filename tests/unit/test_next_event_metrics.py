import numpy as np
import pytest

from pipeline.evaluation.next_event_metrics import (
    detection_scores,
    scores_with_and_without_oov,
    session_flags,
)


@pytest.mark.parametrize(
    ("worst", "k", "flags"),
    [([0, 3, 5, -1], 4, [False, False, True, True]), ([0, 3, 5, -1], 6, [False, False, False, True])],
)
def test_session_flags(worst, k, flags):
    assert session_flags(np.array(worst), k).tolist() == flags


def test_plain_scores():
    s = detection_scores(np.array([True, False, False, False]), np.array([True, True, True, False]))
    assert (s.true_positives, s.false_negatives, s.false_positives) == (3, 1, 1)
    assert (
        s.precision == pytest.approx(0.75) and s.recall == pytest.approx(0.75) and s.f1 == pytest.approx(0.75)
    )


def test_precision_is_extrapolated_from_the_normal_sample_rate():
    normal = np.array([True] + [False] * 999)  # r = 0.1%
    abnormal = np.array([True] * 900 + [False] * 100)
    s = detection_scores(normal, abnormal, normal_total=553_366)
    assert s.false_positives == pytest.approx(553.366)
    assert s.precision == pytest.approx(900 / (900 + 553.366))
    assert s.recall == pytest.approx(0.9)


def test_without_oov_drops_oov_sessions():
    normal = np.array([0, 0, 7, 1])
    abnormal = np.array([-1, -1, 9, 0])
    with_oov, without_oov = scores_with_and_without_oov(normal, abnormal, top_k=5)
    assert (with_oov.true_positives, with_oov.false_negatives, with_oov.false_positives) == (3, 1, 1)
    assert (without_oov.true_positives, without_oov.false_negatives) == (1, 1)
    assert without_oov.abnormal_sessions == 2 and without_oov.precision == pytest.approx(0.5)
