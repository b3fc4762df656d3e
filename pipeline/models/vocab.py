"""Template id -> model index mapping that travels inside the exported model (TorchScript-friendly).

Index 0 is padding (id 0), index 1 is out-of-vocabulary (any id unseen in training), and the known
ids, sorted ascending, take indices 2..n+1. Lookup is a `searchsorted` over the sorted ids, so the
vocabulary is one int64 buffer and a worker never keeps an id table of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from pipeline.errors import DataError

PAD_INDEX = 0
OOV_INDEX = 1
FIRST_EVENT_INDEX = 2


class Vocabulary(nn.Module):
    """Sorted known template ids; `lookup` maps ids to indices, `ids_of_classes` maps classes back."""

    def __init__(self, known_ids: Iterable[int]) -> None:
        super().__init__()
        ids = sorted({int(i) for i in known_ids})
        if not ids:
            raise DataError("vocabulary: expected at least one template id from training, got none")
        if ids[0] <= 0:
            raise DataError(f"vocabulary: template ids must be positive (0 is padding), got {ids[0]}")
        self.register_buffer("sorted_ids", torch.tensor(ids, dtype=torch.int64))
        # Known events: the width of a model's prediction layer.
        self.num_events: int = len(ids)
        # Known events plus padding and OOV: the size of an embedding table.
        self.num_indices: int = len(ids) + FIRST_EVENT_INDEX

    @torch.jit.unused
    def known_ids(self) -> list[int]:
        return [int(i) for i in self.sorted_ids.tolist()]

    def lookup(self, ids: Tensor) -> Tensor:
        """Indices (same shape as `ids`): 0 for padding, 1 for OOV, 2.. for known ids."""
        ids = ids.to(torch.int64)
        pos = torch.searchsorted(self.sorted_ids, ids.contiguous())
        clamped = pos.clamp(max=self.sorted_ids.numel() - 1)
        found = self.sorted_ids[clamped] == ids
        # Literals, not the module constants: TorchScript cannot close over Python globals.
        index = torch.where(found, clamped + 2, torch.ones_like(ids))
        return torch.where(ids == 0, torch.zeros_like(ids), index)

    def ids_of_classes(self, classes: Tensor) -> Tensor:
        """Template ids of prediction-layer classes (class c is known id number c)."""
        return self.sorted_ids[classes]

    def forward(self, ids: Tensor) -> Tensor:
        return self.lookup(ids)
