"""config.pbtxt for both layouts: every generated config parses with Triton's own `ModelConfig`
protobuf, and a libtorch config is served by the TorchScript module as written (loaded from disk,
called with the names, dims and dtypes of its config, answering the config's outputs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from pipeline.commands.serving import verify_before_load
from pipeline.errors import ConfigError, ModelError
from pipeline.model_repository import (
    CONFIG_FILE,
    MODEL_FILE,
    ModelSpec,
    pinned_version,
    publish_version,
    write_pinned_config,
)
from pipeline.models import parameters as parameter_model
from pipeline.models.next_event import io_spec
from pipeline.models.protosiamese import model_spec as protosiamese_spec
from pipeline.models.protosiamese import script as script_protosiamese
from pipeline.settings import Settings
from pipeline.templates import TemplateMiner
from pipeline.training.next_event import TrainConfig, train_next_event
from pipeline.training.raw_logs import publish_trained
from pipeline.triton_config import Device, Platform, ServingLayout, render_config
from tests.unit.test_next_event import CONFIGS
from tests.unit.test_parameter_model import SCHEMA, H
from tests.unit.test_parameter_model import model as parameter_net
from tests.unit.test_protosiamese import _classifier

LAYOUTS = [
    ServingLayout(Platform.PYTHON, Device.CPU),
    ServingLayout(Platform.LIBTORCH, Device.CPU),
    ServingLayout(Platform.LIBTORCH, Device.GPU),
]
TORCH_DTYPES = {
    model_config_pb2.TYPE_INT64: torch.int64,
    model_config_pb2.TYPE_FP32: torch.float32,
    model_config_pb2.TYPE_BOOL: torch.bool,
}
VARIABLE_WIDTH = 5  # what a -1 dim gets in a test request


def parse(text: str) -> model_config_pb2.ModelConfig:
    """Triton's own parser of config.pbtxt: a typo or an unknown field raises ParseError."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _specs() -> list[ModelSpec]:
    next_event = ModelSpec.from_io("lama", io_spec(10, 9))
    params = ModelSpec.from_io("deeplog_params", parameter_model.io_spec(H, SCHEMA.width))
    return [next_event, params, protosiamese_spec(3)]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: f"{lay.platform}-{lay.device}")
@pytest.mark.parametrize("spec", _specs(), ids=lambda s: s.name)
def test_every_config_parses_with_tritons_model_config(spec: ModelSpec, layout: ServingLayout) -> None:
    config = parse(render_config(spec, layout, pinned=7 if layout.platform is Platform.LIBTORCH else None))
    assert config.name == spec.name and config.max_batch_size == spec.max_batch_size
    if layout.platform is Platform.LIBTORCH:
        assert (config.platform, config.backend) == ("pytorch_libtorch", "")
        assert config.default_model_filename == "model.pt"
        assert list(config.version_policy.specific.versions) == [7]
        assert config.parameters["INFERENCE_MODE"].string_value == "true"
    else:
        assert (config.platform, config.backend) == ("", "python")
        assert config.version_policy.latest.num_versions == 1
    group = model_config_pb2.ModelInstanceGroup
    kind = group.KIND_GPU if layout.device is Device.GPU else group.KIND_CPU
    assert [(g.kind, g.count) for g in config.instance_group] == [(kind, 1)]
    for declared, parsed in ((spec.inputs, config.input), (spec.outputs, config.output)):
        assert [(t.name, f"TYPE_{t.dtype}", tuple(t.dims)) for t in declared] == [
            (p.name, model_config_pb2.DataType.Name(p.data_type), tuple(p.dims)) for p in parsed
        ]
    assert config.dynamic_batching.max_queue_delay_microseconds == spec.max_queue_delay_us


def test_a_broken_config_does_not_parse() -> None:
    text = render_config(_specs()[0], LAYOUTS[1], pinned=1)
    with pytest.raises(text_format.ParseError):
        parse(text.replace("TYPE_INT64", "TYPE_LONG", 1))
    with pytest.raises(text_format.ParseError):
        parse(text.replace("instance_group", "instance_groups"))


def assert_serves(module_path: Path, config: model_config_pb2.ModelConfig, batch: int = 3) -> None:
    """What the libtorch backend does with this config: bind inputs to `forward`'s arguments by
    name, call it on a batch, and read the outputs in config order with their dims and dtypes."""
    module = torch.jit.load(str(module_path), map_location="cpu")
    arguments = [a.name for a in module.forward.schema.arguments[1:]]  # without self
    assert [i.name for i in config.input] == arguments
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for tensor in config.input:
        shape = (batch, *(VARIABLE_WIDTH if d == -1 else d for d in tensor.dims))
        dtype = TORCH_DTYPES[tensor.data_type]
        if dtype is torch.int64:
            inputs.append(torch.randint(0, 30, shape, generator=generator))
        else:
            inputs.append(torch.rand(shape, generator=generator).to(dtype))
    with torch.inference_mode():
        result = module(*inputs)
    outputs = result if isinstance(result, tuple) else (result,)
    assert len(outputs) == len(config.output)
    for tensor, out in zip(config.output, outputs, strict=True):
        assert out.dtype == TORCH_DTYPES[tensor.data_type], tensor.name
        assert out.shape[0] == batch
        assert all(d == -1 or d == n for d, n in zip(tensor.dims, out.shape[1:], strict=True)), tensor.name


