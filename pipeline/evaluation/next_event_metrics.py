"""Session-level detection metrics for the next-event models, with and without OOV sessions.

Following LAMA (Sec. 2.1, Table 2), a session is anomalous if any of its windows is (true next event
outside the top-k) or it holds an event never seen in training (OOV). "With OOV" scores every test
session under that rule. "Without OOV" is our reading of the paper's first number ("OOV events are
not predictable"): sessions holding an OOV event are left out of the test set, so the score measures
the sequence model alone.

With only a sample of the normal test sessions (the 1/99 protocol), precision is extrapolated:
TP / (TP + r * normal_total), where r is the false-positive rate on the sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAPER_NORMAL_TEST_SESSIONS = 553_366


@dataclass(frozen=True)
class DetectionScores:
    """Counts and scores of one test (normal counts possibly extrapolated)."""

    true_positives: int
    false_negatives: int
    false_positives: float
    true_negatives: float
    normal_sessions: int
    abnormal_sessions: int

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 0.0

    @property
    def recall(self) -> float:
        total = self.true_positives + self.false_negatives
        return self.true_positives / total if total else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_positive_rate(self) -> float:
        total = self.false_positives + self.true_negatives
        return self.false_positives / total if total else 0.0


def session_flags(worst_ranks: np.ndarray, top_k: int) -> np.ndarray:
    """Anomalous sessions at k from their worst ranks (-1 = holds OOV)."""
    worst_ranks = np.asarray(worst_ranks)
    return (worst_ranks < 0) | (worst_ranks >= top_k)


def detection_scores(
    normal_flags: np.ndarray,
    abnormal_flags: np.ndarray,
    normal_total: int | None = None,
) -> DetectionScores:
    """Scores from per-session flags; with `normal_total`, FP/TN are scaled to that many normal sessions."""
    normal_flags = np.asarray(normal_flags, dtype=bool)
    abnormal_flags = np.asarray(abnormal_flags, dtype=bool)
    tp = int(abnormal_flags.sum())
    fn = int(len(abnormal_flags) - tp)
    fp = float(normal_flags.sum())
    tn = float(len(normal_flags) - fp)
    if normal_total is not None and len(normal_flags):
        rate = fp / len(normal_flags)
        fp, tn = rate * normal_total, (1.0 - rate) * normal_total
    return DetectionScores(tp, fn, fp, tn, len(normal_flags), len(abnormal_flags))


def scores_with_and_without_oov(
    normal_worst: np.ndarray,
    abnormal_worst: np.ndarray,
    top_k: int,
    normal_total: int | None = None,
) -> tuple[DetectionScores, DetectionScores]:
    """(with OOV, without OOV) scores at `top_k` from per-session worst ranks."""
    normal_worst, abnormal_worst = np.asarray(normal_worst), np.asarray(abnormal_worst)
    with_oov = detection_scores(
        session_flags(normal_worst, top_k), session_flags(abnormal_worst, top_k), normal_total
    )
    keep_normal, keep_abnormal = normal_worst >= 0, abnormal_worst >= 0
    # Extrapolate the normal side only by the share of normal sessions that are OOV-free.
    total = None if normal_total is None else round(normal_total * float(keep_normal.mean() or 0.0))
    without_oov = detection_scores(
        session_flags(normal_worst[keep_normal], top_k),
        session_flags(abnormal_worst[keep_abnormal], top_k),
        total,
    )
    return with_oov, without_oov


def scores_dict(prefix: str, scores: DetectionScores) -> dict[str, float | int]:
    """Flat result keys (`precision`, `recall`, `f1`, ... with a suffix) for an evaluation dict."""
    return {
        f"precision{prefix}": round(scores.precision, 4),
        f"recall{prefix}": round(scores.recall, 4),
        f"f1{prefix}": round(scores.f1, 4),
        f"tp{prefix}": scores.true_positives,
        f"fn{prefix}": scores.false_negatives,
        f"fp{prefix}": round(scores.false_positives, 1),
        f"fpr{prefix}": round(scores.false_positive_rate, 6),
    }
