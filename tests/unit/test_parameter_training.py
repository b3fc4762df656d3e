from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.deployment import TEMPLATES_FILE, parameter_detector
from pipeline.errors import ConfigError
from pipeline.model_repository import CONFIG_FILE, MODEL_FILE, load_version, read_version_file
from pipeline.models.parameters import ParameterModelConfig
from pipeline.parameter_scoring import ParameterBatch, TorchScriptParameterScorer
from pipeline.settings import Settings
from pipeline.templates import TemplateMiner
from pipeline.training.parameters import (
    MODEL_NAME,
    ParameterTrainConfig,
    TrainedParameterModel,
    publish_parameter_model,
    train_parameter_model,
)

WRITE, CLOSE, RARE = 11, 22, 33
CONFIG = ParameterModelConfig(window_size=3, hidden=8, layers=1, key_embedding=2)
TRAIN = ParameterTrainConfig(epochs=3, batch_size=64, min_windows=20, min_validation_windows=5)


@dataclass(frozen=True)
class Ev:
    session_key: str
    template_id: int
    params: tuple[str, ...]
    timestamp: float
    source: str = "hdfs"


def normal_events(sessions: int = 120, seed: int = 0) -> list[Ev]:
    """WRITE (a size near 1000) then CLOSE 1-2 s later; a RARE event in a few sessions."""
    rng = random.Random(seed)
    events: list[Ev] = []
    for s in range(sessions):
        start = s * 10.0
        events.append(Ev(f"b{s}", WRITE, (f"blk_{s}", str(rng.randint(950, 1050))), start))
        events.append(Ev(f"b{s}", CLOSE, (f"blk_{s}",), start + rng.choice([1.0, 2.0])))
        if s % 40 == 0:
            events.append(Ev(f"b{s}", RARE, ("7",), start + 3.0))
    return events


@pytest.fixture(scope="module")
def trained() -> TrainedParameterModel:
    torch.set_num_threads(1)
    return train_parameter_model(normal_events(), CONFIG, TRAIN, progress=False)


def test_keys_with_too_few_windows_get_no_model(trained: TrainedParameterModel) -> None:
    assert set(trained.schema.keys) == {WRITE, CLOSE}
    assert trained.schema.keys[WRITE].names == ("elapsed_s", "param_1")
    assert trained.schema.keys[CLOSE].names == ("elapsed_s",)


def test_thresholds_come_from_validation_errors(trained: TrainedParameterModel) -> None:
    thresholds = trained.model.threshold.numpy()
    assert trained.sigmas in TRAIN.threshold_sigmas
    assert np.allclose(thresholds, trained.error_mean + trained.sigmas * trained.error_std, rtol=1e-5)
    assert (thresholds > 0).all()
    assert trained.validation[f"session_fpr_at_{trained.sigmas:g}_sigmas"] <= TRAIN.max_validation_session_fpr
    assert len(trained.curves["epoch_loss"]) == TRAIN.epochs


def test_training_is_seeded() -> None:
    a = train_parameter_model(normal_events(60), CONFIG, TRAIN, progress=False)
    b = train_parameter_model(normal_events(60), CONFIG, TRAIN, progress=False)
    assert torch.equal(a.model.threshold, b.model.threshold)
    assert a.curves == b.curves


def test_an_abnormal_size_is_flagged_and_a_normal_one_is_not(trained: TrainedParameterModel) -> None:
    history = torch.tensor([[[0.0, 1000.0], [0.0, 990.0], [0.0, 1010.0]]] * 2)  # (2, h, D)
    observed = torch.tensor([[0.0, 1005.0], [0.0, 50_000.0]])
    _, _, anomalous, low, high = trained.model(torch.tensor([[WRITE], [WRITE]]), history, observed)
    assert anomalous[:, 0].tolist() == [False, True]
    assert low[1, 1] < 1005.0 < high[1, 1] < 50_000.0


def test_no_key_with_enough_windows_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no log key"):
        train_parameter_model(normal_events(5), CONFIG, TRAIN, progress=False)


def test_publish_writes_a_loadable_version_that_scores_like_eager(
    trained: TrainedParameterModel, tmp_path: Path
) -> None:
    miner = TemplateMiner()
    miner.learn("write blk_1 1000")
    published = publish_parameter_model(tmp_path, trained, miner, "hdfs", {"training_data_sha256": "x"})
    assert (published.name, published.version) == (MODEL_NAME, 1)
    metadata = json.loads((published.path / "metadata.json").read_text())
    assert metadata["kind"] == MODEL_NAME and metadata["log_format"] == "hdfs"
    assert metadata["threshold_sigmas"] == trained.sigmas and metadata["window_size"] == 3
    assert metadata["schema"] == trained.schema.to_json()
    assert metadata["inputs"] == ["template_id", "history", "observed"]
    assert read_version_file(tmp_path, MODEL_NAME, 1, TEMPLATES_FILE) == miner.save_state()
    assert (published.path / MODEL_FILE).is_file() and (tmp_path / MODEL_NAME / CONFIG_FILE).is_file()

    loaded = load_version(tmp_path, MODEL_NAME)
    scorer = TorchScriptParameterScorer.from_repo(tmp_path, MODEL_NAME, clock=lambda: 0.0)
    info = asyncio.run(scorer.current())
    assert (info.version, info.window_size, info.schema) == (1, 3, trained.schema)
    rng = np.random.default_rng(0)
    batch = ParameterBatch(
        np.array([[WRITE], [CLOSE], [WRITE]], np.int64),
        (rng.random((3, 3, 2)) * 1000).astype(np.float32),
        (rng.random((3, 2)) * 1000).astype(np.float32),
        version=1,
    )
    scores = asyncio.run(scorer.score(batch))
    with torch.inference_mode():
        eager = trained.model(
            *(torch.from_numpy(a) for a in (batch.template_id, batch.history, batch.observed))
        )
    assert np.array_equal(scores.error, eager[0].numpy()) and np.array_equal(
        scores.anomalous, eager[2].numpy()
    )
    assert scores.model == MODEL_NAME and scores.version == 1
    assert int(loaded.module.window_size) == 3

    stale = asyncio.run(scorer.score(ParameterBatch(batch.template_id, batch.history, batch.observed, 7)))
    assert stale.version == 1 and not stale.anomalous.any()  # built for another version: not scored


def test_workers_turn_parameter_detection_on_when_a_valid_version_exists(
    trained: TrainedParameterModel, tmp_path: Path
) -> None:
    settings = Settings(model_repo=tmp_path, inference_backend="torchscript")
    assert parameter_detector(settings, clock=lambda: 0.0) is None
    publish_parameter_model(tmp_path, trained, None, None, {})
    detector = parameter_detector(settings, clock=lambda: 0.0)
    assert detector is not None and asyncio.run(detector.scorer.current()).schema == trained.schema
    assert parameter_detector(settings.replace(parameter_model=""), clock=lambda: 0.0) is None
    (tmp_path / MODEL_NAME / "1" / MODEL_FILE).write_bytes(b"corrupt")
    assert parameter_detector(settings, clock=lambda: 0.0) is None
