"""Wire records: round trips, explicit schemas, clear errors on malformed input."""

from __future__ import annotations

import orjson
import pytest

from pipeline.errors import DataError
from pipeline.records import DeadLetter, EventBatch, LogEvent, SourceOffset, TemplateRecord

EVENT = LogEvent(
    source="hdfs-dn1",
    session_key="blk_-1608999687919862906",
    timestamp=1226262918.0,
    template_id=2**52 - 1,
    template="Receiving block <BLK> src: /<IP> dest: /<IP>",
    params=("blk_-1608999687919862906", "/10.250.19.102:54106", "/10.250.19.102:50010"),
    oov=False,
    raw=SourceOffset("raw-logs", 3, 12345),
)


@pytest.mark.parametrize(
    "record",
    [
        EVENT,
        LogEvent("bgl", "", None, 7, "x <NUM>", (), True),
    ],
)
def test_log_event_round_trip(record: LogEvent) -> None:
    assert LogEvent.decode(record.encode()) == record


@pytest.mark.parametrize("events", [(), (EVENT,), (EVENT, LogEvent("s", "k", 1.5, 1, "t", ("p",), True))])
def test_event_batch_round_trip(events: tuple[LogEvent, ...]) -> None:
    data = EventBatch(events).encode()
    assert orjson.loads(data)["schema"] == "event-batch/1"
    assert EventBatch.decode(data) == EventBatch(events)


@pytest.mark.parametrize("original", [b"", b"\xff\xfe\x00binary", "é line\n".encode()])
def test_dead_letter_round_trip(original: bytes) -> None:
    letter = DeadLetter("invalid_utf8", "parse", original, SourceOffset("raw-logs", 0, 9), "detail")
    data = letter.encode()
    assert orjson.loads(data)["original_b64"].isascii()
    assert DeadLetter.decode(data) == letter


def test_dead_letter_keeps_the_line_within_its_message_and_reads_records_without_it() -> None:
    letter = DeadLetter("no_header", "parse", b"x", SourceOffset("raw-logs", 2, 40, line=7), "d")
    assert orjson.loads(letter.encode())["line"] == 7
    assert DeadLetter.decode(letter.encode()) == letter
    old = orjson.loads(letter.encode())
    del old["line"]  # written before `line` existed
    assert DeadLetter.decode(orjson.dumps(old)).raw == SourceOffset("raw-logs", 2, 40, line=0)
    with pytest.raises(DataError, match="line"):
        DeadLetter.decode(orjson.dumps({**old, "line": "7"}))


def test_template_record_round_trip_and_key() -> None:
    record = TemplateRecord(
        123, "Verification succeeded for <BLK>", 1226262918.0, 42, replaces_id=7, oov=True
    )
    assert TemplateRecord.decode(record.encode()) == record
    assert record.key == b"123"


def _event_dict(**changes: object) -> bytes:
    obj = EVENT.to_json()
    obj.update(changes)
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "expected a JSON object"),
        (b"\x00\x01", "expected a JSON object"),
        (b"[]", "got list"),
        (_event_dict(schema="log-event/2"), "log-event/2"),
        (_event_dict(template_id="12"), "template_id"),
        (_event_dict(template_id=True), "template_id"),
        (_event_dict(oov=1), "oov"),
        (_event_dict(params="a b"), "params"),
        (orjson.dumps({"schema": "log-event/1"}), "missing"),
    ],
)
def test_log_event_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        LogEvent.decode(data)


@pytest.mark.parametrize(
    ("cls", "data"),
    [
        (EventBatch, orjson.dumps({"schema": "event-batch/1", "events": {}})),
        (EventBatch, orjson.dumps({"schema": "event-batch/1", "events": [{"schema": "nope"}]})),
        (DeadLetter, orjson.dumps({"schema": "dead-letter/1", "original_b64": "***"})),
        (TemplateRecord, orjson.dumps({"schema": "log-template/1", "template_id": 1})),
        (TemplateRecord, EVENT.encode()),
    ],
)
def test_other_decode_errors(cls: type, data: bytes) -> None:
    with pytest.raises(DataError):
        cls.decode(data)


def test_log_event_keeps_line_and_ingest_time_and_reads_older_records() -> None:
    raw = SourceOffset("raw-logs", 2, 40, line=7, timestamp=1700000000.25)
    event = LogEvent("hdfs", "blk_1", None, 5, "t", (), False, raw)
    assert LogEvent.decode(event.encode()).raw == raw
    older = orjson.loads(event.encode())
    del older["line"], older["ingested_at"]  # what earlier releases wrote
    assert LogEvent.from_json(older).raw == SourceOffset("raw-logs", 2, 40)
