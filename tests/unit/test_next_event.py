import pytest
import torch
from torch import nn

from pipeline.models.deeplog import DeepLogConfig
from pipeline.models.lama import LamaConfig
from pipeline.models.next_event import NextEventDetector, build_network, io_spec, next_ranks
from pipeline.models.vocab import Vocabulary
from pipeline.training.next_event import TrainConfig, session_worst_ranks, train_next_event

CONFIGS = {
    "lama": LamaConfig(window_size=4, d_model=16, feed_forward=32, heads=2, layers=1, dropout=0.0),
    "deeplog": DeepLogConfig(window_size=4, hidden=8, layers=1),
}


class FixedLogits(nn.Module):
    """A network that always predicts the same distribution (class 0 most likely)."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits))

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(indices.size(0), -1)


@pytest.mark.parametrize(
    ("next_id", "top_k", "known", "anomalous"),
    [
        (10, 1, True, False),  # the most likely event
        (20, 1, True, True),  # known but second
        (20, 2, True, False),
        (40, 3, True, True),  # least likely, outside top-3
        (77, 4, False, True),  # OOV: anomalous whatever k
    ],
)
def test_top_k_rule(next_id, top_k, known, anomalous):
    vocab = Vocabulary([10, 20, 30, 40])
    detector = NextEventDetector(vocab, FixedLogits([4.0, 3.0, 2.0, 1.0]), top_k)
    ids, probs, next_known, flag = detector(torch.tensor([[0, 0, 10, 20]]), torch.tensor([[next_id]]))
    assert ids.tolist() == [[10, 20, 30, 40][:top_k]]
    assert probs.dtype == torch.float32 and bool((probs[:, :-1] >= probs[:, 1:]).all())
    assert next_known.tolist() == [[known]] and flag.tolist() == [[anomalous]]


@pytest.mark.parametrize("kind", ["lama", "deeplog"])
def test_scripted_output_equals_eager(kind):
    torch.manual_seed(0)
    vocab = Vocabulary([3, 5, 7, 9, 11])
    detector = NextEventDetector(vocab, build_network(kind, CONFIGS[kind], vocab), 2).eval()
    window = torch.tensor([[0, 0, 0, 3], [3, 5, 7, 9], [3, 99, 5, 7]])
    nxt = torch.tensor([[5], [99], [11]])
    eager = detector(window, nxt)
    scripted = torch.jit.script(detector)(window, nxt)
    names = [name for name, _, _ in io_spec(4, 2)["outputs"]]
    assert names == ["topk_ids", "topk_probs", "next_known", "anomalous"]
    for a, b in zip(eager, scripted, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert eager[0].shape == (3, 2) and eager[2].tolist() == [[True], [False], [True]]
    assert eager[3][1].item() is True  # OOV next event


def test_ranks_agree_with_the_detector():
    vocab = Vocabulary([10, 20, 30])
    network = FixedLogits([1.0, 3.0, 2.0])
    windows = torch.zeros(4, 3, dtype=torch.int64).numpy()
    ranks = next_ranks(vocab, network, windows, torch.tensor([20, 30, 10, 55]).numpy())
    assert ranks.tolist() == [0, 1, 2, -1]


@pytest.mark.parametrize("kind", ["lama", "deeplog"])
def test_training_learns_normal_sessions_and_flags_others(kind):
    normal = [(1, 2, 3, 4, 5)] * 30 + [(1, 2, 3, 6, 5)] * 30
    config = TrainConfig(epochs=30, batch_size=8, learning_rate=0.01, top_k_candidates=(1, 2), seed=1)
    trained = train_next_event(kind, CONFIGS[kind], normal, config, progress=False)
    assert trained.curves["epoch_loss"][-1] < trained.curves["epoch_loss"][0]
    worst = session_worst_ranks(trained.network, trained.vocabulary, [(1, 2, 3, 4, 5), (1, 2), (1, 9)], 4)
    assert worst[0] in (0, 1) and worst[1] >= 2 and worst[2] == -1  # normal, ends early, OOV
    assert trained.top_k == 2 and trained.metadata()["vocabulary"][:6] == [1, 2, 3, 4, 5, 6]


def test_publish_round_trip(tmp_path):
    from pipeline.model_repository import load_version
    from pipeline.training.raw_logs import publish_trained

    normal = [(1, 2, 3, 4)] * 20
    config = TrainConfig(epochs=1, batch_size=8, top_k_candidates=(2,))
    trained = train_next_event("deeplog", CONFIGS["deeplog"], normal, config, progress=False)
    published = publish_trained(
        tmp_path, trained, None, None, {"training_data_sha256": "digest"}, unservable_reason="unit test"
    )
    loaded = load_version(tmp_path, "deeplog")
    assert loaded.version == published.version == 1
    assert loaded.metadata["top_k"] == 2 and loaded.metadata["training_data_sha256"] == "digest"
    window, nxt = torch.tensor([[0, 0, 1, 2]]), torch.tensor([[3]])
    for a, b in zip(loaded.module(window, nxt), trained.detector()(window, nxt), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert 'name: "topk_ids"' in (tmp_path / "deeplog" / "config.pbtxt").read_text()


def test_full_windows_flag_short_sessions_without_calling_them_oov():
    from pipeline.training.next_event import UNPREDICTABLE_RANK

    normal = [(1, 2, 3, 4, 5, 6)] * 20
    config = TrainConfig(
        epochs=2, batch_size=8, top_k_candidates=(2,), end_of_session=False, full_windows=True
    )
    trained = train_next_event("deeplog", CONFIGS["deeplog"], normal, config, progress=False)
    worst = session_worst_ranks(
        trained.network, trained.vocabulary, [(1, 2, 3, 4, 5, 6), (1, 2), (1, 9)], 4, False, full_windows=True
    )
    assert 0 <= worst[0] < UNPREDICTABLE_RANK
    assert worst[1] == UNPREDICTABLE_RANK and worst[2] == -1  # short (anomalous, not OOV), OOV
