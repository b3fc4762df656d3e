"""LogAnMeta's Table I baselines: supervised feed-forward classifiers on the same TF-IDF rows.

Both are 3-layer nets (input -> 128 -> 64 -> outputs, ReLU, dropout 0.5), trained with Adam and
plain cross-entropy for 100 epochs in batches of 32; the binary one predicts normal vs anomalous, the
multi-class one every class. Deviation: the paper's learning rate of 1e-6 barely moves the weights
in 100 epochs on a few hundred windows, so the default here is 1e-3 (the paper's value is one option
away); an untrained baseline would make the comparison meaningless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from pipeline.errors import DataError


@dataclass(frozen=True)
class BaselineConfig:
    hidden_dims: tuple[int, ...] = (128, 64)
    dropout: float = 0.5
    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0


class FeedForwardClassifier(nn.Module):
    """TF-IDF row (B, V) -> class logits (B, n_outputs)."""

    def __init__(self, input_dim: int, n_outputs: int, config: BaselineConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def train_classifier(
    features: np.ndarray, labels: np.ndarray, n_outputs: int, config: BaselineConfig, progress: bool = True
) -> tuple[FeedForwardClassifier, list[float]]:
    """Train a new classifier on rows `features` (n, V), labels in [0, n_outputs); mean loss per epoch."""
    if len(features) != len(labels) or len(features) == 0:
        raise DataError(
            f"baseline training: need one label per row (1+ rows), got {len(features)} rows, "
            f"{len(labels)} labels; pass matching arrays"
        )
    torch.manual_seed(config.seed)
    model = FeedForwardClassifier(features.shape[1], n_outputs, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.int64)
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    model.train()
    for _ in tqdm(
        range(config.epochs), desc=f"{n_outputs}-class baseline", disable=not progress, leave=False
    ):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x))
    model.eval()
    return model, losses


def predict(model: FeedForwardClassifier, features: np.ndarray) -> np.ndarray:
    """Predicted class per row (n,) int64, in eval mode."""
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(features, dtype=torch.float32)).argmax(dim=1).numpy()
