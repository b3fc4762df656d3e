"""`logad tail` rendering: every alert kind with its time, place, model version and raw lines."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.alerts import Alert, AlertKind, ExpectedEvent, RawCoordinates, RawLine, alert_id
from pipeline.presentation import format_alert, iso_time
from pipeline.windows import SESSION_END_ID, SESSION_END_TEXT

HDFS_LINE = "081109 203518 143 WARN dfs.DataNode$PacketResponder: writeBlock blk_5 received exception x"
TRACE = "\tat org.apache.Foo.bar(Foo.java:12)"
BEFORE = "081109 203517 143 INFO dfs.DataNode$PacketResponder: Receiving block blk_5"
BGL_LINE = (
    "KERNDTLB 1117838573 2005.06.03 R23-M0-NE-C:J05-U01 2005-06-03-15.42.53.276129 R23-M0-NE-C:J05-U01 RAS "
    "KERNEL FATAL data TLB error interrupt"
)


def session_alert(kind: AlertKind, **changes: object) -> Alert:
    base = Alert(
        alert_id=alert_id("hdfs", "blk_5", kind),
        source="hdfs",
        session_key="blk_5",
        kind=kind,
        model="deeplog",
        model_version=4,
        score=0.9,
        event_template_id=77,
        event_template="writeBlock <*> received exception <*>",
        expected=(ExpectedEvent(11, "PacketResponder <*> for block <*> terminating", 0.9),),
        window=("Receiving block <*>",),
        first_timestamp=1226262917.0,
        last_timestamp=1226262918.0,
        position=6,
        raw=RawCoordinates("raw-logs", 1, 42, 3),
        event_time=1226262918.0,
        lines=(
            RawLine(RawCoordinates("raw-logs", 1, 40, 0), BEFORE),
            RawLine(RawCoordinates("raw-logs", 1, 42, 3), f"{HDFS_LINE}\n{TRACE}"),
        ),
        fields=(("component", "dfs.DataNode$PacketResponder"), ("pid", "143"), ("level", "WARN")),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


WINDOW = Alert(
    alert_id=alert_id("bgl", "1117838400-1117838700", AlertKind.WINDOW_CLASS),
    source="bgl",
    session_key="1117838400-1117838700",
    kind=AlertKind.WINDOW_CLASS,
    model="protosiamese",
    model_version=2,
    score=0.8,
    event_template_id=5,
    event_template="KERNEL data TLB error interrupt",
    expected=(),
    window=("KERNEL data TLB error interrupt", "KERNEL instruction cache parity error corrected"),
    first_timestamp=1117838400.0,
    last_timestamp=1117838700.0,
    position=-1,
    raw=RawCoordinates("raw-logs", 0, 9, 0),
    label="KERNDTLB",
    event_time=1117838573.0,
    lines=tuple(RawLine(RawCoordinates("raw-logs", 0, offset, 0), BGL_LINE) for offset in range(5, 10)),
    fields=(("node", "R02-M1-N0-C:J12-U11,R23-M0-NE-C:J05-U01"), ("component", "KERNEL")),
)


def test_iso_time() -> None:
    assert iso_time(1226262918.0) == "2008-11-09T20:35:18Z"
    assert iso_time(1117838570.675872) == "2005-06-03T22:42:50.675872Z"
    assert iso_time(None) == "time unknown"


@pytest.mark.parametrize(
    ("kind", "kind_text"),
    [(AlertKind.UNEXPECTED_NEXT_EVENT, "unexpected event"), (AlertKind.OOV_EVENT, "never-seen event")],
)
def test_event_alert_shows_time_place_version_and_the_offending_line(kind: AlertKind, kind_text: str) -> None:
    text = format_alert(session_alert(kind))
    head, *rest = text.split("\n")
    assert head.startswith(
        f"ALERT {alert_id('hdfs', 'blk_5', kind)[:8]} 2008-11-09T20:35:18Z hdfs/blk_5 {kind_text}"
    )
    assert "(#6, deeplog v4, score 0.90): writeBlock <*> received exception <*>" in head
    assert rest == [
        "    where: component=dfs.DataNode$PacketResponder pid=143 level=WARN",
        f"    line: raw-logs[1]@42 line 3: {HDFS_LINE}",
        f"        {TRACE}",
    ]


def test_verbose_adds_the_lines_before_the_templates_and_the_expected_events() -> None:
    text = format_alert(session_alert(AlertKind.UNEXPECTED_NEXT_EVENT), verbose=True)
    assert f"    before: raw-logs[1]@40 line 0: {BEFORE}" in text
    assert "    window: Receiving block <*>" in text
    assert "    expected (0.90): PacketResponder <*> for block <*> terminating" in text
    assert text.index("before:") < text.index("line: raw-logs[1]@42") < text.index("window:")


def test_parameter_alert_shows_values_and_line() -> None:
    alert = session_alert(AlertKind.PARAMETER_VALUE, label="elapsed_s=57 (expected 0..3.1)", expected=())
    head, *rest = format_alert(alert).split("\n")
    assert "abnormal parameter" in head and "| elapsed_s=57 (expected 0..3.1)" in head
    assert rest[1] == f"    line: raw-logs[1]@42 line 3: {HDFS_LINE}"


def test_end_of_session_reads_end_of_session_and_shows_the_last_line() -> None:
    alert = session_alert(
        AlertKind.UNEXPECTED_NEXT_EVENT,
        event_template_id=SESSION_END_ID,
        event_template=SESSION_END_TEXT,
        lines=(RawLine(RawCoordinates("raw-logs", 1, 40, 0), BEFORE),),
        raw=RawCoordinates("raw-logs", 1, 40, 0),
    )
    text = format_alert(alert)
    assert text.split("\n")[0].endswith("): end of session") and "4503599627370496" not in text
    assert f"    session ended after: raw-logs[1]@40 line 0: {BEFORE}" in text


def test_window_alert_has_readable_bounds_nodes_and_raw_lines_no_position() -> None:
    text = format_alert(WINDOW)
    head, *rest = text.split("\n")
    assert head == (
        f"ALERT {WINDOW.alert_id[:8]} 2005-06-03T22:42:53Z bgl window 2005-06-03T22:40:00Z .. "
        "2005-06-03T22:45:00Z abnormal window (protosiamese v2, score 0.80): KERNDTLB"
    )
    assert rest[0] == "    where: node=R02-M1-N0-C:J12-U11,R23-M0-NE-C:J05-U01 component=KERNEL"
    assert rest[1:] == [
        f"    line: raw-logs[0]@{o} line {n}: {BGL_LINE}" for o, n in ((7, 0), (8, 0), (9, 0))
    ]
    assert "#-1" not in text and "[-1]@-1" not in text and "1117838400" not in text
    verbose = format_alert(WINDOW, verbose=True)
    assert verbose.count("    line: ") == 5 and "    templates: KERNEL data TLB error interrupt" in verbose


def test_lines_not_read_back_show_coordinates_and_the_note() -> None:
    alert = session_alert(
        AlertKind.OOV_EVENT,
        lines=(RawLine(RawCoordinates("raw-logs", 1, 42, 3)),),
        fields=(),
        note="raw lines not read back (no answer within 3s)",
    )
    rest = format_alert(alert).split("\n")[1:]
    assert rest == [
        "    line: raw-logs[1]@42 line 3 (text not read back)",
        "    note: raw lines not read back (no answer within 3s)",
    ]


def test_version_1_alert_without_lines_or_time_still_renders() -> None:
    alert = session_alert(
        AlertKind.OOV_EVENT, event_time=None, lines=(), fields=(), raw=RawCoordinates("raw-logs", 0, 5)
    )
    head, *rest = format_alert(alert).split("\n")
    assert "time unknown hdfs/blk_5" in head and rest == ["    raw record: raw-logs[0]@5"]
