"""`logad train deeplog --from-topic` against a real broker (issue 4).

A few hundred HDFS sessions are parsed as the parse agent does and written to a topic as
`event-batch/1` and `event-batch/2` records (alternating), one per partition per payload; the trainer
reads the topic back, leaves out the labelled sessions, and publishes a version whose vocabulary and
parser match the events.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.adapters.kafka import TopicSpec, create_topics, producer
from pipeline.datasets.loghub import hdfs_lines, read_abnormal_blocks
from pipeline.deployment import load_template_set
from pipeline.event_columns import EventColumns
from pipeline.formats import HDFS
from pipeline.model_repository import read_metadata
from pipeline.parsing import Parser
from pipeline.partitioning import group_by_partition
from pipeline.records import EventBatch, LogEvent
from pipeline.settings import Settings
from pipeline.training.raw_logs import mine_sessions, sessions_digest
from pipeline.windows import SESSION_END_ID

pytestmark = pytest.mark.integration

LINES = 20_000
SESSIONS = 300
LINES_PER_PAYLOAD = 500


def _events_of_chosen_sessions(lines: list[str]) -> tuple[list[list[LogEvent]], list[str]]:
    """Payloads' events (as the parse agent emits them) restricted to the first SESSIONS blocks."""
    mined = mine_sessions(lines, HDFS, progress=False)
    chosen = set(list(mined.sessions)[:SESSIONS])
    parser = Parser(HDFS, mined.miner)
    payloads = []
    for start in range(0, len(lines), LINES_PER_PAYLOAD):
        payload = "\n".join(lines[start : start + LINES_PER_PAYLOAD]).encode()
        events = [e for e in parser.parse(payload, "hdfs").events if e.session_key in chosen]
        payloads.append(events)
    return payloads, list(mined.sessions)[:SESSIONS]


def test_train_from_topic_uses_the_events_and_leaves_labelled_sessions_out(
    kafka_server: Settings,
    unique: str,
    tmp_path: Path,
    data_dir: Path,
) -> None:
    lines = hdfs_lines(data_dir)
    anomalous = read_abnormal_blocks(data_dir / "hdfs" / "abnormal_blocks.csv")
    payloads, keys = _events_of_chosen_sessions(lines[:LINES])
    labelled = [k for k in keys if k in anomalous]
    assert labelled, "the slice should hold some anomalous blocks"
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{k},x\n" for k in labelled))

    topic = f"events-{unique}"
    create_topics(kafka_server, [TopicSpec(topic, 4, {})])
    out = producer(kafka_server)
    for number, events in enumerate(payloads):
        for partition, group in group_by_partition([(e.session_key, e) for e in events], 4).items():
            # Both wire versions, as a topic holds after the parse agent moved to event-batch/2.
            batch = EventBatch(tuple(group)) if number % 2 else EventColumns.from_events(group)
            out.produce(topic, value=batch.encode(), partition=partition)
    out.produce(topic, value=b"not an event batch", partition=0)  # bad records are skipped, counted
    assert out.flush(30) == 0

    settings = kafka_server.replace(model_repo=tmp_path / "repo", state_dir=tmp_path, data_dir=data_dir)
    # --no-load: this test checks training only; the session's Triton has its own repository.
    command = [sys.executable, "-m", "pipeline.cli", "train", "deeplog", "--from-topic", topic, "--no-load"]
    command += ["--labels", str(labels), "--epochs", "1", "--validation-fraction", "0", "--threads", "1"]
    done = subprocess.run(
        command, env=settings.to_env(os.environ), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"({len(labelled)} labelled left out)" in done.stdout

    metadata = read_metadata(tmp_path / "repo", "deeplog", 1)
    events = [e for payload in payloads for e in payload]
    normal = {k for k in keys if k not in set(labelled)}
    normal_ids = {e.template_id for e in events if e.session_key in normal}
    assert set(metadata["vocabulary"]) - {SESSION_END_ID} == normal_ids
    assert metadata["training_data_sha256"] == sessions_digest(normal)  # exactly the unlabelled ones
    source = metadata["training_source"]
    assert source["sessions"] == SESSIONS and source["labelled_left_out"] == len(labelled)
    assert source["training_sessions"] == len(normal) and source["undecodable_records"] == 1
    assert source["events"] == len(events)

    # The worker's view: the published parser gives every line the id its event carried.
    deployed = load_template_set(tmp_path / "repo", "deeplog", 1)
    reparser, chosen = Parser(deployed.log_format, deployed.miner), set(keys)
    for start in range(0, LINES, LINES_PER_PAYLOAD):
        payload = "\n".join(lines[start : start + LINES_PER_PAYLOAD]).encode()
        again = [e for e in reparser.parse(payload, "hdfs").events if e.session_key in chosen]
        assert [e.template_id for e in again] == [e.template_id for e in payloads[start // LINES_PER_PAYLOAD]]
