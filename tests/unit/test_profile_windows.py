"""ProtoSiamese from a format profile's time windows (`logad train protosiamese --logs --format
--labels`): a gateway log without session keys, two anomaly classes labelled by line number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cli import main
from pipeline.deployment import load_template_set
from pipeline.errors import ConfigError, DataError
from pipeline.format_profiles import profile_from_table
from pipeline.model_repository import load_version
from pipeline.parsing import Parser
from pipeline.tfidf import pad_windows
from pipeline.time_windows import TimedEvent, time_windows
from pipeline.training.profile_windows import read_line_labels
from tests.support.gateway_logs import gateway_log

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "formats" / "example.toml"


def test_train_publish_and_classify_windows_of_a_profile(tmp_path: Path) -> None:
    profiles = EXAMPLE
    lines, labels, _ = gateway_log(24, seed=0)
    log, label_file = tmp_path / "gateway.log", tmp_path / "labels.csv"
    log.write_text("\n".join(lines) + "\n")
    label_file.write_text("line,class\n" + "".join(f"{n},{c}\n" for n, c in labels.items()))
    assert read_line_labels(label_file) == labels
    threads = torch.get_num_threads()
    try:
        code = main(
            ["--model-repo", str(tmp_path / "repo"), "train", "protosiamese", "--logs", str(log),
             "--format", f"{profiles}:gateway", "--labels", str(label_file), "--name", "gateway_windows",
             "--window-s", "60", "--step-s", "60", "--epochs", "15", "--n-way", "3", "--k-shot", "2",
             "--q-query", "2", "--no-load"]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    metadata = json.loads((tmp_path / "repo" / "gateway_windows" / "1" / "metadata.json").read_text())
    assert metadata["log_format"] == "gateway" and metadata["format_profile"]["name"] == "gateway"
    assert metadata["class_names"] == ["normal", "disk", "net"]

    # Offline as the worker would: the stored profile parses, the stored spec cuts, the model classifies.
    deployed = load_template_set(tmp_path / "repo", "gateway_windows", 1)
    assert deployed.log_format.name == "gateway" and deployed.require_window_spec().size_s == 60.0
    test_lines, _, test_kinds = gateway_log(12, seed=1)
    events = Parser(deployed.log_format, deployed.miner).parse("\n".join(test_lines).encode(), "gw").events
    assert len(events) == len(test_lines) and all(e.timestamp is not None for e in events)
    windows = time_windows(
        [TimedEvent(e.timestamp or 0.0, e.template_id) for e in events], deployed.require_window_spec()
    )
    assert len(windows) == 12
    loaded = load_version(tmp_path / "repo", "gateway_windows", 1)
    ids, counts = pad_windows([w.count_map() for w in windows])
    with torch.no_grad():
        index = loaded.module(torch.from_numpy(ids), torch.from_numpy(counts))[0][:, 0].tolist()
    predicted = [metadata["class_names"][i] for i in index]
    assert np.mean([p == k for p, k in zip(predicted, test_kinds, strict=True)]) >= 0.9, predicted


def test_profile_window_training_needs_time_labels_and_classes(tmp_path: Path) -> None:
    from pipeline.time_windows import WindowSpec
    from pipeline.training.episodic import EpisodicConfig
    from pipeline.training.profile_windows import train_profile_windows

    lines, labels, _ = gateway_log(6, seed=0)
    log = tmp_path / "gateway.log"
    log.write_text("\n".join(lines) + "\n")
    untimed = profile_from_table("gateway", {"header": "<Date> <Time> <Host> <Level> <Content>"})
    spec, episodic = WindowSpec(60.0, 60.0), EpisodicConfig(epochs=1)
    with pytest.raises(ConfigError, match="no timestamp rule"):
        train_profile_windows(log, untimed, labels, spec, 2, episodic)
    timed = profile_from_table(
        "gateway",
        {
            "header": "<Date> <Time> <Host> <Level> <Content>",
            "timestamp": {"fields": ["Date", "Time"], "format": "%Y-%m-%d %H:%M:%S"},
        },
    )
    with pytest.raises(DataError, match="no class of the labels"):
        train_profile_windows(log, timed, {}, spec, 2, episodic)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,disk\nseven,net\n")
    with pytest.raises(DataError, match="line 2"):
        read_line_labels(bad)
