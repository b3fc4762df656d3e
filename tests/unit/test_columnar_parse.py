"""ColumnarParser gives exactly what Parser gives: events, dead letters, new templates, counters.

Every test runs both on the same payloads, each with its own copy of the same frozen miner and its
own registry, and compares everything; the real-data tests cover every line of HDFS_100k, the BGL
files and the synthetic generator, cut into messages of a few hundred lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from pipeline.columnar_parse import ColumnarParser
from pipeline.datasets.bgl import BGL_FILES, bgl_drain_config
from pipeline.datasets.loghub import HDFS_RAW, read_lines
from pipeline.datasets.synthetic import SyntheticConfig, generate_hdfs
from pipeline.formats import BGL, GENERIC, HDFS, LogFormat
from pipeline.parsing import Parser
from pipeline.records import SourceOffset
from pipeline.templates import DrainConfig, MaskingConfig, MaskingRule, ParserMode, TemplateMiner

LINE_A = (
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 "
    "src: /10.250.19.102:54106 dest: /10.250.19.102:50010"
)
LINE_B = (
    "081109 203519 145 INFO dfs.DataNode$DataXceiver: Receiving block blk_7503483334202473044 "
    "src: /10.251.71.16:51590 dest: /10.251.71.16:50010"
)
LINE_TWO_BLOCKS = (
    "081109 203519 35 INFO dfs.FSNamesystem: BLOCK* ask 10.250.14.224:50010 to replicate blk_1 to "
    "datanode(s) 10.251.73.220:50010 blk_2"
)
LINE_SAME_BLOCK_TWICE = "081109 203520 35 INFO dfs.FSNamesystem: blk_7 is blk_7 again"
LINE_NO_BLOCK = "081109 203521 19 INFO dfs.FSNamesystem: Roll Edit Log from 10.250.15.198"


def _frozen(fmt: LogFormat, lines: Iterable[str], config: DrainConfig | None = None) -> bytes:
    miner = TemplateMiner(config)
    for line in lines:
        miner.learn(fmt.template_text(fmt.parse_line(line)))
    miner.freeze()
    return miner.save_state()


def _pair(fmt: LogFormat, state: bytes, **options: int) -> tuple[Parser, ColumnarParser]:
    return (
        Parser(fmt, TemplateMiner.load_state(state)),
        ColumnarParser(fmt, TemplateMiner.load_state(state), **options),
    )


def _assert_same(old: Parser, new: ColumnarParser, payloads: list[bytes]) -> int:
    """Parse every payload with both; everything must be equal. Returns the fast-path message count."""
    fast_before = new.fast_messages
    for offset, payload in enumerate(payloads):
        raw = SourceOffset("raw-logs", 3, 1000 + offset, timestamp=1_700_000_000.25 + offset)
        expected = old.parse(payload, "src", raw, now_s=float(offset))
        got = new.parse(payload, "src", raw, now_s=float(offset))
        assert got.batch.to_events() == list(expected.events), f"message {offset}"
        assert got.dead_letters == expected.dead_letters
        assert got.new_templates == expected.new_templates
    assert new.stats == old.stats
    assert new.registry.records() == old.registry.records()
    return new.fast_messages - fast_before


def _messages(lines: list[str], size: int) -> list[bytes]:
    return ["\n".join(lines[i : i + size]).encode() for i in range(0, len(lines), size)]


# real data -----------------------------------------------------------------------------------------
def test_every_hdfs_100k_line(data_dir: Path) -> None:
    lines = list(read_lines(data_dir / HDFS_RAW))
    # Templates from the first fifth only, so later lines bring OOV templates too.
    old, new = _pair(HDFS, _frozen(HDFS, lines[: len(lines) // 5]))
    payloads = _messages(lines, 300)
    assert _assert_same(old, new, payloads) == len(payloads)
    assert old.stats.records == len(lines) and old.stats.oov_records > 0


def test_every_bgl_line(data_dir: Path) -> None:
    lines = [line for name in BGL_FILES for line in read_lines(data_dir / name)]
    old, new = _pair(BGL, _frozen(BGL, lines[: len(lines) // 3], bgl_drain_config()))
    payloads = _messages(lines, 250)
    # All on the fast path; lines whose digits no mask takes (`lr:00004ed0`, chip ids) go to the miner.
    assert _assert_same(old, new, payloads) == len(payloads)
    assert old.stats.records == len(lines) and old.stats.oov_records > 0


def test_every_synthetic_line() -> None:
    lines = list(generate_hdfs(SyntheticConfig(lines=20_000, anomaly_rate=0.05, seed=3)))
    old, new = _pair(HDFS, _frozen(HDFS, lines[:2_000]))
    payloads = _messages(lines, 200)
    assert _assert_same(old, new, payloads) == len(payloads)


# edge cases ----------------------------------------------------------------------------------------
def _hdfs_pair(**options: int) -> tuple[Parser, ColumnarParser]:
    return _pair(HDFS, _frozen(HDFS, [LINE_A, LINE_B, LINE_TWO_BLOCKS, LINE_NO_BLOCK]), **options)


@pytest.mark.parametrize(
    "payload",
    [
        f"{LINE_A}\n{LINE_B}\n",  # trailing newline
        f"\n{LINE_A}",  # leading blank line
        f"{LINE_A}\n\n{LINE_B}",  # blank line
        f"{LINE_A}\n   \n{LINE_B}",  # whitespace-only line
        f"{LINE_A}\r\n{LINE_B}\r\n",  # CRLF
        f"{LINE_A}\n\tat org.apache.Foo.bar(Foo.java:12)\n{LINE_B}",  # continuation line
        f"not a header\n{LINE_A}",  # a line without header
        f"{LINE_A}\n{LINE_TWO_BLOCKS}\n{LINE_SAME_BLOCK_TWICE}\n{LINE_NO_BLOCK}",  # 2, 1 (twice), 0 keys
        f"{LINE_A.replace('blk_', 'xblk_')}\n{LINE_B.replace(' src', ',src')}",  # keys inside tokens
        LINE_A.replace("dfs.DataNode$DataXceiver", "blk_99"),  # a key in the header
        LINE_A.replace("block", "blk_x block"),  # the key literal without a key
        LINE_A + "\n" + LINE_A.replace("block", "bl\u00f6ck"),  # valid UTF-8, not ASCII
        "",
        " \n\n\t",
    ],
)
def test_edge_messages(payload: str) -> None:
    old, new = _hdfs_pair()
    _assert_same(old, new, [payload.encode()])


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe" + LINE_A.encode()[2:] + b"\n" + LINE_B.encode(),  # invalid UTF-8
        LINE_A.encode().replace(b"block", b"bl\x00ck") + b"\n" + LINE_B.encode(),  # NUL
        b"\x1b[31m" + LINE_A.encode(),  # terminal escape
    ],
)
def test_bad_bytes_take_the_exact_path(payload: bytes) -> None:
    old, new = _hdfs_pair()
    assert _assert_same(old, new, [payload]) == 0
    assert new.exact_messages == 1 and old.stats.dead_letters


def test_long_lines_and_big_messages_take_the_exact_path() -> None:
    old, new = _hdfs_pair(max_fast_line_chars=200)
    long_line = LINE_A + " x" * 200
    assert _assert_same(old, new, [f"{LINE_A}\n{long_line}".encode(), LINE_A.encode()]) == 1
    old, new = _pair(HDFS, _frozen(HDFS, [LINE_A]))
    old.max_message_bytes = new.exact.max_message_bytes = 1000
    assert _assert_same(old, new, [(LINE_A + "\n") * 20]) == 0


def test_skeleton_cache_does_not_vouch_for_unmasked_digits() -> None:
    # `job_abc123` keeps its digits after masking: two lines with the same skeleton differ, so the
    # cache must hand each to the miner (here both are OOV, with their own would-be templates).
    first = "081109 203518 143 INFO dfs.Worker: finished job_abc123 in 5 ms"
    second = "081109 203518 143 INFO dfs.Worker: finished job_abc456 in 7 ms"
    old, new = _hdfs_pair()
    assert _assert_same(old, new, [first.encode(), second.encode(), f"{second}\n{first}".encode()]) == 3
    templates = {e.template for e in old.parse(f"{first}\n{second}".encode(), "s").events}
    assert templates == {"finished job_abc123 in <NUM> ms", "finished job_abc456 in <NUM> ms"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("10.1.2.3:50010", "10.1.2.3333:50010"),  # an octet of four digits is no IP
        ("10.1.2.3:50010", "10.1.2.3:500100"),  # nor is a port of six digits part of one
        ("10.1.2.3:5001", "10.1.2.3:50010"),  # ports of four and five digits are
        ("0x1f", "5x1f"),  # only `0x` starts a hex number
        ("0x1f", "0x1g"),
        ("-12", "a-12"),
    ],
)
def test_digit_classes_that_masking_tells_apart(first: str, second: str) -> None:
    line = "081109 203518 143 INFO dfs.Worker: value {} seen"
    old, new = _hdfs_pair()
    payloads = [line.format(first).encode(), line.format(second).encode()]
    _assert_same(old, new, [*payloads, b"\n".join(payloads)])


def test_learning_miner_and_other_formats_take_the_exact_path() -> None:
    learning = ColumnarParser(HDFS, TemplateMiner())
    reference = Parser(HDFS, TemplateMiner())
    assert _assert_same(reference, learning, [f"{LINE_A}\n{LINE_B}".encode(), LINE_TWO_BLOCKS.encode()]) == 0
    generic = "2024-01-02T03:04:05Z ERROR db: connection 17 lost\nWARN retry 3 of 5"
    state = _frozen(GENERIC, generic.splitlines())
    old, new = _pair(GENERIC, state)
    assert _assert_same(old, new, [generic.encode()]) == 0


def test_other_masking_rules_key_the_cache_by_text() -> None:
    rules = (MaskingRule("PORT", r"\b50010\b"), *MaskingConfig().rules)
    config = DrainConfig(masking=MaskingConfig(rules=rules, token_local=True))
    state = _frozen(HDFS, [LINE_A, LINE_B], config)
    old, new = _pair(HDFS, state)
    other_port = LINE_B.replace("50010", "50011")
    assert _assert_same(old, new, [f"{LINE_A}\n{LINE_B}\n{other_port}".encode(), LINE_A.encode()]) == 2


def test_logad_parser_mode_keys_the_cache_by_text() -> None:
    # The digit-skeleton cache is proven for Drain3's masking only: a logad miner (the same default
    # rules) gets the text key, and the two parsers still agree line by line.
    config = DrainConfig(parser_mode=ParserMode.LOGAD)
    lines = [
        f"081109 2035{i:02d} 1{i} INFO dfs.DataNode: delete blk_{i} blk_{i + 9} ok node-{i}" for i in range(9)
    ]
    old, new = _pair(HDFS, _frozen(HDFS, [LINE_A, LINE_B, *lines[:3]], config))
    assert new._key_mode.value == "text"
    assert _assert_same(old, new, _messages([LINE_A, *lines, LINE_B], 4)) == 3


def test_bgl_lines_without_content_and_node_names() -> None:
    base = "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS"
    lines = [
        f"{base} KERNEL INFO instruction cache parity error corrected",
        f"{base} KERNEL INFO",  # no content
        f"{base} KERNEL INFO node R12-M0-N4-C:J03-U01 and R12-M0-N4-C:J03-U0123 down",
        f"{base} APP FATAL ciod: failed to read message prefix on control stream 0x0a",
    ]
    old, new = _pair(BGL, _frozen(BGL, lines[:1], bgl_drain_config()))
    assert _assert_same(old, new, ["\n".join(lines).encode(), lines[2].encode()]) == 2
