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

import re
from pathlib import Path

import orjson
import pytest

from pipeline.adapters.kafka import create_topics, pipeline_topics, replay_lines
from pipeline.records import DeadLetter, EventBatch
from pipeline.settings import Settings
from tests.support.pipeline_run import (
    alerts_of,
    assert_matches_offline,
    offline_result,
    run_settings,
    topic_values,
)
from tests.support.worker import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BAD_RECORDS = [
    b"\xff\xfe\xfd not utf-8 \xc3\x28",  # 4 of 16 bytes undecodable: over the 20% of a text line
    b"",
    b"\x00\x01\x02 binary \x00",
    b"081109 203518 143 INFO dfs.DataNode: " + b"x" * (2 * 1024 * 1024),  # over the 1 MiB line limit
]


def test_hdfs_replay_streaming_equals_offline(
    kafka_server: Settings,
    triton_server: Settings,
    hdfs: tuple[list[str], frozenset[str]],
    deployed: int,
    unique: str,
    tmp_path: Path,
) -> None:
    lines, anomalous = hdfs
    settings = run_settings(kafka_server, triton_server, unique, tmp_path)
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
    assert set(worker.committed_lag().values()) == {0}  # a graceful stop commits what was processed

    # Every line parsed, with the file's session keys.
    events = [
        e for v in topic_values(settings, settings.log_events_topic) for e in EventBatch.decode(v).events
    ]
    keys_per_line = [set(re.findall(r"blk_-?\d+", line)) for line in lines]
    expected_keys = set().union(*keys_per_line)
    assert {e.session_key for e in events} == expected_keys
    assert len(events) == sum(len(keys) for keys in keys_per_line)  # one event per (line, block), none twice

    # Bad records are dead letters with a reason; the good ones around them were processed above.
    dead = [DeadLetter.decode(v) for v in topic_values(settings, settings.dead_letter_topic)]
    assert {d.reason for d in dead} == {"invalid_utf8", "binary", "oversized_line", "empty"}, [
        d.reason for d in dead
    ]

    # Streaming alerts against offline detection with the same model version.
    alerts = alerts_of(settings)
    offline = offline_result(lines, triton_server, deployed, "hdfs")
    scores = assert_matches_offline(alerts, offline, anomalous, deployed)
    print(orjson.dumps(scores).decode())
    # An alert raised by an event points at the raw record that carried it.
    by_event = [a for a in alerts if a.raw.offset >= 0]
    assert by_event and all(a.raw.topic == settings.raw_logs_topic for a in by_event)
    assert len(by_event) == sum(1 for a in alerts if a.event_template != "<session ended>")

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
        e for v in topic_values(settings2, settings2.log_events_topic) for e in EventBatch.decode(v).events
    ]
    before = {e.template: e.template_id for e in events}
    after = {e.template: e.template_id for e in replayed}
    assert after and all(before[text] == tid for text, tid in after.items())
