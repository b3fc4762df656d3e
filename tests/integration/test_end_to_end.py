"""HDFS_100k through real Kafka, a real Faust worker and a real Triton, checked against offline detection.

One replay serves several acceptance checks (it is the expensive part):
- every line is parsed into `log-events` with the file's session keys (issue 3);
- bad records land in the dead-letter topic with a reason, and the good records around them are
  processed (issue 3);
- every block the offline evaluation of the same model version flags is alerted, and streaming
  precision and recall equal offline within 0.01 (issue 5);
- after a restart the worker gives the same template ids (issue 3);
- alerts carry the raw lines behind them, read back from raw-logs: each text equals the line at its
  coordinates, the offending one names the session, and the event time is that line's own (issue 17).
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from pipeline.adapters.kafka import create_topics, pipeline_topics, read_to_end, replay_lines
from pipeline.alerts import Alert
from pipeline.event_columns import read_event_batch
from pipeline.formats import HDFS
from pipeline.presentation import format_alert
from pipeline.records import DeadLetter
from pipeline.settings import Settings
from pipeline.windows import SESSION_END_ID
from tests.support.contracts import assert_topic_contracts
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
    # A generous read-back bound: the 2 shared cores must not turn a slow read into missing lines.
    settings = run_settings(kafka_server, triton_server, unique, tmp_path, alert_raw_lines_timeout_s=20.0)
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
        e for v in topic_values(settings, settings.log_events_topic) for e in read_event_batch(v).events
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

    # Every record on every topic has its content-type header and validates against its schema.
    checked = assert_topic_contracts(settings)
    assert checked[settings.anomalies_topic] and checked[settings.session_state_topic], checked

    # Streaming alerts against offline detection with the same model version.
    alerts = alerts_of(settings)
    offline = offline_result(lines, triton_server, deployed, "hdfs")
    scores = assert_matches_offline(alerts, offline, anomalous, deployed)
    print(orjson.dumps(scores).decode())
    # Every alert points at the raw record that raised it (an ended session: its last record), and
    # carries the raw lines behind it, read back: each equal to the line at its coordinates.
    assert all(a.raw.topic == settings.raw_logs_topic and a.raw.offset >= 0 for a in alerts)
    _assert_raw_lines_are_the_originals(alerts, settings.raw_logs_topic, _raw_messages(settings))
    assert all(o.lines and o.lines[-1].text for o in offline.alerts)  # offline reads its input back

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
        e for v in topic_values(settings2, settings2.log_events_topic) for e in read_event_batch(v).events
    ]
    before = {e.template: e.template_id for e in events}
    after = {e.template: e.template_id for e in replayed}
    assert after and all(before[text] == tid for text, tid in after.items())


def _raw_messages(settings: Settings) -> dict[tuple[int, int], list[str]]:
    """(partition, offset) -> the message's lines, read straight from raw-logs, split independently
    of the parser (HDFS_100k has no continuation lines, so records are its non-empty lines)."""
    return {
        (m.partition(), m.offset()): [
            line for line in (m.value() or b"").decode(errors="replace").split("\n") if line
        ]
        for m in read_to_end(settings, settings.raw_logs_topic)
    }


def _assert_raw_lines_are_the_originals(
    alerts: list[Alert], topic: str, raw: dict[tuple[int, int], list[str]]
) -> None:
    checked = 0
    for alert in alerts:
        assert alert.note == "" and 1 <= len(alert.lines) <= 10, (alert.note, len(alert.lines))
        assert alert.lines[-1].at == alert.raw
        for line in alert.lines:
            assert line.at.topic == topic
            assert line.text == raw[(line.at.partition, line.at.offset)][line.at.line], line
            assert alert.session_key in line.text  # every line of the window belongs to the session
            checked += 1
        record = HDFS.parse_line(alert.lines[-1].text or "")
        assert alert.event_time == record.timestamp
        assert dict(alert.fields)["component"] == record.component
        if alert.event_template_id == SESSION_END_ID:
            assert alert.event_template == "end of session"
    print(f"{len(alerts)} alerts, {checked} raw lines equal to the originals")
    print(format_alert(alerts[-1], verbose=True))  # what `logad tail --verbose` shows (with -s)
