"""Servable versions (issue 17 item 2) and the validation gate (item 5): publishing refuses what a
worker could not serve, followers skip such versions and keep the last servable one."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from pipeline.cli import main
from pipeline.deployment import TemplateFollower
from pipeline.errors import ConfigError, ModelError
from pipeline.model_repository import (
    METADATA_FILE,
    ModelSpec,
    NewestServable,
    TensorSpec,
    check_servable,
    newest_valid_version,
    publish_version,
)
from pipeline.parameter_features import FeatureSchema
from pipeline.scoring import VersionFollower
from pipeline.templates import TemplateMiner
from pipeline.version_checks import (
    TEMPLATES_FILE,
    ValidationFpr,
    ValidationRefused,
    servable_problems,
    validation_gate,
)


class Identity(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


def templates() -> bytes:
    miner = TemplateMiner()
    miner.learn("Receiving block blk_1 src: /10.0.0.1")
    miner.freeze()
    return miner.save_state()


SCHEMA = FeatureSchema.from_tables([7], [1], [[0]]).to_json()
WINDOW = {"size_s": 300.0, "step_s": 300.0}

# (model, metadata, files, expected problem fragments; [] = servable)
CASES: list[tuple[str, dict[str, Any], dict[str, bytes], list[str]]] = [
    ("deeplog", {"kind": "deeplog"}, {TEMPLATES_FILE: templates()}, []),
    ("lama", {"kind": "lama"}, {TEMPLATES_FILE: templates()}, []),
    ("deeplog", {"kind": "deeplog"}, {}, ["no templates.json", "--logs or --from-topic", "--no-publish"]),
    ("lama", {}, {}, ["no templates.json"]),  # kind from the model name
    ("deeplog", {"kind": "deeplog"}, {TEMPLATES_FILE: b"{not json"}, ["templates.json does not load"]),
    (
        "protosiamese",
        {"window": WINDOW, "class_names": ["normal", "KERNDTLB"]},
        {TEMPLATES_FILE: templates()},
        [],
    ),
    ("protosiamese", {"class_names": ["normal"]}, {TEMPLATES_FILE: templates()}, ["no window spec"]),
    (
        "protosiamese",
        {"window": {"size_s": "x"}, "class_names": ["n"]},
        {TEMPLATES_FILE: templates()},
        ["malformed"],
    ),
    ("protosiamese", {"window": WINDOW}, {TEMPLATES_FILE: templates()}, ["no class_names"]),
    (
        "protosiamese",
        {"window": WINDOW, "class_names": ["n"]},
        {},
        ["no templates.json", "logad train protosiamese"],
    ),
    ("deeplog_params", {"kind": "deeplog_params", "window_size": 10, "schema": SCHEMA}, {}, []),
    ("deeplog_params", {"kind": "deeplog_params", "window_size": 10}, {}, ["no feature schema"]),
    (
        "deeplog_params",
        {"kind": "deeplog_params", "window_size": 0, "schema": SCHEMA},
        {},
        ["window_size (h)"],
    ),
    ("deeplog_params", {"window_size": 10, "schema": {"key_ids": [1]}}, {}, ["schema is malformed"]),
    ("scale", {}, {}, []),  # no worker role: checksums only
    (
        "deeplog",
        {"kind": "deeplog", "unservable": "unit test"},
        {TEMPLATES_FILE: templates()},
        ["not servable"],
    ),
]


@pytest.mark.parametrize(("name", "metadata", "files", "expected"), CASES)
def test_servable_problems_per_kind(
    name: str, metadata: dict[str, Any], files: dict[str, bytes], expected: list[str]
) -> None:
    problems = servable_problems(name, metadata, files)
    if not expected:
        assert problems == []
    else:
        text = "; ".join(problems)
        assert all(fragment in text for fragment in expected), text


def spec(name: str) -> ModelSpec:
    return ModelSpec(name, (TensorSpec("x", "INT64", (4,)),), (TensorSpec("x", "INT64", (4,)),))


def publish(repo: Path, name: str = "deeplog", with_templates: bool = True, **kwargs: Any) -> int:
    files = {TEMPLATES_FILE: templates()} if with_templates else None
    scripted = torch.jit.script(Identity())
    return publish_version(repo, spec(name), scripted, {"kind": name}, files, **kwargs).version


def test_publish_refuses_an_unservable_version_before_writing_anything(tmp_path: Path) -> None:
    with pytest.raises(
        ModelError, match=r"publish: deeplog is not servable: no templates.json.*--no-publish"
    ):
        publish(tmp_path, with_templates=False)
    assert not (tmp_path / "deeplog").exists()  # no config.pbtxt, no version, no temporary directory


def test_explicit_opt_out_publishes_but_is_never_served(tmp_path: Path) -> None:
    good = publish(tmp_path)
    offline = publish(tmp_path, with_templates=False, unservable_reason="benchmark only")
    assert offline == good + 1
    metadata = json.loads((tmp_path / "deeplog" / str(offline) / METADATA_FILE).read_text())
    assert metadata["unservable"] == "benchmark only"
    with pytest.raises(ModelError, match="published as not servable"):
        check_servable(tmp_path, "deeplog", offline)
    assert newest_valid_version(tmp_path, "deeplog") == good


def hand_copy_without_templates(repo: Path, source: int, target: int) -> None:
    """What the user did: a version directory copied in by hand, its templates.json not with it."""
    shutil.copytree(repo / "deeplog" / str(source), repo / "deeplog" / str(target))
    (repo / "deeplog" / str(target) / TEMPLATES_FILE).unlink()


def test_newest_servable_skips_an_incomplete_version_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publish(tmp_path)
    hand_copy_without_templates(tmp_path, 1, 2)
    counts: list[tuple[str, int]] = []
    scan = NewestServable(tmp_path, "deeplog", on_unusable=lambda model, n: counts.append((model, n)))
    with caplog.at_level(logging.WARNING, logger="pipeline.model_repository"):
        assert [scan(), scan(), scan()] == [1, 1, 1]
    warnings = [r.getMessage() for r in caplog.records if "version 2" in r.getMessage()]
    assert len(warnings) == 1 and "no templates.json" in warnings[0]
    assert counts == [("deeplog", 1)] * 3
    shutil.rmtree(tmp_path / "deeplog" / "2")
    assert scan() == 1 and counts[-1] == ("deeplog", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_template_follower_keeps_the_last_servable_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publish(tmp_path)
    clock = Clock()
    counts: list[int] = []
    follower = TemplateFollower(
        tmp_path, "deeplog", clock, interval_s=10.0, on_unusable=lambda m, n: counts.append(n)
    )
    assert follower.current().version == 1
    hand_copy_without_templates(tmp_path, 1, 2)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):  # the user's failure: every message raised from here on
            clock.now += 10.0
            assert follower.current().version == 1
    assert sum("version 2" in r.getMessage() for r in caplog.records) == 1
    assert counts[-1] == 1
    publish(tmp_path)  # version 3, servable
    clock.now += 10.0
    assert follower.current().version == 3 and counts[-1] == 0


def test_torchscript_follower_skips_an_unservable_newer_version(tmp_path: Path) -> None:
    import asyncio

    publish(tmp_path)
    hand_copy_without_templates(tmp_path, 1, 2)
    follower = VersionFollower(tmp_path, "deeplog", Clock())
    assert asyncio.run(follower.current()).version == 1


def test_no_servable_version_at_start_names_the_remedy(tmp_path: Path) -> None:
    publish(tmp_path, with_templates=False, unservable_reason="unit test")
    with pytest.raises(ModelError, match="no servable version of deeplog"):
        TemplateFollower(tmp_path, "deeplog", Clock()).current()


FIGURE = ValidationFpr(0.02, 100, "k = 9")


@pytest.mark.parametrize(
    ("fpr", "sessions", "force", "outcome"),
    [
        (0.0, 100, False, None),
        (0.05, 100, False, None),  # at the threshold: allowed
        (0.2, 100, False, "WARNING: deeplog flags 20.0% of its 100 validation sessions"),
        (0.99, 100, False, "expect many false alerts"),
        (1.0, 100, False, ValidationRefused),
        (1.0, 100, True, "published with --force"),
        (0.0, 0, False, "false-positive rate is unknown"),
        (float("nan"), 10, False, "false-positive rate is unknown"),
    ],
)
def test_validation_gate(fpr: float, sessions: int, force: bool, outcome: Any) -> None:
    figure = ValidationFpr(fpr, sessions, "k = 9")
    if outcome is ValidationRefused:
        with pytest.raises(ValidationRefused, match=r"every normal session would alert.*--force"):
            validation_gate("deeplog", figure, 0.05, force)
    elif outcome is None:
        assert validation_gate("deeplog", figure, 0.05, force) is None
    else:
        warning = validation_gate("deeplog", figure, 0.05, force)
        assert warning is not None and outcome in warning


def test_validation_gate_checks_its_threshold() -> None:
    with pytest.raises(ConfigError, match="not within"):
        validation_gate("deeplog", FIGURE, 1.5, False)


def test_train_sessions_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = tmp_path / "deeplog_train"
    sessions.write_text("1 2 3 4\n" * 5)
    monkeypatch.setenv("LOGAD_MODEL_REPO", str(tmp_path / "repo"))
    code = main(["train", "deeplog", "--sessions", str(sessions), "--epochs", "1", "--no-load"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no parser state" in err and "--logs" in err and "--from-topic" in err and "--no-publish" in err
    assert not (tmp_path / "repo").exists()


def test_train_gate_refuses_and_forces(capsys: pytest.CaptureFixture[str]) -> None:
    """Item 5 through the command's gate: a model flagging every validation session is not published."""
    import argparse

    from pipeline.commands.train import check_validation
    from pipeline.settings import Settings

    all_flagged = ValidationFpr(1.0, 12, "k = 9")
    args = argparse.Namespace(publish_max_fpr=None, force=False)
    with pytest.raises(ValidationRefused, match=r"100\.0% of its 12 validation sessions"):
        check_validation("deeplog", all_flagged, args, Settings())
    args.force = True
    check_validation("deeplog", all_flagged, args, Settings())
    assert "published with --force" in capsys.readouterr().err
    args = argparse.Namespace(publish_max_fpr=0.5, force=False)
    check_validation("deeplog", ValidationFpr(0.2, 12, "k = 9"), args, Settings())
    assert capsys.readouterr().err == ""  # within a raised threshold: no warning


