"""LAMA (Guo et al. 2021): multi-head self-attention over a window of events, predicting the next one.

Event embedding plus sinusoidal positional embedding, `layers` stacked self-attention blocks with a
point-wise feed-forward layer (post-norm, as in Vaswani et al.), and a prediction layer over the
events seen in training. The window's last position summarises it: with left padding the last
position always holds the most recent real event.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class LamaConfig:
    """Hyper-parameters; defaults are the paper's Table 1 with the best Table 3 setting (b=4, h=8)."""

    window_size: int = 10
    d_model: int = 256
    feed_forward: int = 1024
    heads: int = 8
    layers: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ConfigError(
                f"LAMA config: d_model ({self.d_model}) must be divisible by heads ({self.heads}); "
                f"pick heads from 2/4/8 with d_model 256"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """Vaswani et al.'s fixed positional embedding, `(length, dim)`."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class Lama(nn.Module):
    """forward(indices (B, L) int64 vocabulary indices, 0 = padding) -> logits (B, num_events)."""

    def __init__(self, config: LamaConfig, num_indices: int, num_events: int) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(num_indices, config.d_model, padding_idx=0)
        self.register_buffer("positions", sinusoidal_positions(config.window_size, config.d_model))
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            [
                nn.TransformerEncoderLayer(
                    config.d_model,
                    config.heads,
                    config.feed_forward,
                    config.dropout,
                    batch_first=True,
                )
                for _ in range(config.layers)
            ]
        )
        self.head = nn.Linear(config.d_model, num_events)

    def forward(self, indices: Tensor) -> Tensor:
        length = indices.size(1)
        x = self.embed(indices) * math.sqrt(self.embed.embedding_dim)  # (B, L, D)
        x = self.dropout(x + self.positions[-length:])
        padding = indices == 0  # (B, L), True where attention must not look
        # The last position is never masked: an all-padding row would otherwise give NaN attention.
        padding[:, -1] = False
        for block in self.blocks:
            x = block(x, src_key_padding_mask=padding)  # (B, L, D)
        return self.head(x[:, -1])  # (B, E)
