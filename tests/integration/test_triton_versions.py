"""Publish TorchScript versions to a real Triton's repository and watch the serving version change."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.adapters.triton import AsyncTritonClient, load_model, serving_version
from pipeline.errors import ModelError
from pipeline.model_repository import MODEL_FILE, ModelSpec, TensorSpec, publish_version
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


class Scale(torch.nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.float() * self.factor, x.sum(dim=1, keepdim=True)


SPEC = ModelSpec(
    name="scale",
    inputs=(TensorSpec("x", "INT64", (4,)),),
    outputs=(TensorSpec("y", "FP32", (4,)), TensorSpec("total", "INT64", (1,))),
    max_batch_size=64,
)


def publish(repo: Path, factor: float) -> int:
    return publish_version(repo, SPEC, torch.jit.script(Scale(factor)), {"factor": factor}).version


def infer(settings: Settings, batch: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    async def go() -> tuple[int, np.ndarray, np.ndarray]:
        client = AsyncTritonClient(settings.triton_grpc_url)
        try:
            result = await client.infer("scale", {"x": batch}, ["y", "total"])
        finally:
            await client.close()
        return result.version, result.outputs["y"], result.outputs["total"]

    return asyncio.run(go())


def test_new_version_replaces_old_and_corrupt_version_is_refused(triton_server: Settings) -> None:
    repo = triton_server.model_repo
    batch = np.arange(12, dtype=np.int64).reshape(3, 4)

    assert publish(repo, 1.0) == 1
    assert load_model(triton_server.triton_grpc_url, "scale") == 1
    version, y, total = infer(triton_server, batch)
    assert version == 1
    np.testing.assert_allclose(y, batch.astype(np.float32))
    np.testing.assert_array_equal(total[:, 0], batch.sum(axis=1))

    assert publish(repo, 2.0) == 2
    assert load_model(triton_server.triton_grpc_url, "scale") == 2
    version, y, _ = infer(triton_server, batch)
    assert version == 2
    np.testing.assert_allclose(y, 2 * batch.astype(np.float32))

    # A version whose model.pt no longer matches its sha256 must not replace the serving one.
    bad = publish(repo, 3.0)
    (repo / "scale" / str(bad) / MODEL_FILE).write_bytes(b"tampered")
    with pytest.raises(ModelError):
        load_model(triton_server.triton_grpc_url, "scale")
    assert serving_version(triton_server.triton_grpc_url, "scale") == 2
    version, y, _ = infer(triton_server, batch)
    assert version == 2
    np.testing.assert_allclose(y, 2 * batch.astype(np.float32))
