"""DeepLog's parameter value model (Du et al. 2017, section 3.2): is a normal key's value vector normal?

Each log key's parameter value vectors (`pipeline.parameter_features`: elapsed time, then numeric
parameters) form a time series across all sessions. An LSTM reads the key's last h vectors,
normalised with the key's training mean and standard deviation, and predicts the next one; the
prediction error is the mean squared error over the key's features. The errors of held-out normal
vectors are modelled as a Gaussian per key, and a vector is anomalous when its error lies above the
Gaussian's upper confidence bound, mean + z * std (z = 3.09 is the one-sided 99.9% level; training
picks z).

Design: one LSTM shared by all keys, told the key by a learnt embedding, instead of the paper's one
LSTM per key. TorchScript cannot index a ModuleDict with a key known only at run time, so per-key
modules would mean a Python loop over every key on every batch; one network scores a batch of
mixed keys in one call (and one Triton request), and rare keys borrow the dynamics learnt on common
ones. What the paper keeps per key stays per key: normalisation, feature set and threshold, all in
buffers, so a worker holds no table that could disagree with the model version it scores with.

With `log_elapsed` (an option, off by default), elapsed time enters as sign(x) * log(1 + |x|) before
normalisation, for logs whose durations are heavy-tailed and slow by a factor. Numeric parameters
always stay raw, as in the paper.

forward(template_id (B, 1) int64, history (B, h, D) float32, observed (B, D) float32), raw values
with unused columns 0, returns `(error (B, 1), threshold (B, 1), anomalous (B, 1) bool,
expected_low (B, D), expected_high (B, D))`: the range, in raw units, within which one feature alone
may lie (the others as predicted) without the error passing the threshold. Keys without a model
(unknown ids) give zeros everywhere and are never anomalous.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.errors import ConfigError
from pipeline.parameter_features import ELAPSED, PADDING, FeatureSchema

T = TypeVar("T", float, np.ndarray)

INPUT_NAMES = ("template_id", "history", "observed")
OUTPUT_NAMES = ("error", "threshold", "anomalous", "expected_low", "expected_high")


@dataclass(frozen=True)
class ParameterModelConfig:
    """Hyper-parameters of the parameter value model."""

    window_size: int = 10  # h: vectors of the key read before the one predicted
    hidden: int = 64
    layers: int = 2
    key_embedding: int = 8
    input_clip: float = 10.0  # history inputs clipped to +-10 std: one absurd value cannot swamp the LSTM
    # Off by default, as in the paper: on HDFS_100k's normal blocks, where most gaps are 0 s, the log
    # scale shrank the spread and flagged more validation sessions (18% vs 10% at 0.999).
    log_elapsed: bool = False

    def __post_init__(self) -> None:
        if self.window_size < 1 or self.hidden < 1 or self.layers < 1 or self.key_embedding < 1:
            raise ConfigError(f"parameter model: sizes must be >= 1, got {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gaussian_bound(mean: T, std: T, sigmas: float) -> T:
    """The upper bound of N(mean, std) `sigmas` standard deviations above the mean (floats or arrays)."""
    if not sigmas > 0:
        raise ConfigError(f"parameter threshold: sigmas must be > 0, got {sigmas}")
    return mean + sigmas * std


class ParameterValueModel(nn.Module):
    """All keys' parameter models in one exportable module (see the module docstring).

    Built untrained with mean 0, std 1 and threshold 0; training sets them with `set_normalisation`
    (statistics of `transform`ed values) and `set_thresholds`.
    """

    def __init__(self, config: ParameterModelConfig, schema: FeatureSchema) -> None:
        super().__init__()
        key_ids, param_counts, sources = schema.to_tables()
        if not key_ids:
            raise ConfigError("parameter model: no key has features; nothing to model")
        count, width = len(key_ids), schema.width
        self.window_size: int = config.window_size
        self.width: int = width
        self.input_clip: float = config.input_clip
        source_table = torch.tensor(sources, dtype=torch.int64)  # (K, D)
        logged = (source_table == ELAPSED) & config.log_elapsed
        self.register_buffer("key_ids", torch.tensor(key_ids, dtype=torch.int64))  # (K,) sorted
        self.register_buffer("param_counts", torch.tensor(param_counts, dtype=torch.int64))  # (K,)
        self.register_buffer("feature_sources", source_table)  # (K, D)
        self.register_buffer("feature_mask", (source_table != PADDING).to(torch.float32))  # (K, D)
        self.register_buffer("log_scale", logged)  # (K, D) bool
        self.register_buffer("mean", torch.zeros(count, width))  # (K, D), transformed units
        self.register_buffer("std", torch.ones(count, width))  # (K, D), transformed units
        self.register_buffer("threshold", torch.zeros(count))  # (K,)
        self.embedding = nn.Embedding(count, config.key_embedding)
        self.lstm = nn.LSTM(width + config.key_embedding, config.hidden, config.layers, batch_first=True)
        self.head = nn.Linear(config.hidden, width)

    @torch.jit.unused
    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Per key and feature `(K, D)`, of transformed values; padding columns should be 0 and 1."""
        if mean.shape != tuple(self.mean.shape) or std.shape != tuple(self.std.shape):
            raise ConfigError(
                f"parameter model: mean and std must be {tuple(self.mean.shape)}, got "
                f"{mean.shape} and {std.shape}"
            )
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    @torch.jit.unused
    def set_thresholds(self, threshold: np.ndarray) -> None:
        """Per key `(K,)`: the error above which a vector is anomalous."""
        self.threshold.copy_(torch.as_tensor(threshold, dtype=torch.float32).reshape(self.threshold.shape))

    def rows(self, template_id: Tensor) -> tuple[Tensor, Tensor]:
        """Row of each id in the key tables `(B,)` and whether the key has a model `(B,)`."""
        ids = template_id.reshape(-1).to(torch.int64)  # (B,)
        row = torch.searchsorted(self.key_ids, ids.contiguous()).clamp(max=self.key_ids.numel() - 1)
        return row, self.key_ids[row] == ids

    def transform(self, row: Tensor, values: Tensor) -> Tensor:
        """Raw values `(B, ..., D)` of key rows `(B,)` on the model's scale (log for elapsed time)."""
        logged = self.log_scale[row]  # (B, D)
        while logged.dim() < values.dim():
            logged = logged.unsqueeze(1)
        return torch.where(logged, torch.sign(values) * torch.log1p(values.abs()), values)

    def untransform(self, row: Tensor, values: Tensor) -> Tensor:
        """Inverse of `transform` for `(B, D)` values."""
        return torch.where(self.log_scale[row], torch.sign(values) * torch.expm1(values.abs()), values)

    def forward(
        self, template_id: Tensor, history: Tensor, observed: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        row, modelled = self.rows(template_id)  # (B,), (B,)
        mean, std, mask = self.mean[row], self.std[row], self.feature_mask[row]  # (B, D) each
        x = (self.transform(row, history) - mean.unsqueeze(1)) / std.unsqueeze(1)  # (B, h, D)
        x = (x * mask.unsqueeze(1)).clamp(-self.input_clip, self.input_clip)
        key = self.embedding(row).unsqueeze(1).expand(-1, history.size(1), -1)  # (B, h, E)
        out, _ = self.lstm(torch.cat([x, key], dim=2))  # (B, h, H)
        predicted = self.head(out[:, -1]) * mask  # (B, D), normalised
        target = (self.transform(row, observed) - mean) / std * mask  # (B, D)
        features = mask.sum(dim=1)  # (B,)
        error = ((predicted - target) ** 2).sum(dim=1) / features.clamp(min=1.0)  # (B,)
        known = modelled.to(torch.float32)  # (B,)
        threshold = self.threshold[row] * known  # (B,)
        anomalous = modelled & (error > threshold)  # (B,)
        # One feature alone may move by sqrt(threshold * features) std before the mean error passes.
        reach = torch.sqrt(threshold * features).unsqueeze(1)  # (B, 1)
        keep = mask * known.unsqueeze(1)  # (B, D)
        low = self.untransform(row, (predicted - reach) * std + mean) * keep  # (B, D)
        high = self.untransform(row, (predicted + reach) * std + mean) * keep  # (B, D)
        return (error * known).unsqueeze(1), threshold.unsqueeze(1), anomalous.unsqueeze(1), low, high


def schema_of(module: Any) -> FeatureSchema:
    """The feature schema a (scripted or eager) `ParameterValueModel` was built with."""
    return FeatureSchema.from_tables(
        module.key_ids.tolist(), module.param_counts.tolist(), module.feature_sources.tolist()
    )


def io_spec(window_size: int, width: int) -> dict[str, list[tuple[str, str, tuple[int, ...]]]]:
    """Triton input/output names, dtypes and dims (batch dimension excluded), matching `forward`."""
    return {
        "inputs": [
            ("template_id", "INT64", (1,)),
            ("history", "FP32", (window_size, width)),
            ("observed", "FP32", (width,)),
        ],
        "outputs": [
            ("error", "FP32", (1,)),
            ("threshold", "FP32", (1,)),
            ("anomalous", "BOOL", (1,)),
            ("expected_low", "FP32", (width,)),
            ("expected_high", "FP32", (width,)),
        ],
    }
