"""Raw-line read-back for alerts: the parser's own split, texts by coordinates, header fields, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence

import pytest

from pipeline.adapters.kafka import _runs
from pipeline.alerts import Alert, AlertKind, RawCoordinates, RawLine, alert_id
from pipeline.formats import BGL, HDFS
from pipeline.parsing import Parser
from pipeline.raw_lines import InMemoryRawMessages, MessageKey, RawLineReader, record_texts
from pipeline.records import SourceOffset
from pipeline.templates import TemplateMiner

HEAD = "081109 203518 143 WARN dfs.DataNode$PacketResponder: writeBlock blk_5 received exception x"
TRACE = "\tat org.apache.Foo.bar(Foo.java:12)\n\tat java.lang.Thread.run(Thread.java:1)"
PLAIN = "081109 203519 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: blk_5"
# A message of 3 records: a stack trace joined to its first line, a line without a header (orphan,
# dead-lettered but counted), and a plain line; a blank line and \r\n endings in between.
PAYLOAD = f"{HEAD}\r\n{TRACE}\n\n{PLAIN}\n".encode()
BGL_LINES = [
    "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS "
    "KERNEL INFO instruction cache parity error corrected",
    "KERNDTLB 1117838573 2005.06.03 R23-M0-NE-C:J05-U01 2005-06-03-15.42.53.276129 R23-M0-NE-C:J05-U01 RAS "
    "KERNEL FATAL data TLB error interrupt",
]


def parser(fmt: object = HDFS) -> Parser:
    return Parser(fmt, TemplateMiner())  # type: ignore[arg-type]


def alert(
    lines: Sequence[RawCoordinates], kind: AlertKind = AlertKind.OOV_EVENT, source: str = "hdfs"
) -> Alert:
    return Alert(
        alert_id=alert_id(source, "blk_5", kind),
        source=source,
        session_key="blk_5",
        kind=kind,
        model="deeplog",
        model_version=1,
        score=1.0,
        event_template_id=7,
        event_template="writeBlock <*> received exception <*>",
        expected=(),
        window=(),
        first_timestamp=None,
        last_timestamp=None,
        position=3,
        raw=lines[-1] if lines else RawCoordinates(),
        lines=tuple(RawLine(at) for at in lines),
    )


def test_read_back_splits_as_the_parser_indexes_its_events() -> None:
    p = parser()
    events = p.parse(PAYLOAD, "hdfs", SourceOffset("raw-logs", 0, 9)).events
    texts = record_texts(p, PAYLOAD)
    assert texts == [f"{HEAD}\n{TRACE}", PLAIN]
    for event in events:  # every event's line index names the record it came from
        assert event.session_key in texts[event.raw.line]
    assert [e.raw.line for e in events] == [0, 1]


def test_line_indices_count_orphan_lines_like_the_parser() -> None:
    payload = f"no header here\n{PLAIN}".encode()
    (event,) = parser().parse(payload, "hdfs", SourceOffset("raw-logs", 0, 1)).events
    assert event.raw.line == 1 and record_texts(parser(), payload)[1] == PLAIN


def test_attach_fills_texts_and_header_fields_from_the_offending_line() -> None:
    messages = InMemoryRawMessages()
    messages.add("raw-logs", 0, 9, PAYLOAD)
    messages.add("raw-logs", 0, 4, PLAIN.encode())
    reader = RawLineReader(messages, lambda _source: parser())
    coords = [RawCoordinates("raw-logs", 0, 4, 0), RawCoordinates("raw-logs", 0, 9, 0)]
    (filled,) = asyncio.run(reader.attach([alert(coords)]))
    assert [line.text for line in filled.lines] == [PLAIN, f"{HEAD}\n{TRACE}"]
    assert filled.fields == (("component", "dfs.DataNode$PacketResponder"), ("pid", "143"), ("level", "WARN"))
    assert filled.note == ""


def test_window_alert_names_every_node_of_its_lines() -> None:
    messages = InMemoryRawMessages()
    messages.add("raw-logs", 2, 0, "\n".join(BGL_LINES).encode())
    reader = RawLineReader(messages, lambda _source: parser(BGL))
    coords = [RawCoordinates("raw-logs", 2, 0, 0), RawCoordinates("raw-logs", 2, 0, 1)]
    (filled,) = asyncio.run(reader.attach([alert(coords, AlertKind.WINDOW_CLASS, "bgl")]))
    assert [line.text for line in filled.lines] == BGL_LINES
    assert dict(filled.fields) == {
        "node": "R02-M1-N0-C:J12-U11,R23-M0-NE-C:J05-U01",
        "component": "KERNEL",
        "type": "RAS",
        "level": "INFO,FATAL",
    }


def test_missing_message_or_index_leaves_coordinates_and_a_note() -> None:
    messages = InMemoryRawMessages()
    messages.add("raw-logs", 0, 9, PAYLOAD)
    reader = RawLineReader(messages, lambda _source: parser())
    coords = [RawCoordinates("raw-logs", 0, 3, 0), RawCoordinates("raw-logs", 0, 9, 5)]  # gone; no line 5
    (filled,) = asyncio.run(reader.attach([alert(coords)]))
    assert [line.text for line in filled.lines] == [None, None]
    assert "2 of 2 raw lines not found" in filled.note


class Failing:
    def messages(self, keys: Sequence[MessageKey]) -> Mapping[MessageKey, bytes]:
        raise OSError("broker unreachable")


class Stuck:
    def __init__(self) -> None:
        self.release = threading.Event()

    def messages(self, keys: Sequence[MessageKey]) -> Mapping[MessageKey, bytes]:
        self.release.wait(5)
        return {}


def test_failed_read_back_still_gives_the_alert_with_a_note() -> None:
    reader = RawLineReader(Failing(), lambda _source: parser())
    coords = [RawCoordinates("raw-logs", 0, 9, 0)]
    (filled,) = asyncio.run(reader.attach([alert(coords)]))
    assert filled.lines == (RawLine(coords[0]),) and "broker unreachable" in filled.note


def test_slow_read_back_is_bounded_and_not_run_twice_at_once() -> None:
    stuck = Stuck()
    reader = RawLineReader(stuck, lambda _source: parser(), timeout_s=0.05)

    async def twice() -> tuple[Alert, Alert, bool]:
        (first,) = await reader.attach([alert([RawCoordinates("raw-logs", 0, 9, 0)])])
        (second,) = await reader.attach([alert([RawCoordinates("raw-logs", 0, 10, 0)])])
        busy = reader.busy
        stuck.release.set()
        return first, second, busy

    first, second, busy = asyncio.run(twice())
    assert "within 0.05s" in first.note and "still running" in second.note and busy


def test_alerts_without_kafka_coordinates_pass_unchanged() -> None:
    reader = RawLineReader(Failing(), lambda _source: parser())
    plain = alert([])
    assert asyncio.run(reader.attach([plain])) == [plain]


@pytest.mark.parametrize(
    ("offsets", "gap", "runs"),
    [
        ([1], 16, [(1, 1)]),
        ([1, 5, 17, 40], 16, [(1, 17), (40, 40)]),
        ([3, 4, 9], 0, [(3, 3), (4, 4), (9, 9)]),
    ],
)
def test_offsets_read_in_runs(offsets: list[int], gap: int, runs: list[tuple[int, int]]) -> None:
    assert _runs(offsets, gap) == runs


def test_messages_remembered_by_the_parse_agent_need_no_read_back() -> None:
    class Unreachable:
        def messages(self, keys: Sequence[MessageKey]) -> Mapping[MessageKey, bytes]:
            raise AssertionError(f"read back {keys} although the message was remembered")

    reader = RawLineReader(Unreachable(), lambda _source: parser())
    reader.remember(("raw-logs", 0, 9), PAYLOAD)
    (filled,) = asyncio.run(reader.attach([alert([RawCoordinates("raw-logs", 0, 9, 1)])]))
    assert filled.lines[0].text == PLAIN and filled.note == ""
