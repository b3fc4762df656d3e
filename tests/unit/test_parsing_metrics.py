"""Loghub parsing metrics (GA, FGA, PA) on hand-made cases, and the template normalisation."""

from __future__ import annotations

import pytest

from pipeline.evaluation.parsing_metrics import (
    grouping_accuracy,
    grouping_f1,
    normalise_template,
    parsing_accuracy,
)

TRUTH = ["A", "A", "B", "B", "C"]


@pytest.mark.parametrize(
    ("predicted", "ga", "fga"),
    [
        ([1, 1, 2, 2, 3], 1.0, 1.0),  # labels differ, groups equal
        ([1, 1, 1, 1, 3], 0.2, 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3)),  # A and B merged: only C right
        ([1, 2, 3, 3, 4], 0.6, 2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3)),  # A split: B and C right
        ([1, 2, 3, 4, 5], 0.2, 2 * (1 / 5) * (1 / 3) / (1 / 5 + 1 / 3)),
        ([1, 1, 1, 1, 1], 0.0, 0.0),
    ],
)
def test_grouping_accuracy_and_f1(predicted: list[int], ga: float, fga: float) -> None:
    assert grouping_accuracy(predicted, TRUTH) == pytest.approx(ga)
    assert grouping_f1(predicted, TRUTH) == pytest.approx(fga)


def test_metrics_refuse_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="4 predictions for 5 lines"):
        grouping_accuracy([1, 1, 2, 2], TRUTH)
    with pytest.raises(ValueError, match="FGA"):
        grouping_f1([1], TRUTH)
    with pytest.raises(ValueError, match="parsing accuracy"):
        parsing_accuracy(["x"], ["x", "y"])


@pytest.mark.parametrize(
    ("template", "normalised"),
    [
        ("Receiving block <BLK> src: <IP> dest: <IP>", "Receiving block <*> src: <*> dest: <*>"),
        ("Took <NUM>.<NUM>  seconds", "Took <*> seconds"),  # joined wildcards, space runs
        ("size <*>ms, free <*><*>", "size <*>, free <*>"),  # a token holding a wildcard is one
        ("node-<*> port 8080", "node-<*> port <*>"),  # digit runs are values
        ("job_<*>_<*> done", "<*> done"),
        ("GET <*> HTTP/1.1", "GET <*> HTTP/<*>"),  # digits between delimiters too, on both sides
        ("no variables here", "no variables here"),
    ],
)
def test_normalise_template(template: str, normalised: str) -> None:
    assert normalise_template(template) == normalised


def test_parsing_accuracy_compares_normalised_text() -> None:
    truth = ["Took <*> seconds", "Took <*> seconds", "VM <*> started", "done"]
    predicted = ["Took <NUM> seconds", "Took <*>.<*> seconds", "VM <*> <*>", "done"]
    assert parsing_accuracy(predicted, truth) == pytest.approx(3 / 4)
    assert parsing_accuracy([], []) == 0.0
