"""`logad train protosiamese` end to end without servers: BGL in, a published version out, and the
worker's parse + window path on that version equal to offline windowing of the same lines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cli import main
from pipeline.datasets.bgl import BglTemplater, parse_bgl_line, read_bgl
from pipeline.deployment import (
    SourceParsers,
    TemplateFollower,
    class_names,
    load_template_set,
    window_class_scorer,
)
from pipeline.formats import BGL
from pipeline.model_repository import CONFIG_FILE, load_version, read_version_file
from pipeline.models.protosiamese import INPUT_NAMES, OUTPUT_NAMES
from pipeline.parsing import Parser
from pipeline.scoring import TorchScriptWindowClassScorer
from pipeline.settings import Settings
from pipeline.templates import TemplateMiner
from pipeline.tfidf import pad_windows
from pipeline.time_windows import TimedEvent, TimeWindower, WindowSpec
from pipeline.window_classifier import WindowClassifier, window_key
from pipeline.window_detection import WindowDetector


@pytest.fixture(scope="module")
def published(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    # --no-load: a unit test must not ask a Triton that happens to run here to load anything.
    args = ["--data-dir", str(data_dir), "--model-repo", str(repo), "train", "protosiamese", "--no-load"]
    args += ["--train-files", "bgl/BGL_2k.log", "bgl/BGL_4k.log", "--epochs", "5", "--window-s", "600"]
    assert main(args) == 0
    return repo


def test_bgl_profile_gives_the_miner_the_training_text(data_dir: Path) -> None:
    """The streaming parser (BGL profile) and the trainer (`BglTemplater`) must template the same text."""
    lines = [line for line in (data_dir / "bgl" / "BGL_2k.log").read_text().splitlines() if line.strip()]
    for line in lines:
        assert (
            BGL.template_text(BGL.parse_line(line)).split() == BglTemplater.text(parse_bgl_line(line)).split()
        )


def test_published_version_carries_what_the_worker_needs(published: Path) -> None:
    loaded = load_version(published, "protosiamese")
    meta = loaded.metadata
    assert loaded.version == 1 and meta["log_format"] == "bgl"
    assert meta["class_names"][0] == "normal" and len(meta["class_names"]) > 2
    assert meta["window"] == {"size_s": 600.0, "step_s": 300.0, "allowed_lateness_s": 0.0}
    assert set(meta["training_files"]) == {"BGL_2k.log", "BGL_4k.log"} and len(meta["sha256"]) == 64
    assert (meta["inputs"], meta["outputs"]) == (list(INPUT_NAMES), list(OUTPUT_NAMES))
    config = (published / "protosiamese" / CONFIG_FILE).read_text()
    for name in (*INPUT_NAMES, *OUTPUT_NAMES):
        assert f'name: "{name}"' in config
    assert "dynamic_batching" in config
    deployed = load_template_set(published, "protosiamese", 1)
    assert deployed.log_format is BGL and deployed.require_window_spec() == WindowSpec(600.0, 300.0)
    assert class_names(published, "protosiamese", 1) == tuple(meta["class_names"])
    # The module answers one class per window and a distance to every class.
    ids, counts = pad_windows([{deployed.miner.match("KERNEL data TLB error interrupt").template_id: 3}])
    index, distances = loaded.module(torch.from_numpy(ids), torch.from_numpy(counts))
    assert index.shape == (1, 1) and distances.shape == (1, len(meta["class_names"]))


def test_stream_parsing_gives_the_training_template_ids(published: Path, data_dir: Path) -> None:
    """The published templates.json, loaded by the worker's parser, reproduces the trainer's ids."""
    miner = TemplateMiner.load_state(read_version_file(published, "protosiamese", 1, "templates.json"))
    miner.freeze()
    templater = BglTemplater()
    records = [*read_bgl(data_dir / "bgl" / "BGL_2k.log"), *read_bgl(data_dir / "bgl" / "BGL_4k.log")]
    templater.learn(records)
    parser = Parser(BGL, miner)
    test_lines = (data_dir / "bgl" / "BGL_10k.log").read_text().splitlines()[:3000]
    events = parser.parse("\n".join(test_lines).encode(), "bgl").events
    assert len(events) == len(test_lines)
    expected = [templater.template_id(parse_bgl_line(line)) for line in test_lines]
    assert [e.template_id for e in events] == expected
    assert {e.session_key for e in events} == {""}


def test_source_parsers_pick_the_model_of_the_source(published: Path) -> None:
    clock = lambda: 0.0  # noqa: E731
    parsers = SourceParsers(
        TemplateFollower(published, "lama", clock),  # never asked: no lama version exists
        TemplateFollower(published, "protosiamese", clock),
        frozenset({"bgl"}),
        1 << 20,
    )
    assert parsers.for_source("bgl").format is BGL
    assert parsers.for_source("bgl") is parsers.for_source("bgl")


def test_streamed_windows_equal_offline_classification(published: Path, data_dir: Path) -> None:
    """Parser -> WindowDetector (TorchScript) in small batches gives exactly the windows an offline
    pass over the same lines classifies as abnormal."""
    deployed = load_template_set(published, "protosiamese", 1)
    spec = deployed.require_window_spec()
    lines = (data_dir / "bgl" / "BGL_10k.log").read_text().splitlines()[:1500]
    events = Parser(BGL, deployed.miner).parse("\n".join(lines).encode(), "bgl").events

    scorer = window_class_scorer(Settings(model_repo=published, inference_backend="torchscript"), lambda: 0.0)
    assert isinstance(scorer, TorchScriptWindowClassScorer)
    detector = WindowDetector(WindowClassifier(scorer, deployed.texts), lambda: spec, ["bgl"])
    streamed = []
    for start in range(0, len(events), 97):
        streamed += asyncio.run(detector.process(events[start : start + 97])).alerts

    windower, closed = TimeWindower(spec), []
    for e in events:
        assert e.timestamp is not None
        closed += windower.add(TimedEvent(e.timestamp, e.template_id))
    module = load_version(published, "protosiamese").module
    ids, counts = pad_windows([w.count_map() for w in closed])
    index = module(torch.from_numpy(ids), torch.from_numpy(counts))[0][:, 0].numpy()
    names = json.loads((published / "protosiamese" / "1" / "metadata.json").read_text())["class_names"]
    offline = {window_key(w.start_s, w.end_s): names[i] for w, i in zip(closed, index, strict=True)}
    abnormal = {k: v for k, v in offline.items() if v != "normal"}
    assert abnormal and {a.session_key: a.label for a in streamed} == abnormal
    assert np.mean([v != "normal" for v in offline.values()]) < 0.9
