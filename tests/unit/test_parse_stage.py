"""The parse stage with in-memory sinks: the same events as the old path (`Parser`, `event-batch/1`
per partition), dead letters, new templates, counters; every `log-events` message `event-batch/2`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest

from pipeline.columnar_parse import ColumnarParser
from pipeline.datasets.loghub import HDFS_RAW, read_lines
from pipeline.event_columns import EVENT_BATCH_V2_SCHEMA, read_event_batch
from pipeline.formats import HDFS, LogFormat
from pipeline.parse_stage import MessageOutcome, ParseStage
from pipeline.parsing import Parser
from pipeline.partitioning import group_by_partition
from pipeline.raw_source import BAD_HEADER
from pipeline.records import DeadLetter, EventBatch, SourceOffset, TemplateRecord
from pipeline.templates import TemplateMiner

PARTITIONS = 4
NOW_S = 1_700_000_500.0
LINE = (
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 "
    "src: /10.250.19.102:54106 dest: /10.250.19.102:50010"
)
BGL_LINE = (
    "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS "
    "KERNEL INFO instruction cache parity error corrected"
)


class Sinks:
    """What the stage sent, per port, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[int, bytes, bytes]] = []
        self.dead: list[tuple[bytes, bytes]] = []
        self.templates: list[tuple[bytes, bytes]] = []

    async def send_events(self, partition: int, key: bytes, value: bytes) -> None:
        self.events.append((partition, key, value))

    async def send_dead(self, key: bytes, value: bytes) -> None:
        self.dead.append((key, value))

    async def send_template(self, key: bytes, value: bytes) -> None:
        self.templates.append((key, value))


def _frozen(fmt: LogFormat, lines: Iterable[str]) -> bytes:
    miner = TemplateMiner()
    for line in lines:
        miner.learn(fmt.template_text(fmt.parse_line(line)))
    miner.freeze()
    return miner.save_state()


def _stage(parser: ColumnarParser, sinks: Sinks) -> ParseStage:
    return ParseStage(
        lambda source: parser,
        sinks.send_events,
        sinks.send_dead,
        sinks.send_template,
        lambda: NOW_S,
        PARTITIONS,
    )


def _handle(
    stage: ParseStage, payload: bytes, offset: int = 0, headers: object = None, key: bytes | None = b"hdfs"
) -> MessageOutcome:
    raw = SourceOffset("raw-logs", 1, offset, timestamp=1_700_000_000.0 + offset)
    return asyncio.run(stage.handle(payload, headers, key, raw))


def test_same_events_as_the_old_path_on_hdfs_100k(data_dir: Path) -> None:
    lines = list(read_lines(data_dir / HDFS_RAW))[:20_000]
    # Templates from the first quarter, so later lines bring OOV events too.
    state = _frozen(HDFS, lines[:5_000])
    old = Parser(HDFS, TemplateMiner.load_state(state))
    sinks = Sinks()
    stage = _stage(ColumnarParser(HDFS, TemplateMiner.load_state(state)), sinks)
    events = oov = 0
    for offset, start in enumerate(range(0, len(lines), 500)):
        payload = "\n".join(lines[start : start + 500]).encode()
        raw = SourceOffset("raw-logs", 1, offset, timestamp=1_700_000_000.0 + offset)
        expected = old.parse(payload, "hdfs", raw, NOW_S)
        groups = group_by_partition([(e.session_key, e) for e in expected.events], PARTITIONS)
        sent_before = len(sinks.events)
        outcome = _handle(stage, payload, offset)
        sent = sinks.events[sent_before:]
        # One message per partition, partitions in the old order, each decoding to the old batch.
        assert [(p, k) for p, k, _ in sent] == [(p, f"partition-{p}".encode()) for p in groups]
        for (_, _, value), events_of in zip(sent, groups.values(), strict=True):
            assert orjson.loads(value)["schema"] == EVENT_BATCH_V2_SCHEMA
            assert read_event_batch(value) == EventBatch(tuple(events_of))
        assert outcome.lines == expected.records == 500
        assert outcome.events == len(expected.events)
        events += outcome.events
        oov += outcome.oov
        assert outcome.oov == sum(e.oov for e in expected.events)
    assert oov > 0, "the slice should hold templates the frozen set does not know"
    assert stage.counters.events == events and stage.counters.lines == len(lines)
    assert stage.counters.batches == len(sinks.events)
    assert sinks.dead == []


def test_new_templates_are_sent_once_in_first_seen_order() -> None:
    state = _frozen(HDFS, [LINE])
    old = Parser(HDFS, TemplateMiner.load_state(state))
    sinks = Sinks()
    stage = _stage(ColumnarParser(HDFS, TemplateMiner.load_state(state)), sinks)
    other = LINE.replace("Receiving block", "Deleting block").replace("src:", "from")
    payloads = [f"{LINE}\n{other}\n{LINE}".encode(), f"{other}\n{LINE}".encode()]
    expected = [t for n, p in enumerate(payloads) for t in old.parse(p, "hdfs", now_s=NOW_S).new_templates]
    for offset, payload in enumerate(payloads):
        _handle(stage, payload, offset)
    records = [TemplateRecord.decode(value) for _, value in sinks.templates]
    assert records == expected
    assert len(records) == 2 and not records[0].oov and records[1].oov  # the second is not in the set
    assert [key for key, _ in sinks.templates] == [str(r.template_id).encode() for r in records]


