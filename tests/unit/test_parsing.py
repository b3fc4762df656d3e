"""The Parser: events from good payloads, dead letters for bad ones, never an exception."""

from __future__ import annotations

import pytest

from pipeline.evaluation.parsing import grouping_accuracy
from pipeline.formats import BGL, HDFS
from pipeline.parsing import NO_SESSION, Parser, extract_params
from pipeline.records import SourceOffset
from pipeline.templates import TemplateMiner

RAW = SourceOffset("raw-logs", 1, 77)
LINE_A = (
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 "
    "src: /10.250.19.102:54106 dest: /10.250.19.102:50010"
)
LINE_TWO_BLOCKS = (
    "081109 203519 35 INFO dfs.FSNamesystem: BLOCK* ask 10.250.14.224:50010 to replicate blk_1 to "
    "datanode(s) 10.251.73.220:50010 blk_2"
)


def _parser(max_bytes: int = 1 << 20) -> Parser:
    return Parser(HDFS, TemplateMiner(), max_message_bytes=max_bytes)


def test_single_line_payload_gives_one_event() -> None:
    result = _parser().parse(LINE_A.encode(), "dn1", RAW, now_s=5.0)
    assert result.dead_letters == ()
    (event,) = result.events
    assert event.session_key == "blk_-1608999687919862906"
    assert event.template == "Receiving block <BLK> src: /<IP> dest: /<IP>"
    assert event.params == ("blk_-1608999687919862906", "/10.250.19.102:54106", "/10.250.19.102:50010")
    assert (event.source, event.raw, event.timestamp, event.oov) == ("dn1", RAW, 1226262918.0, False)
    (record,) = result.new_templates
    assert (record.template_id, record.first_seen, record.count) == (event.template_id, 5.0, 1)


def test_multi_line_payload_and_line_naming_two_blocks() -> None:
    payload = f"{LINE_A}\r\n{LINE_TWO_BLOCKS}\n\n{LINE_A}\n".encode()
    parser = _parser()
    result = parser.parse(payload, "dn1", RAW)
    block = "blk_-1608999687919862906"
    assert [e.session_key for e in result.events] == [block, "blk_1", "blk_2", block]
    assert result.events[1].template_id == result.events[2].template_id
    assert len(result.new_templates) == 2
    assert parser.stats.records == 3 and parser.stats.events == 4


def test_stack_trace_is_joined_into_one_event() -> None:
    payload = (
        LINE_A + "\n\tat org.apache.Foo.bar(Foo.java:12)\n\tat java.lang.Thread.run(Thread.java:1)"
    ).encode()
    (event,) = _parser().parse(payload, "dn1").events
    assert event.template.endswith(
        "at org.apache.Foo.bar(Foo.java:<NUM>) at java.lang.Thread.run(Thread.java:<NUM>)"
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b" \n\n\t", "empty"),
        (b"\xff\xfe\xfd\xfc" + b"\x80" * 20 + b" mostly undecodable", "invalid_utf8"),
        (LINE_A.encode().replace(b"block", b"bl\x00ck"), "binary"),
        (b"\x1b[31m" + LINE_A.encode(), "binary"),
        (b"no header here", "no_header"),
        (LINE_A.encode() * 40, "oversized"),
    ],
)
def test_bad_payloads_become_dead_letters(payload: bytes, reason: str) -> None:
    parser = _parser(max_bytes=4096)
    result = parser.parse(payload, "dn1", RAW)
    assert result.events == ()
    (letter,) = result.dead_letters
    assert (letter.reason, letter.step, letter.raw) == (reason, "parse", RAW)
    assert letter.original == payload[: 64 << 10]
    assert parser.stats.dead_letters == {reason: 1}


def test_bad_lines_do_not_stop_good_lines_of_the_same_payload() -> None:
    payload = b"\n".join([b"\xc3\x28\xff\xfe bad", LINE_A.encode(), b"nul\x00line", LINE_TWO_BLOCKS.encode()])
    result = _parser().parse(payload, "dn1", RAW)
    assert [d.reason for d in result.dead_letters] == ["invalid_utf8", "binary"]
    assert [d.original for d in result.dead_letters] == [b"\xc3\x28\xff\xfe bad", b"nul\x00line"]
    assert [d.raw.line for d in result.dead_letters] == [0, 2]  # the line's index in the message
    assert len(result.events) == 3 and result.records == 2


def test_one_oversized_line_is_the_only_one_rejected() -> None:
    # `logad replay` packs 100 lines per message: a 5 MB line must not take its neighbours with it.
    huge = b"081109 203518 143 INFO dfs.DataNode: " + b"y" * (5 * 1024 * 1024)
    good = [LINE_A.replace("1608999687919862906", str(i)).encode() for i in range(10)]
    payload = b"\n".join([*good[:4], huge, *good[4:]])
    parser = Parser(HDFS, TemplateMiner())  # the defaults: 1 MiB per line, 16 MiB per message
    result = parser.parse(payload, "dn1", RAW)
    (letter,) = result.dead_letters
    assert (letter.reason, letter.raw.line) == ("oversized_line", 4)
    assert letter.original == huge[: 64 << 10]
    assert f"{len(huge)} bytes > max_line_bytes {1 << 20}" in letter.detail
    assert [e.session_key for e in result.events] == [f"blk_-{i}" for i in range(10)]
    assert parser.stats.dead_letters == {"oversized_line": 1}


