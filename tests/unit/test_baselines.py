import numpy as np
import pytest
import torch

from pipeline.errors import DataError
from pipeline.models.baselines import BaselineConfig, FeedForwardClassifier, predict, train_classifier


@pytest.mark.parametrize("n_outputs", [2, 6])
def test_shapes(n_outputs: int) -> None:
    model = FeedForwardClassifier(20, n_outputs, BaselineConfig())
    assert model(torch.zeros(5, 20)).shape == (5, n_outputs)
    widths = [m.out_features for m in model.net if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 64, n_outputs]


def test_learns_a_separable_problem() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 150)
    features = rng.normal(scale=0.1, size=(150, 8)).astype(np.float32)
    features[np.arange(150), labels] += 1.0
    model, losses = train_classifier(features, labels, 3, BaselineConfig(epochs=30), progress=False)
    assert losses[-1] < losses[0]
    assert np.mean(predict(model, features) == labels) > 0.95


def test_mismatched_labels_are_rejected() -> None:
    with pytest.raises(DataError, match="labels"):
        train_classifier(
            np.zeros((3, 2), np.float32), np.zeros(2, np.int64), 2, BaselineConfig(), progress=False
        )


def test_macro_accuracy_pieces() -> None:
    from pipeline.evaluation.fewshot import confusion_matrix, per_class_recall

    y = np.array([0, 0, 0, 1, 2])
    pred = np.array([0, 0, 1, 1, 0])
    np.testing.assert_allclose(per_class_recall(y, pred, 4), [2 / 3, 1.0, 0.0, np.nan])
    assert confusion_matrix(y, pred, 3).tolist() == [[2, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_hadoop_jobs_merge_their_containers() -> None:
    from pipeline.datasets.hadoop import HadoopSession
    from pipeline.evaluation.fewshot import merge_by_application

    sessions = [
        HadoopSession("app_1/c_1", (1, 2), "normal"),
        HadoopSession("app_2/c_1", (3,), "normal"),
        HadoopSession("app_1/c_2", (2, 4), "normal"),
    ]
    merged = {s.session_id: s.count_map() for s in merge_by_application(sessions)}
    assert merged == {"app_1": {1: 1, 2: 2, 4: 1}, "app_2": {3: 1}}


def test_fewshot_hadoop_runs_end_to_end_on_a_tiny_budget(tmp_path) -> None:
    import argparse
    import os
    from pathlib import Path

    from pipeline.evaluation import fewshot
    from pipeline.settings import Settings

    data_dir = Path(
        os.environ.get("LOGAD_DATA_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
    )
    if not (data_dir / "hadoop").is_dir():
        pytest.skip(f"shared data not found at {data_dir}")
    parser = argparse.ArgumentParser()
    fewshot.add_arguments(parser, "fewshot-hadoop")
    args = parser.parse_args(
        ["--epochs", "3", "--baseline-epochs", "2", "--repeats", "1", "--output-dir", str(tmp_path)]
    )
    result = fewshot.run(args, Settings(data_dir=data_dir), "fewshot-hadoop")
    for key in ("protosiamese_macro_accuracy", "binary_baseline_accuracy", "multiclass_baseline_accuracy"):
        assert 0.0 <= result[key] <= 1.0
    assert result["n_classes"] == 4 and result["n_train"] == 12
    assert Path(result["confusion_png"]).stat().st_size > 0
    assert "Our hybrid protoSiamese" in result["table"]
