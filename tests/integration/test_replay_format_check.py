"""`logad replay` on a real broker: a wrong --source warns before producing, and the lines still go."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.adapters.kafka import TopicSpec, consume, consumer, create_topics
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def test_bgl_replayed_as_hdfs_warns_and_still_produces(
    kafka_server: Settings,
    data_dir: Path,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from pipeline.cli import main

    topic = f"raw-{unique}"
    create_topics(kafka_server, [TopicSpec(topic, 1, {})])
    monkeypatch.setenv("LOGAD_RAW_LOGS_TOPIC", topic)
    argv = ["--bootstrap-servers", kafka_server.bootstrap_servers, "--model-repo", str(tmp_path / "repo")]
    path = data_dir / "bgl" / "BGL_2k.log"
    assert main([*argv, "replay", str(path), "--source", "hdfs", "--lines-per-message", "500"]) == 0
    out, err = capfd.readouterr()
    warning = next(line for line in err.splitlines() if line.startswith("logad replay: warning:"))
    assert "200 of the first 200 lines (100%) lack the hdfs header" in warning
    assert warning.endswith("Best fit: the bgl format (100% of the sample): --source bgl.")
    assert f"replayed 2000 lines of {path} to {topic} (source hdfs)" in out
    reader = consumer(kafka_server, f"group-{unique}", [topic])
    try:
        values = [m.value() for m in consume(reader, timeout_s=30, idle_s=3)]
    finally:
        reader.close()
    lines = [line for value in values for line in (value or b"").split(b"\n")]
    assert lines == path.read_bytes().rstrip(b"\n").split(b"\n")  # the sampled lines were not lost
