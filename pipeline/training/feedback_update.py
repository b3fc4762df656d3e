"""Online update of a next-event model from operator feedback (DeepLog Sec. 3.3).

The serving version is fine-tuned on the (window, next event) pairs operators marked normal, mixed
with a replay of its own training pairs so that it does not forget what it knew; k is chosen again on
the same validation sessions as in training, and the allowlist entries the new network now ranks
within its k are retired (the model has learnt them; the allowlist keeps only what it has not).
A marked pair whose next event the vocabulary does not know (OOV) cannot be learnt without a new
output class, so it stays on the allowlist.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.errors import ConfigError
from pipeline.feedback import PairAllowlist
from pipeline.models.next_event import next_ranks
from pipeline.training.next_event import (
    TrainedModel,
    _choose_top_k,
    _training_pairs,
    seed_everything,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpdateConfig:
    """Fine-tuning settings. `marked_repeat`: how often each marked pair is drawn per epoch (they are
    few among thousands of replayed pairs, and each must move the network)."""

    epochs: int = 2
    learning_rate: float = 3e-4
    batch_size: int = 128
    marked_repeat: int = 20
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def from_options(cls, options: Any) -> UpdateConfig:
        """From parsed command-line options (`train --update` and `evaluate hdfs-1-99 --feedback-from`
        share their names: update_epochs, update_learning_rate, batch_size, marked_repeat, seed, device)."""
        return cls(
            epochs=options.update_epochs,
            learning_rate=options.update_learning_rate,
            batch_size=options.batch_size,
            marked_repeat=options.marked_repeat,
            seed=options.seed,
            device=options.device,
        )


@dataclass(frozen=True)
class UpdateResult:
    """The updated model, what it learnt and what it retired from the allowlist."""

    trained: TrainedModel
    learnable_pairs: int  # marked pairs with a known next event (trained on)
    unlearnable_pairs: int  # marked pairs whose next event is OOV (kept on the allowlist)
    retired: int  # allowlist pairs the new version ranks within its k
    replay_pairs: int


def fine_tune(
    trained: TrainedModel,
    marked: PairAllowlist,
    fit_sessions: Sequence[Sequence[int]],
    validation_sessions: Sequence[Sequence[int]],
    config: UpdateConfig,
    progress: bool = True,
) -> UpdateResult:
    """A new `TrainedModel`: `trained` fine-tuned on `marked` plus a replay of `fit_sessions`'
    distinct pairs, k chosen again on `validation_sessions` (the training's held-out split)."""
    if config.epochs < 1 or config.marked_repeat < 1:
        raise ConfigError("update: epochs and marked_repeat must be >= 1")
    seed_everything(config.seed)
    device = torch.device(config.device)
    vocabulary = trained.vocabulary.to(device)
    network = copy.deepcopy(trained.network).to(device)
    window = trained.config.window_size
    marked_windows, marked_nexts = marked.pairs()
    known = (vocabulary.lookup(torch.as_tensor(marked_nexts, device=device)) >= 2).cpu().numpy()
    learn_windows, learn_nexts = marked_windows[known], marked_nexts[known]
    replay_windows, replay_nexts, _ = _training_pairs(
        fit_sessions, window, True, trained.train_config.end_of_session, trained.train_config.full_windows
    )
    windows = np.concatenate([replay_windows, np.repeat(learn_windows, config.marked_repeat, axis=0)])
    nexts = np.concatenate([replay_nexts, np.repeat(learn_nexts, config.marked_repeat)])
    if len(learn_nexts):
        x = vocabulary.lookup(torch.as_tensor(windows, device=device))
        y = vocabulary.lookup(torch.as_tensor(nexts, device=device)) - 2
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        generator = torch.Generator().manual_seed(config.seed)
        steps = (len(y) + config.batch_size - 1) // config.batch_size
        for epoch in range(config.epochs):
            network.train()
            order = torch.randperm(len(y), generator=generator).to(device)
            bar = tqdm(
                range(steps), desc=f"update {trained.kind} {epoch + 1}/{config.epochs}", disable=not progress
            )
            for step in bar:
                batch = order[step * config.batch_size : (step + 1) * config.batch_size]
                loss = nn.functional.cross_entropy(network(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.set_postfix(loss=f"{loss.item():.4f}")
    network.eval()
    train_config = replace(trained.train_config, device=config.device)
    top_k, validation = _choose_top_k(network, vocabulary, validation_sessions, window, train_config, device)
    updated = replace(trained, network=network, top_k=top_k, validation=validation)
    retired = retire_learnt(updated, marked, config.device)
    log.info(
        "update %s: %d marked pairs learnt, %d OOV kept, k %d -> %d, %d retired from the allowlist",
        trained.kind,
        int(known.sum()),
        int((~known).sum()),
        trained.top_k,
        top_k,
        retired,
    )
    return UpdateResult(updated, int(known.sum()), int((~known).sum()), retired, len(replay_nexts))


def retire_learnt(trained: TrainedModel, allowlist: PairAllowlist, device: Any = "cpu") -> int:
    """Drop from `allowlist` every pair `trained` now ranks within its k; returns how many."""
    windows, nexts = allowlist.pairs()
    if not len(nexts):
        return 0
    ranks = next_ranks(trained.vocabulary, trained.network, windows, nexts, device=str(device))
    learnt = (ranks >= 0) & (ranks < trained.top_k)
    for window, nxt in zip(windows[learnt], nexts[learnt], strict=True):
        allowlist.discard(window.tolist(), int(nxt))
    return int(learnt.sum())


def trained_from_version(kind: str, module: Any, metadata: dict[str, Any]) -> TrainedModel:
    """A `TrainedModel` of a published next-event version (its scripted module and metadata), with an
    eager network holding the version's weights, ready to fine-tune."""
    from pipeline.models.deeplog import DeepLogConfig
    from pipeline.models.lama import LamaConfig
    from pipeline.models.next_event import build_network
    from pipeline.models.vocab import Vocabulary
    from pipeline.training.next_event import TrainConfig

    if metadata.get("kind") != kind:
        raise ConfigError(f"update: the version is a {metadata.get('kind')!r} model, not {kind!r}")
    config_class = LamaConfig if kind == "lama" else DeepLogConfig
    config = config_class(**metadata["hyper_parameters"])
    training = dict(metadata.get("training", {}))
    training["top_k_candidates"] = tuple(training.get("top_k_candidates", (metadata["top_k"],)))
    train_config = TrainConfig(**training)
    vocabulary = Vocabulary(metadata["vocabulary"])
    network = build_network(kind, config, vocabulary)
    network.load_state_dict(module.network.state_dict())
    network.eval()
    validation = {k: float(v) for k, v in metadata.get("validation", {}).items()}
    return TrainedModel(
        kind, config, vocabulary, network, int(metadata["top_k"]), {}, validation, train_config
    )


def retire_rows(allowlist: PairAllowlist, rows: Sequence[Sequence[int]]) -> int:
    """Drop the pairs a version's metadata lists as learnt (`feedback.retired_pairs`: window + next)."""
    return sum(allowlist.discard(list(row[:-1]), int(row[-1])) for row in rows)