def test_dead_letters_keep_the_others_lines_and_are_counted() -> None:
    state = _frozen(HDFS, [LINE])
    old = Parser(HDFS, TemplateMiner.load_state(state), max_line_bytes=1024)
    sinks = Sinks()
    stage = _stage(ColumnarParser(HDFS, TemplateMiner.load_state(state), max_line_bytes=1024), sinks)
    payload = b"\n".join(
        [
            b"no header here",  # no record before it to continue
            LINE.encode(),
            b"\x00\x01binary frame",
            LINE.encode() + b" " + b"x" * 2000,  # oversized_line
            LINE.replace("Receiving", "Recei\xe9ving").encode("latin-1"),  # one byte replaced
            LINE.encode(),
        ]
    )
    expected = old.parse(payload, "hdfs", SourceOffset("raw-logs", 1, 7, timestamp=1_700_000_007.0), NOW_S)
    outcome = _handle(stage, payload, 7)
    dead = [DeadLetter.decode(value) for _, value in sinks.dead]
    assert dead == [DeadLetter.decode(d.encode()) for d in expected.dead_letters]  # as on the wire
    assert [d.reason for d in dead] == ["binary", "oversized_line", "no_header"]
    assert [key for key, _ in sinks.dead] == [b"binary", b"oversized_line", b"no_header"]
    assert all(d.raw.offset == 7 and d.raw.partition == 1 for d in dead)
    assert dead[0].original == b"\x00\x01binary frame"
    assert outcome.dead_letters == ("binary", "oversized_line", "no_header")
    assert outcome.decode_replacements == expected.decode_replacements == 1
    assert outcome.lines == expected.records == 3
    # Line indices are what `Parser` gives (alerts read raw lines back by them).
    events = [e for _, _, value in sinks.events for e in read_event_batch(value).events]
    assert events == list(expected.events)
    assert stage.counters.dead_letters == {"binary": 1, "oversized_line": 1, "no_header": 1}
    assert stage.counters.decode_replacements == 1


def test_bad_source_header_is_a_dead_letter_and_nothing_is_parsed() -> None:
    sinks = Sinks()
    stage = _stage(ColumnarParser(HDFS, TemplateMiner.load_state(_frozen(HDFS, [LINE]))), sinks)
    outcome = _handle(stage, LINE.encode(), 3, headers=[("source", b"a\x00b")])
    assert outcome.dead_letters == (BAD_HEADER,)
    assert [DeadLetter.decode(v).original for _, v in sinks.dead] == [LINE.encode()]
    assert sinks.events == [] and sinks.templates == []
    assert stage.counters.dead_letters == {BAD_HEADER: 1}


def test_the_parser_is_picked_per_source() -> None:
    parsers = {
        "hdfs": ColumnarParser(HDFS, TemplateMiner.load_state(_frozen(HDFS, [LINE]))),
        "other": ColumnarParser(HDFS, TemplateMiner.load_state(_frozen(HDFS, [LINE]))),
    }
    asked: list[str] = []

    def parser_for(source: str) -> ColumnarParser:
        asked.append(source)
        return parsers[source]

    sinks = Sinks()
    stage = ParseStage(parser_for, sinks.send_events, sinks.send_dead, sinks.send_template, lambda: NOW_S, 4)
    asyncio.run(stage.handle(LINE.encode(), [("source", b"other")], None, SourceOffset("raw-logs")))
    asyncio.run(stage.handle(LINE.encode(), None, b"hdfs", SourceOffset("raw-logs")))
    assert asked == ["other", "hdfs"]
    assert parsers["other"].stats.records == 1 and parsers["hdfs"].stats.records == 1
    assert [read_event_batch(v).events[0].source for _, _, v in sinks.events] == ["other", "hdfs"]


def test_a_wrong_format_is_reported_once() -> None:
    sinks = Sinks()
    stage = _stage(ColumnarParser(HDFS, TemplateMiner.load_state(_frozen(HDFS, [LINE]))), sinks)
    outcome = _handle(stage, "\n".join([BGL_LINE] * 150).encode())
    assert outcome.mismatch is not None and outcome.mismatch.source == "hdfs"
    assert _handle(stage, "\n".join([BGL_LINE] * 150).encode(), 1).mismatch is None  # rate-limited
    assert stage.counters.format_mismatches == {"hdfs": 1}
    assert stage.counters.dead_letters == {"no_header": 300}


def test_partitions_must_be_positive() -> None:
    parser = ColumnarParser(HDFS, TemplateMiner.load_state(_frozen(HDFS, [LINE])))
    sinks = Sinks()
    with pytest.raises(ValueError, match="at least 1 partition"):
        ParseStage(lambda s: parser, sinks.send_events, sinks.send_dead, sinks.send_template, lambda: 0.0, 0)