class VersionedClient:
    """A Triton stand-in answering every row as normal, with the versions given in turn (last repeats)."""

    def __init__(self, versions: list[int]) -> None:
        self.versions = versions

    async def infer(self, model: str, inputs: dict[str, Any], outputs: Any) -> Any:
        import numpy as np

        from pipeline.adapters.triton import InferResult

        rows = len(inputs["window"])
        version = self.versions.pop(0) if len(self.versions) > 1 else self.versions[0]
        answer = {
            "topk_ids": np.ones((rows, 2), np.int64),
            "topk_probs": np.ones((rows, 2), np.float32),
            "next_known": np.ones((rows, 1), bool),
            "anomalous": np.zeros((rows, 1), bool),
        }
        return InferResult(model, version, answer)

    async def close(self) -> None:
        return None


def test_triton_scorer_never_scores_with_an_unservable_version() -> None:
    """Triton serving a version the worker cannot serve (loaded by hand) is waited out like an outage:
    no batch is scored against a vocabulary the parser's template ids do not belong to."""
    import asyncio

    from pipeline.adapters.triton import TritonNextEventScorer
    from pipeline.scoring import NextEventBatch

    def usable(version: int) -> None:
        if version == 2:
            raise ModelError("serve: deeplog version 2 is not servable: no templates.json")

    degraded: list[bool] = []
    scorer = TritonNextEventScorer(
        "unused:1", "deeplog", max_backoff_s=0.01, on_degraded=degraded.append, usable=usable
    )
    scorer.client = VersionedClient([2, 2, 1])  # type: ignore[assignment]
    scores = asyncio.run(scorer.score(NextEventBatch.of([[0, 0, 1]], [2], 3)))
    assert scores.version == 1 and not scores.anomalous.any()
    assert degraded == [True, True, False]
