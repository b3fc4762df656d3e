import math

import numpy as np
import pytest
import torch

from pipeline.errors import DataError
from pipeline.tfidf import OOV_COLUMN, TfidfFeaturizer, fit_idf, pad_windows, tfidf_matrix

WINDOWS = [{5: 2, 9: 1}, {5: 1}, {7: 3}]


def test_fit_idf_is_sorted_with_smooth_weights() -> None:
    idf = fit_idf(WINDOWS)
    assert idf.template_ids == (5, 7, 9)
    n = 3
    assert idf.weights[0] == pytest.approx(math.log(1 + n) + 1)  # OOV: df = 0
    assert idf.weights[1] == pytest.approx(math.log((1 + n) / (1 + 2)) + 1)  # template 5 in 2 windows
    assert idf.weights[2] == pytest.approx(math.log((1 + n) / (1 + 1)) + 1)


@pytest.mark.parametrize(
    ("template_id", "column"), [(5, 1), (7, 2), (9, 3), (6, OOV_COLUMN), (1, OOV_COLUMN), (99, OOV_COLUMN)]
)
def test_column_lookup(template_id: int, column: int) -> None:
    assert fit_idf(WINDOWS).column(template_id) == column


def test_pad_windows_sorts_ids_and_pads_with_zero() -> None:
    ids, counts = pad_windows([{9: 1, 5: 2}, {7: 3}])
    assert ids.tolist() == [[5, 9], [7, 0]]
    assert counts.tolist() == [[2.0, 1.0], [3.0, 0.0]]
    with pytest.raises(DataError, match="width"):
        pad_windows([{1: 1, 2: 1}], width=1)


def test_featurizer_matches_hand_computed_tfidf() -> None:
    idf = fit_idf(WINDOWS)
    out = tfidf_matrix([{5: 2, 9: 1, 1234: 1}], idf)
    expected = np.array([1 * idf.weights[0], 2 * idf.weights[1], 0.0, 1 * idf.weights[3]])
    np.testing.assert_allclose(out[0], expected / np.linalg.norm(expected), rtol=1e-6)


def test_padding_contributes_nothing_and_width_does_not_matter() -> None:
    idf = fit_idf(WINDOWS)
    featurizer = TfidfFeaturizer(idf)
    narrow = featurizer(torch.tensor([[5, 9]]), torch.tensor([[2.0, 1.0]]))
    wide = featurizer(torch.tensor([[5, 9, 0, 0]]), torch.tensor([[2.0, 1.0, 0.0, 0.0]]))
    torch.testing.assert_close(narrow, wide)


def test_featurizer_scripts_to_the_same_output() -> None:
    idf = fit_idf(WINDOWS)
    ids, counts = (torch.from_numpy(a) for a in pad_windows([{5: 2, 9: 1}, {7: 1, 3: 4}]))
    eager = TfidfFeaturizer(idf)
    torch.testing.assert_close(torch.jit.script(eager)(ids, counts), eager(ids, counts))


def test_fit_on_nothing_is_an_error() -> None:
    with pytest.raises(DataError, match="at least one"):
        fit_idf([])
