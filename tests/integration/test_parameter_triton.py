"""DeepLog's parameter value model served by the real Triton: same scores as in-process TorchScript."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from pipeline.adapters.triton import TritonParameterScorer, load_model
from pipeline.deployment import parameter_detector
from pipeline.parameter_scoring import ParameterBatch, TorchScriptParameterScorer
from pipeline.settings import Settings
from pipeline.training.parameters import MODEL_NAME, publish_parameter_model, train_parameter_model
from tests.unit.test_parameter_training import CLOSE, CONFIG, TRAIN, WRITE, normal_events

pytestmark = pytest.mark.integration


def test_triton_scores_parameter_vectors_like_torchscript(triton_server: Settings) -> None:
    torch.set_num_threads(1)
    trained = train_parameter_model(normal_events(), CONFIG, TRAIN, progress=False)
    repo = triton_server.model_repo
    publish_parameter_model(repo, trained, None, None, {"training_data_sha256": "test"})
    version = load_model(triton_server.triton_grpc_url, MODEL_NAME)

    settings = triton_server.replace(inference_backend="triton", parameter_model=MODEL_NAME)
    detector = parameter_detector(settings, clock=lambda: 0.0)
    assert detector is not None and isinstance(detector.scorer, TritonParameterScorer)
    triton = detector.scorer
    in_process = TorchScriptParameterScorer.from_repo(repo, MODEL_NAME, clock=lambda: 0.0)

    async def check() -> None:
        info = await triton.current()
        assert (info.version, info.window_size, info.schema) == (version, 3, trained.schema)
        rng = np.random.default_rng(0)
        rows = 50
        batch = ParameterBatch(
            rng.choice([WRITE, CLOSE], size=(rows, 1)).astype(np.int64),
            (rng.random((rows, 3, 2)) * 2000).astype(np.float32),
            (rng.random((rows, 2)) * 2000).astype(np.float32),
            version=version,
        )
        served, local = await triton.score(batch), await in_process.score(batch)
        assert (served.model, served.version) == (MODEL_NAME, version)
        assert np.array_equal(served.anomalous, local.anomalous) and served.anomalous.any()
        for name in ("error", "threshold", "expected_low", "expected_high"):
            assert np.allclose(getattr(served, name), getattr(local, name), rtol=1e-5), name
        other = ParameterBatch(batch.template_id, batch.history, batch.observed, version + 5)
        stale = await triton.score(other)
        assert stale.version == version and not stale.anomalous.any()  # built for another version
        await triton.close()

    asyncio.run(check())
