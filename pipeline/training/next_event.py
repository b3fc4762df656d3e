"""Training loop for the next-event models (LAMA, DeepLog): seeded, tqdm progress, CPU or CUDA.

Sessions repeat heavily, so by default the loop trains on distinct (window, next) pairs, each with
weight one: an epoch costs ~20x less than one over every window on HDFS, and rare but normal
transitions weigh as much as common ones, which is what a top-k rule needs (weighting by count, the
every-window objective, left the session-end transitions unlearnt in 5 epochs on deeplog_train).
The top-k threshold is chosen on held-out normal sessions (never on test data): the smallest
candidate k whose session false-positive rate stays within `max_validation_fpr`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.errors import ConfigError
from pipeline.models.deeplog import DeepLogConfig
from pipeline.models.lama import LamaConfig
from pipeline.models.next_event import NextEventDetector, build_network, known_ids_of, next_ranks
from pipeline.models.vocab import Vocabulary
from pipeline.version_checks import ValidationFpr
from pipeline.windows import PAD_ID, SESSION_END_ID, count_pairs, next_event_windows

log = logging.getLogger(__name__)


# A rank no k reaches: the target of a short session's pair under full windows is the padding, which
# no model predicts (the papers' rule that flags every session of at most l events).
UNPREDICTABLE_RANK = 1 << 30

# LAMA: the paper's 5 epochs. DeepLog's small LSTM needs more passes over the distinct pairs to learn
# the session-end transitions (measured on deeplog_train with `logad evaluate hdfs-1-99`).
DEFAULT_EPOCHS = {"lama": 5, "deeplog": 20}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the LAMA paper: 5 epochs, batch 128; Adam as both papers' code)."""

    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    dedupe: bool = True
    pair_weight: str = "one"  # distinct pairs weighted "one" each, by "count" (= every window), "sqrt"
    end_of_session: bool = True
    full_windows: bool = False  # the papers' windowing (see pipeline.windows), for reproduction only
    validation_fraction: float = 0.1
    top_k_candidates: tuple[int, ...] = (4, 5, 6)
    max_validation_fpr: float = 0.0

    @classmethod
    def for_model(cls, kind: str, **changes: Any) -> TrainConfig:
        """The defaults of `kind`: its epochs, and its papers' k (LAMA 4..6, chosen on validation;
        DeepLog g = 9, since its small LSTM spreads probability over more candidates)."""
        candidates = (4, 5, 6) if kind == "lama" else (9,)
        return cls(**{"epochs": DEFAULT_EPOCHS[kind], "top_k_candidates": candidates, **changes})


@dataclass(frozen=True)
class TrainedModel:
    """A trained network with its vocabulary, chosen k, curves and validation metrics."""

    kind: str
    config: LamaConfig | DeepLogConfig
    vocabulary: Vocabulary
    network: nn.Module
    top_k: int
    curves: dict[str, list[float]]
    validation: dict[str, float]
    train_config: TrainConfig
    extra: dict[str, Any] = field(default_factory=dict)

    def detector(self) -> NextEventDetector:
        """The exportable module (on CPU, eval mode)."""
        return NextEventDetector(self.vocabulary.cpu(), self.network.cpu(), self.top_k).eval()

    def validation_fpr(self) -> ValidationFpr:
        """The share of validation sessions flagged at the chosen k (the publishing gate's figure)."""
        sessions = int(self.validation.get("sessions", 0))
        fpr = self.validation.get(f"fpr_at_{self.top_k}", float("nan")) if sessions else 0.0
        return ValidationFpr(float(fpr), sessions, f"k = {self.top_k}")

    def metadata(self) -> dict[str, Any]:
        """Everything a model version must carry besides its weights."""
        return {
            "kind": self.kind,
            "window_size": self.config.window_size,
            "top_k": self.top_k,
            "vocabulary": self.vocabulary.known_ids(),
            "hyper_parameters": self.config.to_dict(),
            "training": {k: v for k, v in asdict(self.train_config).items()},
            "validation": self.validation,
            "session_end_id": SESSION_END_ID if self.train_config.end_of_session else None,
            **self.extra,
        }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_sessions(
    sessions: Sequence[Sequence[int]], fraction: float, seed: int
) -> tuple[list[Sequence[int]], list[Sequence[int]]]:
    """A seeded random split into (fit, validation) sessions."""
    order = np.random.default_rng(seed).permutation(len(sessions))
    cut = round(len(sessions) * fraction)
    return [sessions[i] for i in order[cut:]], [sessions[i] for i in order[:cut]]