def _miner() -> TemplateMiner:
    miner = TemplateMiner()
    for i in range(1, 7):
        miner.learn(f"event {'x ' * i}<*>")
    miner.freeze()
    return miner


@pytest.mark.parametrize("kind", ["lama", "deeplog"])
def test_logad_train_publishes_a_libtorch_version_its_module_serves(kind: str, tmp_path: Path) -> None:
    miner = _miner()
    ids = list(miner.templates())
    normal = [tuple(ids[:5])] * 20
    config = TrainConfig(epochs=1, batch_size=8, top_k_candidates=(2,))
    trained = train_next_event(kind, CONFIGS[kind], normal, config, progress=False)
    layout = ServingLayout(Platform.LIBTORCH, Device.GPU)
    published = publish_trained(tmp_path, trained, miner, "hdfs", {}, layout=layout)
    parsed = parse((tmp_path / kind / CONFIG_FILE).read_text())
    assert parsed.platform == "pytorch_libtorch"
    assert list(parsed.version_policy.specific.versions) == [published.version]
    assert_serves(published.path / MODEL_FILE, parsed)


@pytest.mark.parametrize("which", ["deeplog_params", "protosiamese"])
def test_the_other_models_serve_their_libtorch_config(which: str, tmp_path: Path) -> None:
    if which == "deeplog_params":
        scripted = torch.jit.script(parameter_net())
        spec = ModelSpec.from_io(which, parameter_model.io_spec(H, SCHEMA.width))
    else:
        scripted = script_protosiamese(_classifier()[0])
        spec = protosiamese_spec(3)
    torch.jit.save(scripted, str(tmp_path / MODEL_FILE))
    assert_serves(tmp_path / MODEL_FILE, parse(render_config(spec, LAYOUTS[1], pinned=1)))


def test_the_pin_moves_only_to_versions_that_pass_their_sha256(tmp_path: Path) -> None:
    miner = _miner()
    ids = list(miner.templates())
    trained = train_next_event(
        "deeplog",
        CONFIGS["deeplog"],
        [tuple(ids[:5])] * 20,
        TrainConfig(epochs=1, batch_size=8),
        progress=False,
    )
    layout = ServingLayout(Platform.LIBTORCH, Device.CPU)
    first = publish_trained(tmp_path, trained, miner, "hdfs", {}, layout=layout)
    second = publish_trained(tmp_path, trained, miner, "hdfs", {}, layout=layout)
    assert pinned_version(tmp_path, "deeplog") == second.version == 2
    settings = Settings(model_repo=tmp_path, triton_platform="libtorch")
    verify_before_load(settings, "deeplog")  # passes: the pinned version is intact

    with (second.path / MODEL_FILE).open("r+b") as fh:  # corrupted after publishing
        fh.seek(100)
        fh.write(b"\x00" * 8)
    with pytest.raises(ModelError, match="checksum mismatch"):
        verify_before_load(settings, "deeplog")
    spec = ModelSpec.from_io("deeplog", io_spec(CONFIGS["deeplog"].window_size, trained.top_k))
    assert write_pinned_config(tmp_path, spec, layout) == first.version
    verify_before_load(settings, "deeplog")  # the pin fell back to the intact version
    verify_before_load(Settings(model_repo=tmp_path / "none"), "deeplog")  # python: the runner checks


@pytest.mark.parametrize(
    ("platform", "device", "complaint"),
    [
        ("onnx", "cpu", "LOGAD_TRITON_PLATFORM='onnx' is not one of python, libtorch"),
        ("libtorch", "tpu", "LOGAD_TRITON_DEVICE='tpu' is not one of cpu, gpu"),
        ("python", "gpu", "LOGAD_TRITON_DEVICE=gpu needs LOGAD_TRITON_PLATFORM=libtorch"),
    ],
)
def test_bad_layout_settings_are_config_errors(platform: str, device: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint.replace("(", r"\(")):
        Settings(triton_platform=platform, triton_device=device).serving_layout()
    assert ServingLayout.parse(" LibTorch ", "GPU") == ServingLayout(Platform.LIBTORCH, Device.GPU)


def test_a_spec_whose_inputs_are_not_forwards_arguments_is_refused_for_libtorch(tmp_path: Path) -> None:
    scripted = torch.jit.script(parameter_net())
    spec = ModelSpec.from_io("deeplog_params", parameter_model.io_spec(H, SCHEMA.width))
    swapped = dataclasses.replace(spec, inputs=(spec.inputs[1], spec.inputs[0], spec.inputs[2]))
    layout = ServingLayout(Platform.LIBTORCH, Device.CPU)
    with pytest.raises(ModelError, match=r"inputs \['history', 'template_id', 'observed'\] are not"):
        publish_version(tmp_path, swapped, scripted, {}, unservable_reason="unit test", layout=layout)
    assert not (tmp_path / "deeplog_params").exists()  # refused before anything was written
