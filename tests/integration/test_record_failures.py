"""Records the worker cannot handle, on the real broker: each bad record, or bad line, alone is dead-lettered.

- handling raised (here: a window source whose window model has no version, in the parse agent and
  in the detect agent): the record is an `internal-error` dead letter with its bytes and position,
  and the stream goes on;
- one 5 MB line among 10 good ones in one message: only that line is a dead letter;
- a line with a few invalid UTF-8 bytes is parsed with replacement characters and counted; a binary
  line is a dead letter; a source whose lines mostly fail its format gets a warning in the worker log.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.kafka import producer
from pipeline.event_columns import read_event_batch
from pipeline.records import DeadLetter, EventBatch, LogEvent, SourceOffset
from pipeline.settings import Settings
from tests.support.pipeline_run import run_settings, topic_values
from tests.support.worker import Worker

pytestmark = [pytest.mark.integration]

BGL_LINE = (
    b"- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 "
    b"RAS KERNEL INFO instruction cache parity error corrected"
)


def _produce(settings: Settings, records: list[tuple[str, bytes, str]]) -> list[int]:
    """(topic, value, source) in order; returns their offsets."""
    out = producer(settings)
    offsets: dict[int, int] = {}

    def delivered(index: int) -> Any:
        def callback(err: Any, msg: Any) -> None:
            assert err is None, err
            offsets[index] = msg.offset()

        return callback

    for i, (topic, value, source) in enumerate(records):
        headers = [("source", source.encode())] if source else None
        partition = {"partition": 0} if topic == settings.log_events_topic else {}
        out.produce(
            topic,
            key=source.encode() or b"tick",
            value=value,
            headers=headers,
            on_delivery=delivered(i),
            **partition,
        )
        out.poll(0)
    assert out.flush(60) == 0
    return [offsets[i] for i in range(len(records))]


def _dead_letters(settings: Settings) -> list[DeadLetter]:
    return [DeadLetter.decode(v) for v in topic_values(settings, settings.dead_letter_topic)]


def _events(settings: Settings) -> list[LogEvent]:
    values = topic_values(settings, settings.log_events_topic)
    return [e for v in values for e in read_event_batch(v).events]


def _batches(lines: list[str], size: int = 100) -> list[bytes]:
    return ["\n".join(lines[i : i + size]).encode() for i in range(0, len(lines), size)]


def test_records_whose_handling_raises_are_internal_errors_and_nothing_else_is_lost(
    kafka_server: Settings,
    triton_server: Settings,
    hdfs: tuple[list[str], frozenset[str]],
    deployed: int,
    unique: str,
    tmp_path: Path,
) -> None:
    # `bgl` is a window source whose window model was never published: parsing its lines raises
    # ModelError (no template set), and so does classifying its events. No test hook involved.
    settings = run_settings(
        kafka_server, triton_server, unique, tmp_path, window_sources="bgl", window_model=f"absent_{unique}"
    )
    good = hdfs[0][:1000]
    raw_topic, events_topic = settings.raw_logs_topic, settings.log_events_topic
    bgl_payloads = [BGL_LINE, BGL_LINE + b"\n" + BGL_LINE, b"not even a bgl line"]
    batches = _batches(good)
    records = [(raw_topic, batch, "hdfs") for batch in batches]
    for n, payload in enumerate(bgl_payloads):
        records.insert(3 * n + 2, (raw_topic, payload, "bgl"))
    # A log-events record that decodes but makes the detector raise (a window-source event).
    bgl_event = LogEvent("bgl", "", 1117838570.0, 1, "t", (), False, SourceOffset(raw_topic, 0, 0))
    poison = EventBatch((bgl_event,)).encode()
    records.insert(5, (events_topic, poison, ""))
    worker = Worker(settings, tmp_path / "worker.log").start()
    try:
        offsets = _produce(settings, records)
        worker.wait_drained(lines=len(good) + len(bgl_payloads) + 1, timeout_s=120)
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
    finally:
        worker.stop()
    dead = _dead_letters(settings)
    assert Counter((d.reason, d.step) for d in dead) == {
        ("internal-error", "parse"): 3,
        ("internal-error", "detect"): 1,
    }
    parse_dead = sorted((d for d in dead if d.step == "parse"), key=lambda d: d.raw.offset)
    expected = [
        (raw_topic, off, value)
        for (topic, value, _), off in zip(records, offsets, strict=True)
        if value in bgl_payloads
    ]
    assert [(d.raw.topic, d.raw.offset, d.original) for d in parse_dead] == expected
    assert all("ModelError" in d.detail for d in dead)
    (detect_dead,) = (d for d in dead if d.step == "detect")
    assert (detect_dead.raw.topic, detect_dead.original) == (events_topic, poison)
    # Nothing else lost: every good line parsed, and the group committed past the failed records.
    hdfs_events = [e for e in _events(settings) if e.source == "hdfs"]
    assert len(hdfs_events) == len(good)
    assert worker.committed_lag() == {raw_topic: 0, events_topic: 0}


def test_one_oversized_line_is_dead_lettered_and_its_ten_neighbours_parsed(
    kafka_server: Settings,
    triton_server: Settings,
    hdfs: tuple[list[str], frozenset[str]],
    deployed: int,
    unique: str,
    tmp_path: Path,
) -> None:
    settings = run_settings(kafka_server, triton_server, unique, tmp_path)
    good = [line.encode() for line in hdfs[0][:10]]
    huge = b"081109 203518 143 INFO dfs.DataNode: " + b"y" * (5 * 1024 * 1024)
    message = b"\n".join([*good[:6], huge, *good[6:]])  # ~5 MB: the broker and clients allow 16 MiB
    worker = Worker(settings, tmp_path / "worker.log").start()
    try:
        (offset,) = _produce(settings, [(settings.raw_logs_topic, message, "hdfs")])
        worker.wait_drained(lines=len(good) + 1, timeout_s=120)
    finally:
        worker.stop()
    (letter,) = _dead_letters(settings)
    assert (letter.reason, letter.raw.offset, letter.original) == ("oversized_line", offset, huge[: 64 << 10])
    assert f"line 6 of the message is {len(huge)} bytes" in letter.detail
    events = _events(settings)
    assert sorted(e.raw.line for e in events) == list(range(10)) and {e.raw.offset for e in events} == {
        offset
    }


def test_few_invalid_bytes_are_replaced_binary_lines_dead_and_a_wrong_source_warned(
    kafka_server: Settings,
    triton_server: Settings,
    hdfs: tuple[list[str], frozenset[str]],
    deployed: int,
    unique: str,
    tmp_path: Path,
) -> None:
    settings = run_settings(kafka_server, triton_server, unique, tmp_path)
    good = [line.encode() for line in hdfs[0][:5]]
    latin1 = good[0] + b" caf\xe9"  # one byte that is not UTF-8, in the content
    binary = b"081109 203518 143 INFO dfs.DataNode: \x00\x01\x02 frame"
    message = b"\n".join([latin1, *good[1:3], binary, *good[3:]])
    mislabeled = [BGL_LINE] * 150  # BGL lines sent as source `wrongsrc`: parsed with DeepLog's HDFS format
    worker = Worker(settings, tmp_path / "worker.log").start()
    try:
        _produce(
            settings,
            [
                (settings.raw_logs_topic, message, "hdfs"),
                (settings.raw_logs_topic, b"\n".join(mislabeled), "wrongsrc"),
            ],
        )
        worker.wait_drained(lines=len(good) + 1 + len(mislabeled), timeout_s=120)
        replacements = worker.counter("logad_decode_replacements_total")
        warnings = worker.counter("logad_format_mismatch_warnings_total")
    finally:
        worker.stop()
    assert (replacements, warnings) == (1.0, 1.0)
    dead = _dead_letters(settings)
    assert Counter(d.reason for d in dead) == {"binary": 1, "no_header": len(mislabeled)}
    (letter,) = (d for d in dead if d.reason == "binary")
    assert letter.original == binary
    events = _events(settings)
    assert len(events) == len(good)
    assert sum("caf\ufffd" in e.template or "caf\ufffd" in " ".join(e.params) for e in events) == 1
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "source 'wrongsrc': 150 of its last 150 lines (100%) do not match the hdfs log format" in log
