"""`config.pbtxt` for the two ways Triton serves a published version.

- `python` (default): the generic Python-backend runner (`model.py`, `pipeline.adapters.triton_runner`)
  that the local Triton binary serves. It checks model.pt's sha256 itself before loading, and
  always runs on CPU.
- `libtorch`: `platform: "pytorch_libtorch"`, served natively by the stock Triton container (which
  has no torch inside its Python backend), on CPU or GPU instances. Inputs are named as `forward`'s
  arguments (the backend binds them by name) and outputs in the order `forward` returns them (the
  backend's strict config ordering for names without `__<index>`). The libtorch backend checks no
  sums, so its config pins the version `logad` verified (`version_policy: specific`): a version
  that lands later, corrupt or not, is not served until `logad` has checked it and moved the pin.

Both layouts share the version directories (model.pt, metadata.json, model.py, templates.json);
only this file differs.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.model_repository import ModelSpec, TensorSpec

LIBTORCH_PLATFORM = "pytorch_libtorch"
MODEL_FILE = "model.pt"


class Platform(enum.StrEnum):
    PYTHON = "python"
    LIBTORCH = "libtorch"


class Device(enum.StrEnum):
    CPU = "cpu"
    GPU = "gpu"


@dataclass(frozen=True)
class ServingLayout:
    """How Triton serves a model: `LOGAD_TRITON_PLATFORM` and `LOGAD_TRITON_DEVICE`."""

    platform: Platform = Platform.PYTHON
    device: Device = Device.CPU

    @classmethod
    def parse(cls, platform: str, device: str) -> ServingLayout:
        """From the settings' strings; a bad value or combination raises ConfigError naming the variable."""
        try:
            chosen_platform = Platform(platform.strip().lower())
        except ValueError:
            raise ConfigError(
                f"settings: LOGAD_TRITON_PLATFORM={platform!r} is not one of "
                f"{', '.join(p.value for p in Platform)}"
            ) from None
        try:
            chosen_device = Device(device.strip().lower())
        except ValueError:
            raise ConfigError(
                f"settings: LOGAD_TRITON_DEVICE={device!r} is not one of {', '.join(d.value for d in Device)}"
            ) from None
        if chosen_platform is Platform.PYTHON and chosen_device is Device.GPU:
            raise ConfigError(
                "settings: LOGAD_TRITON_DEVICE=gpu needs LOGAD_TRITON_PLATFORM=libtorch: the Python-backend "
                "runner computes on CPU"
            )
        return cls(chosen_platform, chosen_device)

    @property
    def verifies_itself(self) -> bool:
        """Whether the served model checks its own sha256 on load (the Python runner does)."""
        return self.platform is Platform.PYTHON


# The default: what the local Triton binary (pytriton) serves.
PYTHON_CPU = ServingLayout()


def _tensors(items: Sequence[TensorSpec]) -> str:
    rows = [
        f'  {{ name: "{t.name}", data_type: TYPE_{t.dtype}, dims: [ {", ".join(map(str, t.dims))} ] }}'
        for t in items
    ]
    return ",\n".join(rows)


def render_config(spec: ModelSpec, layout: ServingLayout = PYTHON_CPU, pinned: int | None = None) -> str:
    """config.pbtxt: dynamic batching on, one version served at a time (`pinned`: that one, for
    libtorch; None: the newest, what the Python runner uses since it verifies what it loads)."""
    kind = "KIND_GPU" if layout.device is Device.GPU else "KIND_CPU"
    if layout.platform is Platform.LIBTORCH:
        head = f'platform: "{LIBTORCH_PLATFORM}"\ndefault_model_filename: "{MODEL_FILE}"\n'
    else:
        head = 'backend: "python"\n'
    policy = (
        f"version_policy: {{ specific: {{ versions: [ {pinned} ] }} }}\n"
        if pinned is not None
        else "version_policy: { latest: { num_versions: 1 } }\n"
    )
    params = "".join(
        f'parameters: {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in spec.parameters.items()
    )
    if layout.platform is Platform.LIBTORCH:
        # No autograd bookkeeping at inference (the backend's switch for torch.inference_mode).
        params += 'parameters: { key: "INFERENCE_MODE" value: { string_value: "true" } }\n'
    return (
        f'name: "{spec.name}"\n'
        f"{head}"
        f"max_batch_size: {spec.max_batch_size}\n"
        f"input [\n{_tensors(spec.inputs)}\n]\n"
        f"output [\n{_tensors(spec.outputs)}\n]\n"
        f"{policy}"
        f"dynamic_batching {{ max_queue_delay_microseconds: {spec.max_queue_delay_us} }}\n"
        f"instance_group [ {{ kind: {kind}, count: {spec.instance_count} }} ]\n"
        f"{params}"
    )
