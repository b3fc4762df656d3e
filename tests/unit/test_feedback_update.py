"""The online update: fine-tuning on marked pairs, retirement, and `logad train --update` publishing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch

from pipeline.alerts import AlertKind
from pipeline.cli import main
from pipeline.feedback import FeedbackRecord, PairAllowlist, encode_feedback
from pipeline.feedback_sources import version_context
from pipeline.model_repository import load_version, read_metadata
from pipeline.models.next_event import default_config, next_ranks
from pipeline.templates import TemplateMiner
from pipeline.training.feedback_update import UpdateConfig, fine_tune, retire_learnt, trained_from_version
from pipeline.training.next_event import TrainConfig, split_sessions, train_next_event
from pipeline.training.raw_logs import publish_trained

LINES = [
    "Receiving block blk_1 src: /10.0.0.1:1 dest: /10.0.0.2:2",
    "PacketResponder 1 for block blk_1 terminating",
    "Verification succeeded for blk_1",
    "Deleting block blk_1 file /data/blk_1",
]
CONFIG = TrainConfig(epochs=30, batch_size=8, learning_rate=1e-2, top_k_candidates=(1, 2))


def _ids() -> tuple[TemplateMiner, list[int]]:
    miner = TemplateMiner()
    ids = [miner.learn(line).template_id for line in LINES]
    miner.freeze()
    return miner, ids


def _sessions(ids: list[int]) -> list[tuple[int, ...]]:
    return [tuple(ids)] * 40


def _marked(ids: list[int]) -> PairAllowlist:
    a, b, _, d = ids
    pairs = PairAllowlist(4)
    pairs.add([0, 0, a, b], d)  # the model expects c after (a, b): d is the false alarm to teach
    pairs.add([0, 0, 0, 0], 999)  # an OOV first event: cannot be learnt, stays on the allowlist
    return pairs


def test_fine_tune_learns_the_marked_pair_and_retires_it() -> None:
    _, ids = _ids()
    sessions = _sessions(ids)
    trained = train_next_event(
        "deeplog", default_config("deeplog", 4, hidden=16, layers=1), sessions, CONFIG, False
    )
    a, b, _, d = ids
    window = np.array([[0, 0, a, b]])
    assert next_ranks(trained.vocabulary, trained.network, window, np.array([d]))[0] >= trained.top_k
    marked = _marked(ids)
    fit, held = split_sessions(sessions, CONFIG.validation_fraction, CONFIG.seed)
    result = fine_tune(
        trained, marked, fit, held, UpdateConfig(epochs=30, learning_rate=1e-2), progress=False
    )
    rank = next_ranks(result.trained.vocabulary, result.trained.network, window, np.array([d]))[0]
    assert rank < result.trained.top_k
    assert (result.learnable_pairs, result.unlearnable_pairs, result.retired) == (1, 1, 1)
    assert len(marked) == 1 and marked.accepts([0, 0, 0, 0], 999)
    assert result.trained.validation[f"fpr_at_{result.trained.top_k}"] == 0.0  # what it knew, it kept
    # The original network is untouched: a failed publish leaves nothing changed.
    assert next_ranks(trained.vocabulary, trained.network, window, np.array([d]))[0] >= trained.top_k
    assert retire_learnt(trained, _marked(ids)) == 0


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One published version (trained once for the module); tests copy it."""
    repo = tmp_path_factory.mktemp("published")
    miner, ids = _ids()
    trained = train_next_event(
        "deeplog", default_config("deeplog", 4, hidden=16, layers=1), _sessions(ids), CONFIG, False
    )
    publish_trained(repo, trained, miner, "hdfs", {})
    return repo


@pytest.fixture
def repo(published: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(published, tmp_path / "repo"))


def _record(repo: Path, ids: list[int], alert: str = "a1", model: str = "deeplog") -> FeedbackRecord:
    context = version_context(repo, "deeplog", 1)
    a, b, _, d = ids
    return FeedbackRecord(
        alert,
        AlertKind.UNEXPECTED_NEXT_EVENT,
        model,
        1,
        context.template_set,
        (0, 0, a, b),
        d,
        0.9,
        "hdfs",
        "blk_1",
    )


def test_a_published_version_comes_back_with_its_weights(repo: Path) -> None:
    ids = _ids()[1]
    loaded = load_version(repo, "deeplog", 1)
    trained = trained_from_version("deeplog", loaded.module, loaded.metadata)
    window, nxt = np.array([[0, 0, ids[0], ids[1]]]), np.array([ids[2]])
    expected = loaded.module(torch.as_tensor(window), torch.as_tensor(nxt[:, None]))
    got = next_ranks(trained.vocabulary, trained.network, window, nxt)
    assert (got[0] < trained.top_k) == (not bool(expected[3][0, 0]))
    assert trained.top_k == loaded.metadata["top_k"]


def test_train_update_publishes_the_next_version_with_its_feedback(repo: Path, tmp_path: Path) -> None:
    ids = _ids()[1]
    sessions = _sessions(ids)
    feedback = tmp_path / "feedback.jsonl"
    records = [_record(repo, ids), _record(repo, ids, "a2", model="lama")]
    feedback.write_bytes(b"\n".join(encode_feedback(r) for r in records))
    session_file = tmp_path / "sessions"
    session_file.write_text("\n".join(" ".join(map(str, s)) for s in sessions))
    argv = ["--model-repo", str(repo), "train", "deeplog", "--update", "--from-feedback", str(feedback)]
    argv += [
        "--sessions",
        str(session_file),
        "--no-load",
        "--update-epochs",
        "30",
        "--update-learning-rate",
        "1e-2",
    ]
    argv += ["--batch-size", "8", "--window-size", "4", "--threads", "1"]
    assert main(argv) == 0
    metadata = read_metadata(repo, "deeplog", 2)
    learnt = metadata["feedback"]
    assert learnt["records"] == 1 and learnt["alert_ids"] == ["a1"] and learnt["updated_from_version"] == 1
    assert learnt["retired_pairs"] == [[0, 0, ids[0], ids[1], ids[3]]]
    assert (repo / "deeplog" / "2" / "templates.json").read_bytes() == (
        repo / "deeplog" / "1" / "templates.json"
    ).read_bytes()


def test_train_update_without_matching_feedback_publishes_nothing(repo: Path, tmp_path: Path) -> None:
    ids = _ids()[1]
    feedback = tmp_path / "feedback.json"
    feedback.write_bytes(orjson.dumps([orjson.loads(encode_feedback(_record(repo, ids, model="lama")))]))
    assert (
        main(["--model-repo", str(repo), "train", "deeplog", "--update", "--from-feedback", str(feedback)])
        == 0
    )
    assert not (repo / "deeplog" / "2").exists()


def test_train_update_refuses_a_malformed_feedback_file(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text('{"schema": "log-feedback/1"}\n')
    assert (
        main(["--model-repo", str(repo), "train", "deeplog", "--update", "--from-feedback", str(feedback)])
        == 1
    )
    assert "feedback.jsonl:1: feedback record: missing fields" in capsys.readouterr().err
    assert not (repo / "deeplog" / "2").exists()
