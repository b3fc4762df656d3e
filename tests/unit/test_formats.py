"""Log formats: golden HDFS/BGL/generic lines, session keys, custom regexes, multi-line joining."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError, ParseError
from pipeline.formats import BGL, GENERIC, HDFS, LogFormat, LogRecord, MultilineJoiner, Unparsed, get_format

HDFS_LINE = (
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 "
    "src: /10.250.19.102:54106 dest: /10.250.19.102:50010"
)
BGL_LINE = (
    "KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.32.07.581048 R30-M0-N9-C:J16-U01 "
    "RAS KERNEL FATAL data TLB error interrupt"
)


@pytest.mark.parametrize(
    ("fmt", "line", "timestamp", "level", "component", "content", "keys"),
    [
        (
            HDFS,
            HDFS_LINE,
            1226262918.0,  # 2008-11-09 20:35:18 UTC
            "INFO",
            "dfs.DataNode$DataXceiver",
            "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
            ("blk_-1608999687919862906",),
        ),
        (
            HDFS,
            "081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: "
            "10.251.73.220:50010 is added to blk_7128370237687728475 size 67108864",
            1226263205.0,
            "INFO",
            "dfs.FSNamesystem",
            "BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.251.73.220:50010 is added to "
            "blk_7128370237687728475 size 67108864",
            ("blk_7128370237687728475",),
        ),
        (BGL, BGL_LINE, 1118536327.0, "FATAL", "KERNEL", "data TLB error interrupt", ()),
        (
            GENERIC,
            "2024-01-02T03:04:05Z WARN app.db: slow query 812 ms",
            1704164645.0,
            "WARN",
            "app.db",
            "slow query 812 ms",
            (),
        ),
        (GENERIC, "plain text without header", None, "", "", "plain text without header", ()),
    ],
)
def test_golden_lines(fmt, line, timestamp, level, component, content, keys) -> None:
    record = fmt.parse_line(line)
    assert (record.timestamp, record.level, record.component, record.content) == (
        timestamp,
        level,
        component,
        content,
    )
    assert record.session_keys == keys
    assert record.line == line


def test_bgl_label_field() -> None:
    assert BGL.parse_line(BGL_LINE).field("label") == "KERNDTLB"
    assert BGL.parse_line("- " + BGL_LINE.split(" ", 1)[1]).field("label") == "-"


def test_hdfs_line_naming_several_blocks_belongs_to_each_once_in_order() -> None:
    line = (
        "081109 214043 2561 INFO dfs.DataNode: 10.250.11.53:50010 Starting thread to transfer block "
        "blk_-1 to blk_22 and again blk_-1"
    )
    assert HDFS.parse_line(line).session_keys == ("blk_-1", "blk_22")


@pytest.mark.parametrize(
    "line", ["", "garbage", "081109 203518 INFO missing pid: x", "\tat java.lang.Thread"]
)
def test_hdfs_rejects_lines_without_header(line: str) -> None:
    with pytest.raises(ParseError, match="hdfs"):
        HDFS.parse_line(line)


def test_custom_regex_profile() -> None:
    fmt = LogFormat.from_regex(
        "app",
        r"\[(?P<ts>\d+)\] (?P<level>\w+) req=(?P<req>\S+) (?P<content>.*)",
        timestamp_groups=("ts",),
        timestamp_format="epoch",
        session_pattern=r"req-\w+",
    )
    record = fmt.parse_line("[1700000000] ERROR req=req-42 failed for req-42 and req-7")
    assert record.timestamp == 1700000000.0
    assert record.session_keys == ("req-42", "req-7")
    assert record.field("req") == "req-42"


@pytest.mark.parametrize(
    ("pattern", "groups", "message"),
    [
        (r"(?P<msg>.*)", (), "content"),
        (r"(?P<content>.*", (), "invalid regex"),
        (r"(?P<content>.*)", ("ts",), "ts"),
    ],
)
def test_custom_regex_errors(pattern: str, groups: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LogFormat.from_regex("bad", pattern, timestamp_groups=groups)


def test_get_format() -> None:
    assert get_format("hdfs") is HDFS
    with pytest.raises(ConfigError, match="bgl"):
        get_format("nope")


def test_unreadable_timestamp_is_none() -> None:
    assert HDFS.parse_line("081399 256199 1 INFO x: y").timestamp is None


def test_multiline_joins_stack_trace_to_its_first_line() -> None:
    joiner = MultilineJoiner(HDFS)
    first = "081109 203518 143 WARN dfs.DataNode: writeBlock blk_5 received exception java.io.IOException: x"
    out: list[LogRecord | Unparsed] = []
    for line in [first, "\tat a.b.C.run(C.java:1)", "Caused by: blk_9 boom", HDFS_LINE]:
        out.extend(joiner.feed(line))
    out.extend(joiner.flush())
    assert len(out) == 2
    joined, second = out
    assert isinstance(joined, LogRecord) and isinstance(second, LogRecord)
    assert joined.content.endswith("x\n\tat a.b.C.run(C.java:1)\nCaused by: blk_9 boom")
    assert joined.session_keys == ("blk_5", "blk_9")
    assert second.line == HDFS_LINE
    assert joiner.flush() == []


def test_multiline_orphan_and_cap() -> None:
    joiner = MultilineJoiner(HDFS, max_lines=2)
    assert joiner.feed("orphan continuation") == [Unparsed("orphan continuation", "no_header")]
    assert joiner.feed(HDFS_LINE) == []
    assert joiner.feed("  one") == []
    released = joiner.feed("  two")
    assert [type(x) for x in released] == [LogRecord, Unparsed]
    assert released[1] == Unparsed("  two", "too_many_lines")


def test_single_line_format_does_not_join() -> None:
    fmt = LogFormat.from_regex("strict", r"(?P<level>[A-Z]+) (?P<content>.*)", multiline=False)
    joiner = MultilineJoiner(fmt)
    assert joiner.feed("INFO a") == []
    out = joiner.feed("lower")
    assert [type(x) for x in out] == [LogRecord, Unparsed]


def test_header_string_profile_splits_like_logparser() -> None:
    fmt = LogFormat.from_header(
        "zookeeper",
        r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
        timestamp_groups=("date", "time"),
        timestamp_format="%Y-%m-%d %H:%M:%S,%f",
    )
    record = fmt.parse_line(
        "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774]"
        " - Notification time out: 3200"
    )
    assert record.level == "INFO"
    # lazy fields split at the first ':' as logparser does (the loghub CSV has the same columns)
    assert record.field("node") == "QuorumPeer[myid=1]/0"
    assert record.component == "0:0:0:0:0:0:0:2181:FastLeaderElection"
    assert record.field("id") == "774"
    assert record.content == "Notification time out: 3200"
    assert record.timestamp is not None


def test_header_string_field_names_and_errors() -> None:
    fmt = LogFormat.from_header("bgl-like", "<Label> <NodeRepeat> <Content>")
    assert fmt.parse_line("- R02-M1 hello  world").field("node_repeat") == "R02-M1"
    with pytest.raises(ConfigError, match="no <Content>"):
        LogFormat.from_header("x", "<Date> <Time>")
    with pytest.raises(ConfigError, match="repeats fields"):
        LogFormat.from_header("x", "<Date> <Date> <Content>")