def test_only_an_absurd_payload_is_rejected_whole() -> None:
    parser = Parser(HDFS, TemplateMiner(), max_message_bytes=4096, max_line_bytes=1024)
    (letter,) = parser.parse(LINE_A.encode() * 40, "dn1", RAW).dead_letters
    assert letter.reason == "oversized"
    assert f"{len(LINE_A) * 40} bytes > max_message_bytes 4096" in letter.detail


def test_a_few_invalid_bytes_are_replaced_and_counted() -> None:
    # A stray Latin-1 byte and a cut multi-byte character in an otherwise good line.
    line = LINE_A.encode().replace(b"Receiving", b"Rec\xe9iving").replace(b"dest:", b"dest\xe2\x82:")
    parser = _parser()
    result = parser.parse(b"\n".join([line, LINE_A.encode()]), "dn1", RAW)
    assert result.dead_letters == ()
    assert result.events[0].template == "Rec\ufffdiving block <BLK> src: /<IP> dest\ufffd: /<IP>"
    assert result.decode_replacements == 2
    assert (parser.stats.decode_replacements, parser.stats.lines_with_replacements) == (2, 1)


def test_a_replacement_character_sent_as_utf8_is_not_counted() -> None:
    line = LINE_A.replace("Receiving", "Rec\ufffdiving").encode() + b"\xff"
    result = _parser().parse(line, "dn1", RAW)
    assert len(result.events) == 1 and result.decode_replacements == 1


@pytest.mark.parametrize(
    ("undecodable", "reason"),
    [
        (20, None),  # 20 of 100 bytes: at the limit (20%), still text with bad bytes
        (21, "invalid_utf8"),  # more than a fifth undecodable: binary or another encoding
    ],
)
def test_binary_rule_share_of_undecodable_bytes(undecodable: int, reason: str | None) -> None:
    head = b"081109 203518 143 INFO dfs.DataNode: "
    line = head + b"\xff" * undecodable
    line += b"x" * (100 - len(line))
    result = _parser().parse(line, "dn1", RAW)
    assert [d.reason for d in result.dead_letters] == ([reason] if reason else [])
    assert len(result.events) == (0 if reason else 1)


def test_no_header_line_with_replacements_keeps_its_original_bytes() -> None:
    result = _parser().parse(b"caf\xe9 is not an HDFS line", "dn1", RAW)
    (letter,) = result.dead_letters
    assert (letter.reason, letter.original) == ("no_header", b"caf\xe9 is not an HDFS line")
    assert result.format_misses == 1


def test_match_mode_reports_oov_with_would_be_template() -> None:
    miner = TemplateMiner()
    miner.learn(HDFS.parse_line(LINE_A).content)
    miner.freeze()
    parser = Parser(HDFS, miner)
    result = parser.parse(LINE_TWO_BLOCKS.encode(), "nn", RAW, now_s=9.0)
    assert all(e.oov for e in result.events)
    assert result.events[0].template == "BLOCK* ask <IP> to replicate <BLK> to datanode(s) <IP> <BLK>"
    (record,) = result.new_templates
    assert record.oov and record.first_seen == 9.0
    assert parser.stats.oov_records == 1


def test_format_without_sessions_uses_no_session_key() -> None:
    line = (
        "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 "
        "RAS KERNEL INFO instruction cache parity error corrected"
    )
    (event,) = Parser(BGL, TemplateMiner()).parse(line.encode(), "bgl").events
    assert event.session_key == NO_SESSION and event.timestamp == 1117838570.0


@pytest.mark.parametrize(
    ("template", "content", "params"),
    [
        ("a <NUM> b <*>", "a 12 b x", ("12", "x")),
        ("src: /<IP>", "src: /10.0.0.1:80", ("/10.0.0.1:80",)),
        ("a b", "a b c", ()),
    ],
)
def test_extract_params(template: str, content: str, params: tuple[str, ...]) -> None:
    assert extract_params(template, content) == params


@pytest.mark.parametrize(
    ("predicted", "truth", "accuracy"),
    [
        ([1, 1, 2, 2], ["a", "a", "b", "b"], 1.0),
        ([1, 1, 1, 1], ["a", "a", "b", "b"], 0.0),
        ([1, 2, 3, 3], ["a", "a", "b", "b"], 0.5),
        ([1, 1, 2, 3], ["a", "a", "b", "c"], 1.0),
        ([], [], 0.0),
    ],
)
def test_grouping_accuracy(predicted: list[int], truth: list[str], accuracy: float) -> None:
    assert grouping_accuracy(predicted, truth) == accuracy


def test_parsing_hdfs_evaluation_on_a_slice(data_dir) -> None:
    import argparse

    from pipeline.evaluation import parsing
    from pipeline.settings import Settings

    parser = argparse.ArgumentParser()
    parsing.add_arguments(parser, "parsing-hdfs")
    args = parser.parse_args(["--limit", "5000"])
    result = parsing.run(args, Settings(data_dir=data_dir), "parsing-hdfs")
    assert result["lines"] == 5000 and result["content_mismatches"] == 0
    assert result["grouping_accuracy"] >= 0.99
