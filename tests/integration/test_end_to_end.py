"""HDFS_100k through real Kafka, a real Faust worker and a real Triton, checked against offline detection.

One replay serves several acceptance checks (it is the expensive part):
- every line is parsed into `log-events` with the file's session keys (issue 3);
- bad records land in the dead-letter topic with a reason, and the good records around them are
  processed (issue 3);
- every block the offline evaluation of the same model version flags is alerted, and streaming
  precision and recall equal offline within 0.01 (issue 5);
- after a restart the worker gives the same template ids (issue 3).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson
import pytest

from pipeline.adapters.kafka import consume, consumer, create_topics, pipeline_topics, replay_lines
from pipeline.adapters.triton import load_model
from pipeline.alerts import decode_alert
from pipeline.datasets.loghub import hdfs_lines, read_abnormal_blocks
from pipeline.demo import block_metrics
from pipeline.formats import HDFS
from pipeline.offline import detect_offline
from pipeline.records import DeadLetter, EventBatch
from pipeline.settings import Settings
from pipeline.training.next_event import TrainConfig
from pipeline.training.raw_logs import publish_trained, train_from_raw_lines
from tests.support.worker import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BAD_RECORDS = [
    b"\xff\xfe not utf-8 \xc3\x28",
    b"",
    b"\x00\x01\x02 binary \x00",
    b"081109 203518 143 INFO dfs.DataNode: " + b"x" * (2 * 1024 * 1024),  # over the 1 MiB record limit
]


@pytest.fixture(scope="module")
def hdfs(data_dir: Path) -> tuple[list[str], frozenset[str]]:
    return hdfs_lines(data_dir), read_abnormal_blocks(data_dir / "hdfs" / "abnormal_blocks.csv")


@pytest.fixture(scope="module")
def deployed(triton_server: Settings, hdfs: tuple[list[str], frozenset[str]]) -> int:
    """A DeepLog version trained on 80% of the normal blocks, published and loaded into Triton."""
    lines, anomalous = hdfs
    trained, mined, train_keys, _ = train_from_raw_lines(
        "deeplog", lines, HDFS, anomalous, TrainConfig(seed=0, epochs=8), progress=False
    )
    published = publish_trained(
        triton_server.model_repo, trained, mined.miner, "hdfs", {"train_blocks": train_keys}
    )
    assert load_model(triton_server.triton_grpc_url, "deeplog") == published.version
    return published.version


def _settings(kafka: Settings, triton: Settings, unique: str, tmp: Path) -> Settings:
    return kafka.replace(
        raw_logs_topic=f"raw-{unique}",
        log_events_topic=f"events-{unique}",
        anomalies_topic=f"anomalies-{unique}",
        templates_topic=f"templates-{unique}",
        dead_letter_topic=f"dead-{unique}",
        app_id=f"logad-test-{unique}",
        model_repo=triton.model_repo,
        triton_grpc_url=triton.triton_grpc_url,
        detection_model="deeplog",
        inference_backend="triton",
        session_timeout_s=10.0,
        state_dir=tmp,
    )


def _values(settings: Settings, topic: str, unique: str) -> list[bytes]:
    reader = consumer(settings, f"check-{topic}-{unique}", [topic])
    try:
        return [m.value() for m in consume(reader, timeout_s=60, idle_s=4)]
    finally:
        reader.close()


def test_hdfs_replay_streaming_equals_offline(
    kafka_server: Settings,
    triton_server: Settings,
    hdfs: tuple[list[str], frozenset[str]],
    deployed: int,
    unique: str,
    tmp_path: Path,
) -> None:
    lines, anomalous = hdfs
    settings = _settings(kafka_server, triton_server, unique, tmp_path)
    create_topics(settings, pipeline_topics(settings))
    worker = Worker(settings, tmp_path / "worker.log").start()
    try:
        payloads = [line.encode() for line in lines]
        # Bad records in the middle of the stream, each its own message.
        sent = replay_lines(
            settings, payloads[:50_000], settings.raw_logs_topic, "hdfs", lines_per_message=100
        )
        for bad in BAD_RECORDS:
            sent += replay_lines(settings, [bad], settings.raw_logs_topic, "hdfs")
        sent += replay_lines(
            settings, payloads[50_000:], settings.raw_logs_topic, "hdfs", lines_per_message=100
        )
        worker.wait_drained(lines=len(lines) + len(BAD_RECORDS))
    finally:
        worker.stop()

    # Every line parsed, with the file's session keys.
    events = [
        e for v in _values(settings, settings.log_events_topic, unique) for e in EventBatch.decode(v).events
    ]
    keys_per_line = [set(re.findall(r"blk_-?\d+", line)) for line in lines]
    expected_keys = set().union(*keys_per_line)
    assert {e.session_key for e in events} == expected_keys
    assert len(events) == sum(len(keys) for keys in keys_per_line)  # one event per (line, block), none twice

    # Bad records are dead letters with a reason; the good ones around them were processed above.
    dead = [DeadLetter.decode(v) for v in _values(settings, settings.dead_letter_topic, unique)]
    assert {d.reason for d in dead} == {"invalid_utf8", "binary", "oversized", "empty"}, [
        d.reason for d in dead
    ]

    # Streaming alerts against offline detection with the same model version.
    alerts = [decode_alert(v) for v in _values(settings, settings.anomalies_topic, unique)]
    # One alert per session and cause; a session that idles past its timeout and resumes may repeat
    # one, always under the same alert id, so consumers de-duplicate by id.
    assert len({a.alert_id for a in alerts}) == len({(a.session_key, a.kind) for a in alerts})
    assert {a.model_version for a in alerts} == {deployed}
    streamed = {a.session_key for a in alerts}
    offline = asyncio.run(detect_offline(lines, triton_server.model_repo, "deeplog", deployed, "hdfs"))
    assert offline.flagged_sessions <= streamed, sorted(offline.flagged_sessions - streamed)[:10]
    blocks = sorted(expected_keys)
    online_scores = block_metrics(streamed, anomalous, blocks)
    offline_scores = block_metrics(set(offline.flagged_sessions), anomalous, blocks)
    assert abs(online_scores["precision"] - offline_scores["precision"]) <= 0.01
    assert abs(online_scores["recall"] - offline_scores["recall"]) <= 0.01
    print("streaming", orjson.dumps(online_scores).decode(), "offline", orjson.dumps(offline_scores).decode())

    # A restarted worker (same consumer group, same session table) gives the same template ids.
    settings2 = settings.replace(log_events_topic=f"events2-{unique}")
    create_topics(settings2, pipeline_topics(settings2))
    again = Worker(settings2, tmp_path / "worker2.log").start()
    try:
        replay_lines(
            settings2, payloads[:2000], settings2.raw_logs_topic, "hdfs-again", lines_per_message=100
        )
        again.wait_drained(lines=2000)
    finally:
        again.stop()
    replayed = [
        e for v in _values(settings2, settings2.log_events_topic, unique) for e in EventBatch.decode(v).events
    ]
    before = {e.template: e.template_id for e in events}
    after = {e.template: e.template_id for e in replayed}
    assert after and all(before[text] == tid for text, tid in after.items())
