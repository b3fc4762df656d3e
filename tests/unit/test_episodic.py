import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models.protosiamese import Encoder, ProtoSiameseConfig
from pipeline.training.episodic import EpisodeSampler, EpisodicConfig, train_episodic

LABELS = np.array([0] * 20 + [1] * 10 + [2] * 3 + [3] * 1)


@pytest.mark.parametrize(("n_way", "k_shot", "q_query"), [(2, 2, 2), (3, 1, 5), (4, 5, 5)])
def test_episode_shape_and_disjoint_support_and_query(n_way: int, k_shot: int, q_query: int) -> None:
    sampler = EpisodeSampler(LABELS, n_way, k_shot, q_query, seed=1, always_include=0)
    for _ in range(20):
        ep = sampler.sample()
        assert ep.classes[0] == 0
        assert len(set(ep.classes)) == len(ep.classes) == min(n_way, 3)  # class 3 has one example
        assert not set(ep.support) & set(ep.query)
        for local, cls in enumerate(ep.classes):
            support = ep.support[ep.support_labels == local]
            query = ep.query[ep.query_labels == local]
            assert np.all(LABELS[support] == cls) and np.all(LABELS[query] == cls)
            assert 1 <= len(support) <= k_shot and 1 <= len(query) <= q_query


def test_tiny_class_is_split_not_reused() -> None:
    sampler = EpisodeSampler(np.array([0, 0, 0, 0, 1, 1]), 2, 5, 5, seed=0)
    ep = sampler.sample()
    local = ep.classes.index(1)
    assert (ep.support_labels == local).sum() == 1 and (ep.query_labels == local).sum() == 1


def test_sampling_is_seeded() -> None:
    a = EpisodeSampler(LABELS, 2, 2, 2, seed=7).sample()
    b = EpisodeSampler(LABELS, 2, 2, 2, seed=7).sample()
    assert a.classes == b.classes and a.support.tolist() == b.support.tolist()


@pytest.mark.parametrize("labels", [np.array([0, 0, 1]), np.array([0])])
def test_too_few_classes_is_a_config_error(labels: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="2\\+ classes"):
        EpisodeSampler(labels, 2, 1, 1)


def test_training_reduces_loss_on_separable_data() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    x = torch.tensor(rng.normal(scale=0.3, size=(90, 12)), dtype=torch.float32)
    x[torch.arange(90), torch.from_numpy(labels)] += 2.0
    encoder = Encoder(ProtoSiameseConfig(12, hidden_dims=(32, 32), embedding_dim=8, dropout=0.0))
    config = EpisodicConfig(n_way=3, k_shot=2, q_query=3, epochs=40, episodes_per_epoch=5, milestones=(35,))
    history = train_episodic(encoder, x, labels, config, progress=False)
    assert len(history) == 40
    assert history[-1].loss < history[0].loss
    assert np.mean([h.query_accuracy for h in history[-5:]]) > 0.85
    assert history[-1].lr == pytest.approx(1e-4)  # decayed by 0.1 at epoch 35
    assert not encoder.training
