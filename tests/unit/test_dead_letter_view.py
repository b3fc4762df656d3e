"""Dead letters rendered for a terminal and for scripts: safe previews, positions, the reason filter."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import orjson
import pytest

from pipeline.commands.dead_letters import DeadLetterOptions, print_dead_letters
from pipeline.dead_letter_view import Position, Tally, preview, render_text, to_json
from pipeline.records import DeadLetter, SourceOffset


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        (b"plain line", "plain line"),
        ("été ✓".encode(), "été ✓"),  # printable non-ASCII stays readable
        (b"a\x00b", "a\\x00b"),
        (b"\x1b[31mred", "\\x1b[31mred"),  # a terminal escape sequence cannot colour the screen
        (b"tab\there\r\nnext", "tab\\there\\r\\nnext"),
        (b"bad \xff\xfe utf8", "bad \\xff\\xfe utf8"),  # each invalid byte escaped, the text around kept
        (b"back\\slash", "back\\\\slash"),  # doubled: an escape always means a non-printable byte
        ("rtl \u202e override".encode(), "rtl \\u202e override"),  # format characters escaped
        (b"\x7f", "\\x7f"),
        (b"", ""),
    ],
)
def test_preview_escapes_what_is_not_printable(original: bytes, expected: str) -> None:
    assert preview(original, 80) == expected


@pytest.mark.parametrize("width", [1, 2, 5, 10])
def test_preview_is_clipped_to_the_width_with_an_ellipsis(width: int) -> None:
    clipped = preview(b"\x00" * 50, width)  # escapes are 4 characters: never cut one in half
    assert len(clipped) <= width
    assert clipped.endswith("…")
    assert clipped[:-1] == "\\x00" * ((width - 1) // 4)
    assert preview(b"abcdefghij", 10) == "abcdefghij"  # exactly the width: not clipped
    assert preview(b"abcdefghijk", 10) == "abcdefghi…"


def test_preview_rejects_a_width_below_one() -> None:
    with pytest.raises(ValueError, match="width"):
        preview(b"x", 0)


LETTER = DeadLetter(
    "no_header",
    "parse",
    b"- 1117838570 2005.06.03 R02 \x00 tail",
    SourceOffset("raw-logs", 3, 1234, line=17),
    "hdfs header not found and no record to continue",
)


def test_text_rendering_names_reason_step_position_size_and_detail() -> None:
    head, body = render_text(LETTER, 120).split("\n")
    assert head == (
        "no_header  step=parse  at raw-logs[3]@1234 line 17  34 bytes  "
        "hdfs header not found and no record to continue"
    )
    assert body == "    | - 1117838570 2005.06.03 R02 \\x00 tail"
    assert "(not from Kafka)" in render_text(DeadLetter("empty", "parse", b""))


def test_the_detail_keeps_its_own_quoting_but_escapes_control_bytes() -> None:
    letter = DeadLetter("binary", "parse", b"\x1b", detail="control byte '\\x1b' at 0\x07")
    head = render_text(letter).split("\n")[0]
    assert head.endswith("1 bytes  control byte '\\x1b' at 0\\x07")


def test_json_rendering_keeps_the_exact_bytes_and_the_preview() -> None:
    obj = to_json(LETTER, Position("logad-dead-letter", 0, 9))
    assert base64.b64decode(obj["original_b64"]) == LETTER.original
    assert obj["original_bytes"] == 34
    assert obj["preview"].endswith("\\x00 tail")
    assert (obj["topic"], obj["partition"], obj["offset"], obj["line"]) == ("raw-logs", 3, 1234, 17)
    assert obj["dead_letter"] == {"topic": "logad-dead-letter", "partition": 0, "offset": 9}


@dataclass
class FakeRecord:
    """A consumed Kafka message, as much of it as the printer reads."""

    data: bytes | None
    at: int

    def value(self) -> bytes | None:
        return self.data

    def topic(self) -> str:
        return "dlq"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at


def _records() -> list[FakeRecord | None]:
    binary = DeadLetter("binary", "parse", b"\x00\x01", SourceOffset("raw-logs", 0, 5, line=2))
    return [
        FakeRecord(LETTER.encode(), 0),
        None,  # an empty poll
        FakeRecord(b"not json \xff", 1),
        FakeRecord(binary.encode(), 2),
        FakeRecord(None, 3),  # a tombstone
    ]


def test_printing_filters_by_reason_and_reports_unreadable_records() -> None:
    out, tally = io.StringIO(), Tally()
    print_dead_letters(_records(), DeadLetterOptions(reasons=frozenset({"binary"})), out, tally)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("(unreadable record at dlq[0]@1, 10 bytes: decode dead-letter/1")
    assert lines[1].startswith("binary  step=parse  at raw-logs[0]@5 line 2  2 bytes")
    assert lines[2] == "    | \\x00\\x01"
    assert lines[3].startswith("(unreadable record at dlq[0]@3, 0 bytes")
    assert len(lines) == 4  # the no_header letter was left out
    assert (tally.shown, tally.filtered_out, tally.unreadable) == (1, 1, 2)
    assert tally.summary("dlq") == (
        "1 dead letters shown from dlq (1 left out by --reason, 2 unreadable); "
        "reasons read: no_header 1, binary 1"
    )


def test_json_printing_is_one_object_per_line() -> None:
    out, tally = io.StringIO(), Tally()
    print_dead_letters(_records(), DeadLetterOptions(as_json=True), out, tally)
    objects = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [o.get("reason", "unreadable") for o in objects] == [
        "no_header",
        "unreadable",
        "binary",
        "unreadable",
    ]
    assert base64.b64decode(objects[2]["original_b64"]) == b"\x00\x01"
    assert objects[1]["unreadable"] is True and objects[1]["dead_letter"]["offset"] == 1
    assert tally.shown == 2
