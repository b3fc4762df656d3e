"""Template-count vectors per window and their TF-IDF weighting: one featurizer for training and serving.

A window arrives as two padded rows, `template_ids` (int64, 0 = padding) and `counts` (float32), the
same pair the ProtoSiamese model receives from Triton. `TfidfFeaturizer` is a scriptable module that
maps ids to columns of a fitted vocabulary and applies sklearn's default weighting (raw count times
smooth idf `ln((1 + n) / (1 + df)) + 1`, then L2 row normalisation). Training calls the same module
on the same padded pairs, so the two paths cannot drift apart.

Column 0 collects templates unknown to the vocabulary (OOV): a template never seen in training is
itself a signal, so it gets the largest idf (df = 0) instead of being dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.errors import DataError
from pipeline.windows import PAD_ID

OOV_COLUMN = 0

WindowCounts = Mapping[int, int]
"""Template id -> number of occurrences in one window."""


@dataclass(frozen=True)
class Idf:
    """A fitted vocabulary: sorted template ids (column i + 1) and the idf of each column (OOV first)."""

    template_ids: tuple[int, ...]
    weights: tuple[float, ...]
    n_windows: int

    @property
    def n_columns(self) -> int:
        return len(self.template_ids) + 1

    def column(self, template_id: int) -> int:
        """Column of a template id; OOV_COLUMN when unknown."""
        i = int(np.searchsorted(np.asarray(self.template_ids, dtype=np.int64), template_id))
        if i < len(self.template_ids) and self.template_ids[i] == template_id:
            return i + 1
        return OOV_COLUMN

    def to_json(self) -> dict[str, object]:
        return {
            "template_ids": list(self.template_ids),
            "weights": list(self.weights),
            "n_windows": self.n_windows,
        }


def fit_idf(windows: Sequence[WindowCounts]) -> Idf:
    """Fit the vocabulary and smooth idf on training windows (document frequency per template id)."""
    if not windows:
        raise DataError("tfidf fit: expected at least one training window, got none; check the window input")
    df: dict[int, int] = {}
    for window in windows:
        for template_id, count in window.items():
            if template_id != PAD_ID and count > 0:
                df[template_id] = df.get(template_id, 0) + 1
    n = len(windows)
    ids = tuple(sorted(df))
    oov = math.log((1 + n) / 1) + 1.0
    weights = (oov, *(math.log((1 + n) / (1 + df[i])) + 1.0 for i in ids))
    return Idf(template_ids=ids, weights=weights, n_windows=n)


def pad_windows(windows: Sequence[WindowCounts], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Padded `(template_ids int64 (B, M), counts float32 (B, M))`, ids sorted per row, 0 as padding.

    `width` defaults to the largest number of distinct templates in a window; a window with more
    distinct templates than `width` is an error rather than silently truncated.
    """
    need = max((sum(1 for t, c in w.items() if t != PAD_ID and c > 0) for w in windows), default=0)
    width = max(need, 1) if width is None else width
    if need > width:
        raise DataError(
            f"tfidf padding: a window holds {need} distinct templates but width is {width}; "
            "raise the width (or leave it unset to fit the widest window)"
        )
    ids = np.zeros((len(windows), width), dtype=np.int64)
    counts = np.zeros((len(windows), width), dtype=np.float32)
    for row, window in enumerate(windows):
        items = sorted((t, c) for t, c in window.items() if t != PAD_ID and c > 0)
        for col, (template_id, count) in enumerate(items):
            ids[row, col] = template_id
            counts[row, col] = count
    return ids, counts


class TfidfFeaturizer(nn.Module):
    """(template_ids int64 (B, M), counts float32 (B, M)) -> L2-normalised TF-IDF rows (B, V + 1)."""

    def __init__(self, idf: Idf, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize
        self.register_buffer("vocab", torch.tensor(idf.template_ids, dtype=torch.int64).reshape(-1))
        self.register_buffer("idf", torch.tensor(idf.weights, dtype=torch.float32))
        self.n_columns = idf.n_columns

    def forward(self, template_ids: Tensor, counts: Tensor) -> Tensor:
        vocab: Tensor = self.vocab
        n_vocab = vocab.shape[0]
        if n_vocab == 0:
            columns = torch.zeros_like(template_ids)
        else:
            pos = torch.searchsorted(vocab, template_ids.contiguous())  # (B, M)
            safe = pos.clamp(max=n_vocab - 1)
            found = vocab[safe] == template_ids
            columns = torch.where(found, safe + 1, torch.zeros_like(safe))
        # Padding has count 0, so whatever column it maps to gains nothing.
        weights = counts.to(torch.float32) * (template_ids != 0).to(torch.float32)  # 0 = PAD_ID
        tf = torch.zeros(template_ids.shape[0], self.n_columns, dtype=torch.float32, device=counts.device)
        tf = tf.scatter_add(1, columns, weights)  # (B, V + 1)
        x = tf * self.idf
        if self.normalize:
            x = x / x.norm(p=2.0, dim=1, keepdim=True).clamp_min(1e-12)
        return x


def tfidf_matrix(windows: Sequence[WindowCounts], idf: Idf) -> np.ndarray:
    """TF-IDF rows `(B, V + 1)` float32 for windows: the featurizer applied to their padded pairs."""
    ids, counts = pad_windows(windows)
    with torch.no_grad():
        out = TfidfFeaturizer(idf)(torch.from_numpy(ids), torch.from_numpy(counts))
    return out.numpy()
