import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models.lama import Lama, LamaConfig, sinusoidal_positions

SMALL = LamaConfig(window_size=5, d_model=16, feed_forward=32, heads=2, layers=2, dropout=0.0)


def test_output_shape_and_no_nan_on_all_padding_row():
    torch.manual_seed(0)
    model = Lama(SMALL, num_indices=8, num_events=6).eval()
    logits = model(torch.tensor([[0, 0, 0, 0, 0], [0, 0, 2, 3, 4], [2, 3, 4, 5, 6]]))
    assert logits.shape == (3, 6)
    assert torch.isfinite(logits).all()


def test_padding_is_masked():
    # Whatever the padding embedding holds, a padded window's prediction must not change.
    torch.manual_seed(0)
    model = Lama(SMALL, num_indices=8, num_events=6).eval()
    window = torch.tensor([[0, 0, 2, 3, 4]])
    before = model(window)
    with torch.no_grad():
        model.embed.weight[0] = torch.randn(16) * 10
    assert torch.allclose(model(window), before, atol=1e-5)


def test_positions_are_sinusoidal():
    table = sinusoidal_positions(4, 8)
    assert table.shape == (4, 8)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0] * 4))
    assert table[1, 0] == pytest.approx(torch.sin(torch.tensor(1.0)).item())


def test_heads_must_divide_d_model():
    with pytest.raises(ConfigError, match="divisible"):
        LamaConfig(d_model=10, heads=4)
