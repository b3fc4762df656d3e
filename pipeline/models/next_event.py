"""The exportable next-event detector: vocabulary lookup, a network, softmax, top-k and the anomaly rule.

forward(window (B, L) template ids left-padded with 0, next_event (B, 1) template ids) returns
`(topk_ids (B, K) int64, topk_probs (B, K) float32, next_known (B, 1) bool, anomalous (B, 1) bool)`.
`anomalous` is True when the next event is unknown to the vocabulary (OOV) or not among the top-k
predictions. k lives in the module, so a worker acts on the output without any table of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.errors import ConfigError
from pipeline.models.deeplog import DeepLog, DeepLogConfig
from pipeline.models.lama import Lama, LamaConfig
from pipeline.models.vocab import Vocabulary

MODEL_KINDS = ("lama", "deeplog")
INPUT_NAMES = ("window", "next_event")
OUTPUT_NAMES = ("topk_ids", "topk_probs", "next_known", "anomalous")


class NextEventDetector(nn.Module):
    """The shared next-event contract around LAMA or DeepLog (see module docstring)."""

    def __init__(self, vocabulary: Vocabulary, network: nn.Module, top_k: int) -> None:
        super().__init__()
        if top_k < 1:
            raise ConfigError(f"next-event detector: top_k must be >= 1, got {top_k}")
        self.vocabulary = vocabulary
        self.network = network
        # k cannot exceed the number of known events; a smaller vocabulary simply flags only OOV.
        self.top_k: int = min(top_k, vocabulary.num_events)

    def forward(self, window: Tensor, next_event: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        indices = self.vocabulary.lookup(window)  # (B, L)
        probs = torch.softmax(self.network(indices), dim=-1)  # (B, E)
        topk_probs, topk_classes = torch.topk(probs, self.top_k, dim=-1)  # (B, K)
        topk_ids = self.vocabulary.ids_of_classes(topk_classes)  # (B, K)
        next_known = self.vocabulary.lookup(next_event) >= 2  # (B, 1); 0 = pad, 1 = OOV
        in_topk = (topk_ids == next_event).any(dim=1, keepdim=True)  # (B, 1)
        anomalous = ~(next_known & in_topk)
        return topk_ids, topk_probs.to(torch.float32), next_known, anomalous


def build_network(kind: str, config: LamaConfig | DeepLogConfig, vocabulary: Vocabulary) -> nn.Module:
    """A fresh, untrained LAMA or DeepLog sized for `vocabulary`."""
    if kind == "lama" and isinstance(config, LamaConfig):
        return Lama(config, vocabulary.num_indices, vocabulary.num_events)
    if kind == "deeplog" and isinstance(config, DeepLogConfig):
        return DeepLog(config, vocabulary.num_indices, vocabulary.num_events)
    raise ConfigError(
        f"next-event model: kind {kind!r} with config {type(config).__name__} is not supported; "
        f"use one of {MODEL_KINDS} with its own config class"
    )


def default_config(kind: str, window_size: int = 10, **changes: Any) -> LamaConfig | DeepLogConfig:
    """The paper defaults for `kind`, with keyword overrides (None values are ignored)."""
    values = {k: v for k, v in changes.items() if v is not None}
    if kind == "lama":
        return LamaConfig(window_size=window_size, **values)
    if kind == "deeplog":
        return DeepLogConfig(window_size=window_size, **values)
    raise ConfigError(f"next-event model: unknown kind {kind!r}; expected one of {MODEL_KINDS}")


def default_top_k(kind: str) -> int:
    """The paper's k: LAMA uses k in 4..6 (we default to 5), DeepLog uses g = 9 on HDFS."""
    return 5 if kind == "lama" else 9


def next_ranks(
    vocabulary: Vocabulary,
    network: nn.Module,
    windows: np.ndarray,
    nexts: np.ndarray,
    batch_size: int = 4096,
    device: str = "cpu",
) -> np.ndarray:
    """Rank (0 = most probable) of each true next event among known events; -1 when the next is OOV.

    A pair is anomalous at k exactly when its rank is -1 or >= k, so one pass scores every k.
    """
    ranks = np.empty(len(nexts), dtype=np.int64)
    vocabulary = vocabulary.to(device)
    network.eval()
    with torch.inference_mode():
        for start in range(0, len(nexts), batch_size):
            window = torch.as_tensor(windows[start : start + batch_size], device=device)
            nxt = torch.as_tensor(nexts[start : start + batch_size], device=device)
            logits = network(vocabulary.lookup(window))  # (B, E)
            cls = vocabulary.lookup(nxt) - 2  # (B,), negative when OOV or padding
            true_logit = logits.gather(1, cls.clamp(min=0)[:, None])  # (B, 1)
            rank = (logits > true_logit).sum(dim=1)
            ranks[start : start + len(nxt)] = torch.where(cls >= 0, rank, torch.full_like(rank, -1)).cpu()
    return ranks


def io_spec(window_size: int, top_k: int) -> dict[str, Any]:
    """Tensor names, Triton dtypes and per-item dims of the exported contract."""
    return {
        "inputs": [("window", "INT64", (window_size,)), ("next_event", "INT64", (1,))],
        "outputs": [
            ("topk_ids", "INT64", (top_k,)),
            ("topk_probs", "FP32", (top_k,)),
            ("next_known", "BOOL", (1,)),
            ("anomalous", "BOOL", (1,)),
        ],
    }


def known_ids_of(sessions: Iterable[Iterable[int]]) -> list[int]:
    """Every template id present in the training sessions (the vocabulary)."""
    return sorted({int(e) for s in sessions for e in s if int(e) != 0})
