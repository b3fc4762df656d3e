from __future__ import annotations

import inspect
import io
import math

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.model_repository import ModelSpec, TensorSpec, render_config
from pipeline.models.parameters import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    ParameterModelConfig,
    ParameterValueModel,
    gaussian_bound,
    io_spec,
    schema_of,
)
from pipeline.parameter_features import ELAPSED, FeatureSchema, KeyFeatures

SCHEMA = FeatureSchema({10: KeyFeatures(10, 1, (ELAPSED,)), 20: KeyFeatures(20, 3, (ELAPSED, 1))})
H = 4


def model(log_elapsed: bool = False) -> ParameterValueModel:
    torch.manual_seed(0)
    config = ParameterModelConfig(window_size=H, hidden=8, layers=1, key_embedding=3, log_elapsed=log_elapsed)
    net = ParameterValueModel(config, SCHEMA)
    net.set_normalisation(np.array([[1.0, 0.0], [2.0, 100.0]]), np.array([[0.5, 1.0], [1.0, 10.0]]))
    net.set_thresholds(np.array([1.0, 4.0]))
    return net.eval()


def batch(ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    template_id = torch.tensor(ids, dtype=torch.int64).unsqueeze(1)  # (B, 1)
    history = torch.rand(len(ids), H, 2, generator=gen) * 10  # (B, h, D)
    observed = torch.rand(len(ids), 2, generator=gen) * 10  # (B, D)
    return template_id, history, observed


def zero_predictor(net: ParameterValueModel) -> ParameterValueModel:
    """The head always predicts 0 (the key's mean), so the error is the mean squared z-score."""
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    return net


def test_output_shapes_and_dtypes() -> None:
    outputs = model()(*batch([10, 20, 20]))
    assert [tuple(o.shape) for o in outputs] == [(3, 1), (3, 1), (3, 1), (3, 2), (3, 2)]
    assert outputs[2].dtype == torch.bool and all(
        o.dtype == torch.float32 for i, o in enumerate(outputs) if i != 2
    )
    assert schema_of(model()) == SCHEMA


@pytest.mark.parametrize(
    ("tid", "observed", "error", "anomalous"),
    [
        (10, [1.0, 0.0], 0.0, False),  # at the mean
        (10, [1.5, 0.0], 1.0, False),  # 1 std: error 1.0, threshold 1.0 is not exceeded
        (10, [1.6, 0.0], 1.44, True),
        (10, [1.0, 999.0], 0.0, False),  # the padding column never counts
        (20, [4.0, 100.0], 2.0, False),  # (2^2 + 0^2) / 2 features
        (20, [4.0, 130.0], 6.5, True),  # (2^2 + 3^2) / 2 > 4
        (77, [50.0, 50.0], 0.0, False),  # no model for the key: never anomalous
    ],
)
def test_threshold_rule(tid: int, observed: list[float], error: float, anomalous: bool) -> None:
    net = zero_predictor(model())
    history = torch.zeros(1, H, 2)
    err, threshold, flag, low, high = net(torch.tensor([[tid]]), history, torch.tensor([observed]))
    assert err.item() == pytest.approx(error, rel=1e-5)
    assert bool(flag.item()) is anomalous
    assert threshold.item() == {10: 1.0, 20: 4.0}.get(tid, 0.0)
    if tid == 20:
        # One feature alone may stray sqrt(threshold * features) = sqrt(8) std from the prediction.
        reach = math.sqrt(8)
        assert low[0].tolist() == pytest.approx([2.0 - reach, 100.0 - 10 * reach], rel=1e-5)
        assert high[0].tolist() == pytest.approx([2.0 + reach, 100.0 + 10 * reach], rel=1e-5)
    if tid == 77:
        assert low.abs().sum().item() == 0.0 and high.abs().sum().item() == 0.0


def test_log_elapsed_scale_round_trips_the_range() -> None:
    net = zero_predictor(model(log_elapsed=True))
    _, _, _, low, high = net(torch.tensor([[10]]), torch.zeros(1, H, 2), torch.tensor([[0.0, 0.0]]))
    # mean 1.0 and std 0.5 are on the log1p scale; the range comes back in seconds.
    assert low[0, 0].item() == pytest.approx(math.expm1(0.5), rel=1e-5)
    assert high[0, 0].item() == pytest.approx(math.expm1(1.5), rel=1e-5)


def test_gaussian_bound() -> None:
    assert gaussian_bound(1.0, 2.0, 3.0) == 7.0
    assert gaussian_bound(np.array([0.0, 1.0]), np.array([1.0, 0.5]), 2.0).tolist() == [2.0, 2.0]
    with pytest.raises(ConfigError):
        gaussian_bound(1.0, 1.0, 0.0)


def test_torchscript_round_trip_equals_eager() -> None:
    net = model()
    inputs = batch([20, 10, 20, 5])
    scripted = torch.jit.script(net)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    with torch.inference_mode():
        for eager, script in zip(net(*inputs), loaded(*inputs), strict=True):
            assert torch.equal(eager, script)
    assert schema_of(loaded) == SCHEMA and int(loaded.window_size) == H


def test_names_match_forward_and_config() -> None:
    assert tuple(inspect.signature(ParameterValueModel.forward).parameters)[1:] == INPUT_NAMES
    spec = io_spec(H, SCHEMA.width)
    assert tuple(t[0] for t in spec["inputs"]) == INPUT_NAMES
    assert tuple(t[0] for t in spec["outputs"]) == OUTPUT_NAMES
    config = render_config(
        ModelSpec(
            "deeplog_params",
            tuple(TensorSpec(*t) for t in spec["inputs"]),
            tuple(TensorSpec(*t) for t in spec["outputs"]),
        )
    )
    for name in INPUT_NAMES + OUTPUT_NAMES:
        assert f'name: "{name}"' in config
    assert "dims: [ 4, 2 ]" in config  # history (h, D)


def test_no_key_no_model() -> None:
    with pytest.raises(ConfigError):
        ParameterValueModel(ParameterModelConfig(), FeatureSchema({}))