def train_next_event(
    kind: str,
    config: LamaConfig | DeepLogConfig,
    sessions: Sequence[Sequence[int]],
    train_config: TrainConfig,
    progress: bool = True,
) -> TrainedModel:
    """Train LAMA or DeepLog on normal sessions of template ids and choose k on a validation split."""
    if not sessions:
        raise ConfigError("training: expected at least one normal session, got none; check the input file")
    if not train_config.top_k_candidates:
        raise ConfigError("training: top_k_candidates is empty; give at least one k")
    seed_everything(train_config.seed)
    fit, held_out = split_sessions(sessions, train_config.validation_fraction, train_config.seed)
    end = train_config.end_of_session
    vocabulary = Vocabulary(known_ids_of(fit) + ([SESSION_END_ID] if end else []))
    device = torch.device(train_config.device)
    network = build_network(kind, config, vocabulary).to(device)
    lookup = vocabulary.to(device)

    windows, nexts, counts = _training_pairs(
        fit, config.window_size, train_config.dedupe, end, train_config.full_windows
    )
    x = lookup.lookup(torch.as_tensor(windows, device=device))
    y = lookup.lookup(torch.as_tensor(nexts, device=device)) - 2
    w = _pair_weights(counts, train_config.pair_weight).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=train_config.learning_rate)
    generator = torch.Generator().manual_seed(train_config.seed)
    curves: dict[str, list[float]] = {"step_loss": [], "epoch_loss": [], "validation_loss": []}
    steps = (len(y) + train_config.batch_size - 1) // train_config.batch_size
    log.info("training %s on %d pairs (%d windows), %d steps/epoch", kind, len(y), int(counts.sum()), steps)
    for epoch in range(train_config.epochs):
        network.train()
        order = torch.randperm(len(y), generator=generator).to(device)
        total, weight = 0.0, 0.0
        bar = tqdm(range(steps), desc=f"{kind} epoch {epoch + 1}/{train_config.epochs}", disable=not progress)
        for step in bar:
            batch = order[step * train_config.batch_size : (step + 1) * train_config.batch_size]
            per_pair = nn.functional.cross_entropy(network(x[batch]), y[batch], reduction="none")
            loss = (per_pair * w[batch]).sum() / w[batch].sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value, batch_weight = loss.item(), float(w[batch].sum())
            curves["step_loss"].append(value)
            total += value * batch_weight
            weight += batch_weight
            bar.set_postfix(loss=f"{value:.4f}")
        curves["epoch_loss"].append(total / max(weight, 1.0))
        curves["validation_loss"].append(
            _mean_loss(network, lookup, held_out, config.window_size, end, device, train_config.full_windows)
        )
    top_k, validation = _choose_top_k(network, lookup, held_out, config.window_size, train_config, device)
    validation["loss"] = curves["validation_loss"][-1] if curves["validation_loss"] else float("nan")
    network.eval()
    return TrainedModel(kind, config, vocabulary, network, top_k, curves, validation, train_config)


def _training_pairs(
    sessions: Sequence[Sequence[int]],
    window_size: int,
    dedupe: bool,
    end_of_session: bool,
    full_windows: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if dedupe:
        windows, nexts, counts = count_pairs(sessions, window_size, end_of_session, full_windows)
    else:
        parts = [next_event_windows(s, window_size, end_of_session, full_windows) for s in sessions]
        windows = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, window_size), np.int64)
        nexts = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        counts = np.ones(len(nexts), dtype=np.int64)
    # A padding target (short session, full windows) is no class: nothing to learn from it.
    keep = nexts != PAD_ID
    return windows[keep], nexts[keep], counts[keep]


def _pair_weights(counts: np.ndarray, scheme: str) -> torch.Tensor:
    counts_t = torch.as_tensor(counts, dtype=torch.float32)
    if scheme == "count":
        return counts_t
    if scheme == "sqrt":
        return counts_t.sqrt()
    if scheme == "one":
        return torch.ones_like(counts_t)
    raise ConfigError(f"training: pair_weight must be 'count', 'sqrt' or 'one', got {scheme!r}")


