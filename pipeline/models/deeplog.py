"""DeepLog's log-key model (Du et al. 2017): a stacked LSTM over one-hot log keys, next-key softmax.

The paper's HDFS setting: 2 layers of 64 units, window h = 10, anomalous when the next key is not
among the top g = 9 candidates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class DeepLogConfig:
    """Hyper-parameters of the log-key model (paper defaults)."""

    window_size: int = 10
    hidden: int = 64
    layers: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeepLog(nn.Module):
    """forward(indices (B, L) int64 vocabulary indices, 0 = padding) -> logits (B, num_events)."""

    def __init__(self, config: DeepLogConfig, num_indices: int, num_events: int) -> None:
        super().__init__()
        self.config = config
        self.num_indices = num_indices
        self.lstm = nn.LSTM(num_indices, config.hidden, config.layers, batch_first=True)
        self.head = nn.Linear(config.hidden, num_events)

    def forward(self, indices: Tensor) -> Tensor:
        # One-hot keys as in the paper; padding has its own column, so it reads as "no event yet".
        x = torch.nn.functional.one_hot(indices, self.num_indices).to(torch.float32)  # (B, L, V)
        out, _ = self.lstm(x)  # (B, L, H)
        return self.head(out[:, -1])  # (B, E)
