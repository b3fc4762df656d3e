"""Episodic (N-way, K-shot) training of the ProtoSiamese encoder, as in LogAnMeta section III.

Each episode draws N classes, K support and up to Q query examples per class; prototypes come from
the support embeddings, `L_proto` from the query distances, `L_triplet` from random triplets of the
support set; the step minimises `1/2 (L_proto + L_triplet)` with AdamW, and a MultiStepLR (gamma 0.1)
decays the learning rate at the epoch milestones (the paper: 500 epochs, milestones 150 and 450).

Few-shot classes can be tiny: a class with n < K + Q examples gives min(K, n - 1) to the support set
and the rest to the query set, so support and query never share an example; a class with a single
example cannot be sampled (it still gets a prototype when the classifier is built).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from pipeline.errors import ConfigError
from pipeline.models.protosiamese import Encoder, class_prototypes, proto_loss, triplet_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Episode:
    """Indices into the training set; labels are episode-local (0..N-1, order of `classes`)."""

    classes: tuple[int, ...]
    support: np.ndarray
    support_labels: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray


class EpisodeSampler:
    """Seeded N-way K-shot episodes over integer labels.

    `always_include` (e.g. the normal class) is part of every episode, which mixes normal and
    anomalous examples in each task as the paper does; the other N - 1 classes are drawn at random.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        n_way: int,
        k_shot: int,
        q_query: int,
        seed: int = 0,
        always_include: int | None = None,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.by_class = {int(c): np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}
        self.eligible = sorted(c for c, idx in self.by_class.items() if len(idx) >= 2)
        if k_shot < 1 or q_query < 1:
            raise ConfigError(f"episodes: need k_shot >= 1 and q_query >= 1, got {k_shot} and {q_query}")
        if always_include is not None and always_include not in self.eligible:
            raise ConfigError(
                f"episodes: class {always_include} must have 2+ examples to be in every episode"
            )
        self.n_way = min(n_way, len(self.eligible))
        if self.n_way < 2:
            raise ConfigError(
                f"episodes: need 2+ classes with 2+ examples each, got {len(self.eligible)} "
                f"(class sizes { ({c: len(i) for c, i in self.by_class.items()}) }); add training data"
            )
        self.k_shot = k_shot
        self.q_query = q_query
        self.always_include = always_include
        self.rng = np.random.default_rng(seed)

    def sample(self) -> Episode:
        """Draw one episode."""
        pool = [c for c in self.eligible if c != self.always_include]
        fixed = [] if self.always_include is None else [self.always_include]
        drawn = self.rng.choice(pool, size=self.n_way - len(fixed), replace=False).tolist()
        classes = tuple(int(c) for c in fixed + drawn)
        support, support_labels, query, query_labels = [], [], [], []
        for local, cls in enumerate(classes):
            members = self.rng.permutation(self.by_class[cls])
            k = min(self.k_shot, len(members) - 1)
            q = min(self.q_query, len(members) - k)
            support.append(members[:k])
            query.append(members[k : k + q])
            support_labels.append(np.full(k, local))
            query_labels.append(np.full(q, local))
        return Episode(
            classes=classes,
            support=np.concatenate(support),
            support_labels=np.concatenate(support_labels),
            query=np.concatenate(query),
            query_labels=np.concatenate(query_labels),
        )


@dataclass(frozen=True)
class EpisodicConfig:
    """Defaults are the paper's: 2-way 2-shot, 500 epochs, AdamW lr 1e-3, milestones 150/450, gamma 0.1."""

    n_way: int = 2
    k_shot: int = 2
    q_query: int = 2
    epochs: int = 500
    episodes_per_epoch: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-2
    milestones: tuple[int, ...] = (150, 450)
    gamma: float = 0.1
    n_triplets: int = 16
    margin: float = 1.0
    always_include: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float
    proto_loss: float
    triplet_loss: float
    query_accuracy: float
    lr: float


def episode_loss(
    encoder: Encoder, features: Tensor, episode: Episode, config: EpisodicConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(L_hybrid, L_proto, L_triplet, query accuracy) of one episode."""
    support_labels = torch.from_numpy(episode.support_labels)
    z_support = encoder(features[torch.from_numpy(episode.support)])  # (N*K, D)
    z_query = encoder(features[torch.from_numpy(episode.query)])  # (N*Q, D)
    prototypes = class_prototypes(z_support, support_labels, len(episode.classes))  # (N, D)
    l_proto, accuracy = proto_loss(z_query, torch.from_numpy(episode.query_labels), prototypes)
    l_triplet = triplet_loss(z_support, support_labels, config.n_triplets, config.margin, generator)
    return 0.5 * (l_proto + l_triplet), l_proto, l_triplet, accuracy


def train_episodic(
    encoder: Encoder,
    features: Tensor,
    labels: Sequence[int] | np.ndarray,
    config: EpisodicConfig,
    progress: bool = True,
) -> list[EpochStats]:
    """Train `encoder` in place on TF-IDF rows `features` (n, V) with integer `labels` (n,)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = EpisodeSampler(
        labels, config.n_way, config.k_shot, config.q_query, config.seed, config.always_include
    )
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.milestones), gamma=config.gamma
    )
    history: list[EpochStats] = []
    encoder.train()
    bar = tqdm(range(config.epochs), desc="protosiamese episodes", disable=not progress, leave=False)
    for epoch in bar:
        totals = np.zeros(4)
        for _ in range(config.episodes_per_epoch):
            loss, l_proto, l_triplet, accuracy = episode_loss(
                encoder, features, sampler.sample(), config, generator
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            totals += [loss.item(), l_proto.item(), l_triplet.item(), accuracy.item()]
        means = totals / config.episodes_per_epoch
        history.append(EpochStats(epoch, *means.tolist(), lr=optimizer.param_groups[0]["lr"]))
        scheduler.step()
        bar.set_postfix(loss=f"{means[0]:.3f}", acc=f"{means[3]:.2f}")
    encoder.eval()
    log.info(
        "episodic training: final loss %.4f, query accuracy %.3f",
        history[-1].loss,
        history[-1].query_accuracy,
    )
    return history