def _mean_loss(
    network: nn.Module,
    vocabulary: Vocabulary,
    sessions: Sequence[Sequence[int]],
    window_size: int,
    end_of_session: bool,
    device: Any,
    full_windows: bool = False,
) -> float:
    windows, nexts, counts = count_pairs(sessions, window_size, end_of_session, full_windows)
    if not len(nexts):
        return float("nan")
    network.eval()
    with torch.inference_mode():
        cls = vocabulary.lookup(torch.as_tensor(nexts, device=device)) - 2
        known = cls >= 0  # held-out OOV (and padding) targets have no class to score
        logits = network(vocabulary.lookup(torch.as_tensor(windows, device=device)))
        per_pair = nn.functional.cross_entropy(logits[known], cls[known], reduction="none")
        weights = torch.as_tensor(counts, dtype=torch.float32, device=device)[known]
        return float((per_pair * weights).sum() / weights.sum().clamp(min=1.0))


def _choose_top_k(
    network: nn.Module,
    vocabulary: Vocabulary,
    sessions: Sequence[Sequence[int]],
    window_size: int,
    train_config: TrainConfig,
    device: Any,
) -> tuple[int, dict[str, float]]:
    candidates = sorted(train_config.top_k_candidates)
    if not sessions:
        return candidates[-1], {"sessions": 0.0}
    worst = session_worst_ranks(
        network,
        vocabulary,
        sessions,
        window_size,
        train_config.end_of_session,
        device,
        full_windows=train_config.full_windows,
    )
    validation: dict[str, float] = {"sessions": float(len(sessions))}
    chosen = candidates[-1]
    for k in reversed(candidates):
        fpr = float(np.mean((worst < 0) | (worst >= k)))
        validation[f"fpr_at_{k}"] = fpr
        if fpr <= train_config.max_validation_fpr:
            chosen = k
    validation["top_k"] = float(chosen)
    return chosen, validation


def session_worst_ranks(
    network: nn.Module,
    vocabulary: Vocabulary,
    sessions: Sequence[Sequence[int]],
    window_size: int,
    end_of_session: bool = True,
    device: Any = "cpu",
    *,
    full_windows: bool = False,
) -> np.ndarray:
    """Per session: -1 if it holds an OOV event, else the worst (largest) rank of any of its next events.

    A session is anomalous at k exactly when this value is -1 or >= k; scoring runs once per distinct
    (window, next) pair. With `full_windows`, a session of at most `window_size` events gets
    `UNPREDICTABLE_RANK` (anomalous at every k, but not counted as OOV).
    """
    pair_index: dict[tuple[int, ...], int] = {}
    members: list[list[int]] = []
    for session in sessions:
        windows, nexts = next_event_windows(session, window_size, end_of_session, full_windows)
        rows = np.concatenate([windows, nexts[:, None]], axis=1).tolist()
        members.append([pair_index.setdefault(tuple(r), len(pair_index)) for r in rows])
    worst = np.zeros(len(sessions), dtype=np.int64)
    ranks = np.zeros(0, dtype=np.int64)
    if pair_index:
        table = np.asarray(list(pair_index.keys()), dtype=np.int64)
        ranks = next_ranks(vocabulary, network, table[:, :window_size], table[:, window_size], device=device)
        ranks[table[:, window_size] == PAD_ID] = UNPREDICTABLE_RANK
    known = vocabulary.cpu()
    for i, (session, idx) in enumerate(zip(sessions, members, strict=True)):
        has_oov = bool((known.lookup(torch.as_tensor(np.asarray(session, dtype=np.int64))) == 1).any())
        session_ranks = ranks[idx] if idx else np.zeros(1, dtype=np.int64)
        worst[i] = -1 if has_oov or (session_ranks < 0).any() else int(session_ranks.max())
    return worst


def save_curves_png(
    curves: dict[str, list[float]], path: Path, title: str, loss: str = "weighted cross-entropy"
) -> Path:
    """Plot the training curves (matplotlib Agg, no display needed); `loss` names the y axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(curves.get("step_loss", []), linewidth=0.8)
    left.set(xlabel="step", ylabel=loss, title="training loss per step")
    epochs = range(1, len(curves.get("epoch_loss", [])) + 1)
    right.plot(epochs, curves.get("epoch_loss", []), marker="o", label="train")
    right.plot(epochs, curves.get("validation_loss", []), marker="o", label="validation")
    right.set(xlabel="epoch", ylabel=loss, title="per epoch")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
