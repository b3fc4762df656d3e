"""Issue 17 item 2 on the real broker and Triton: a version a worker cannot serve (no templates.json)
is refused at publishing, and one put into the repository by hand is skipped by a running worker,
which keeps parsing with the last servable version and never scores with the unservable one."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.adapters.triton import load_model, serving_version
from pipeline.errors import ModelError
from pipeline.model_repository import METADATA_FILE, list_versions
from pipeline.settings import Settings
from pipeline.version_checks import TEMPLATES_FILE
from tests.support.pipeline_run import (
    BackgroundReplay,
    alerts_of,
    assert_matches_offline,
    offline_result,
    run_settings,
)
from tests.support.worker import Worker

pytestmark = pytest.mark.integration

LINES = 6000
RATE = 300.0  # lines/s: 20 s of replay, so the follower's 10 s look and the Triton swap land mid-way


def test_version_without_templates_is_refused_at_publishing(triton_server: Settings, deployed: int) -> None:
    from pipeline.models.next_event import default_config
    from pipeline.training.next_event import TrainConfig, train_next_event
    from pipeline.training.raw_logs import publish_trained

    repo = Path(triton_server.model_repo)
    before = list_versions(repo, "deeplog")
    sessions = [(1, 2, 3, 4, 5)] * 30  # what `logad train deeplog --sessions F` trains on: ids, no parser
    config = TrainConfig.for_model("deeplog", epochs=1, top_k_candidates=(2,))
    trained = train_next_event("deeplog", default_config("deeplog"), sessions, config, progress=False)
    with pytest.raises(ModelError, match=r"no templates\.json.*--logs or --from-topic.*--no-publish"):
        publish_trained(repo, trained, None, None, {})
    assert list_versions(repo, "deeplog") == before
    assert not [p for p in (repo / "deeplog").iterdir() if p.name.startswith(".publishing-")]
    assert serving_version(triton_server.triton_grpc_url, "deeplog") == deployed


def _hand_copied_without_templates(repo: Path, version: int) -> int:
    """What the user had: `version`'s weights in a new version directory whose metadata lists no
    parser state (as `logad train deeplog --sessions` wrote it), moved into place in one rename."""
    model_dir = repo / "deeplog"
    new = max(list_versions(repo, "deeplog")) + 1
    tmp = Path(tempfile.mkdtemp(prefix=".copying-", dir=model_dir)) / "v"
    shutil.copytree(model_dir / str(version), tmp)
    (tmp / TEMPLATES_FILE).unlink()
    metadata = json.loads((tmp / METADATA_FILE).read_text())
    metadata.update(version=new, files={})
    metadata.pop("log_format", None)
    (tmp / METADATA_FILE).write_text(json.dumps(metadata))
    tmp.rename(model_dir / str(new))
    shutil.rmtree(tmp.parent)
    return new


def _wait(worker: Worker, metric: str, at_least: float, timeout_s: float = 60.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (value := worker.counter(metric)) >= at_least:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{metric} below {at_least} after {timeout_s}s:\n{worker.log_tail()}")


def _with_unheard_lines(lines: list[str], every: int) -> list[str]:
    """`lines` with a line of a template the model never saw after every `every`-th, each in a block
    of its own and worded differently: rows no score cache holds, so each goes to Triton."""
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i % every == every - 1:
            word = "".join(chr(ord("a") + int(d)) for d in str(i))
            stamp = " ".join(line.split()[:3])
            out.append(f"{stamp} INFO dfs.Unheard: {word} happened to blk_{8_000_000_000 + i}")
    return out


def test_worker_skips_a_hand_copied_version_and_loses_nothing(
    kafka_server: Settings,
    triton_server: Settings,
    hdfs: tuple[list[str], frozenset[str]],
    deployed: int,
    unique: str,
    tmp_path: Path,
) -> None:
    lines, anomalous = hdfs
    part = _with_unheard_lines(lines[:LINES], every=200)
    repo, url = Path(triton_server.model_repo), triton_server.triton_grpc_url
    settings = run_settings(kafka_server, triton_server, unique, tmp_path)
    worker = Worker(settings, tmp_path / "worker.log").start()
    replay = BackgroundReplay(settings, part, "hdfs", RATE)
    bad = None
    try:
        replay.start()
        worker.wait_counter("logad_lines_total", len(part) * 0.15)
        bad = _hand_copied_without_templates(repo, deployed)
        # The parse agent's next look (every 10 s) skips it: counted, parsing goes on.
        assert _wait(worker, "logad_unusable_model_versions", 1) == 1
        # Triton loads whatever its newest version directory holds (the runner checks model.pt only):
        # the detect agent must refuse its answers rather than score with it.
        assert load_model(url, "deeplog") == bad
        _wait(worker, "logad_inference_failures_total", 1)
        parsed_while_refused = worker.counter("logad_lines_total")
        shutil.rmtree(repo / "deeplog" / str(bad))
        assert load_model(url, "deeplog") == deployed
        replay.finish()
        worker.wait_drained(lines=len(part), timeout_s=240)
        assert worker.proc is not None and worker.proc.poll() is None, "the worker died"
        dead_letters = worker.counter("logad_dead_letters_total")
        parsed = worker.counter("logad_lines_total")
    finally:
        worker.stop()
        if bad is not None and (repo / "deeplog" / str(bad)).exists():
            shutil.rmtree(repo / "deeplog" / str(bad))
            load_model(url, "deeplog")
    skipped = [
        line
        for line in (tmp_path / "worker.log").read_text(errors="replace").splitlines()
        if f"deeplog version {bad} is not servable" in line and "older servable version serves on" in line
    ]
    assert len(skipped) == 1, skipped  # once, not at every look
    assert dead_letters == 0 and parsed == len(part) and parsed_while_refused > 0
    alerts = alerts_of(settings)
    assert {a.model_version for a in alerts} == {deployed}  # never scored by the copy
    offline = offline_result(part, triton_server, deployed, "hdfs")
    assert_matches_offline(alerts, offline, anomalous, deployed)
