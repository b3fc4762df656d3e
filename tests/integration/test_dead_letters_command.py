"""`logad dead-letters` on a real broker: dead letters written with `DeadLetter.encode()`, read back."""

from __future__ import annotations

import io

import orjson
import pytest

from pipeline.adapters.kafka import TopicSpec, create_topics, producer
from pipeline.commands.dead_letters import DeadLetterOptions, show_dead_letters
from pipeline.records import DeadLetter, SourceOffset
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def test_dead_letters_command_prints_filters_and_exits_at_the_end(
    kafka_server: Settings, unique: str
) -> None:
    settings = kafka_server.replace(dead_letter_topic=f"dead-{unique}")
    create_topics(settings, [TopicSpec(settings.dead_letter_topic, 1, {})])
    letters = [
        DeadLetter("no_header", "parse", b"not a header line", SourceOffset("raw-logs", 1, 10, line=3), "d1"),
        DeadLetter("invalid_utf8", "parse", b"bad \xff byte", SourceOffset("raw-logs", 2, 11, line=0), "d2"),
        DeadLetter("binary", "parse", b"\x00\x1b[2J", SourceOffset("raw-logs", 0, 12, line=99), "d3"),
    ]
    out = producer(settings)
    for letter in letters:
        out.produce(settings.dead_letter_topic, value=letter.encode())
    out.produce(settings.dead_letter_topic, value=b"{not a dead letter")  # another producer's record
    assert out.flush(30) == 0

    text, err = io.StringIO(), io.StringIO()
    tally = show_dead_letters(settings, DeadLetterOptions(follow=False), text, err)
    lines = text.getvalue().splitlines()
    assert lines[0] == "no_header  step=parse  at raw-logs[1]@10 line 3  17 bytes  d1"
    assert lines[1] == "    | not a header line"
    assert lines[3] == "    | bad \\xff byte"
    assert lines[4].startswith("binary  step=parse  at raw-logs[0]@12 line 99  5 bytes")
    assert lines[5] == "    | \\x00\\x1b[2J"  # the escape sequence is shown, not sent to the terminal
    assert lines[6].startswith(f"(unreadable record at {settings.dead_letter_topic}[0]@3, 18 bytes")
    assert (tally.shown, tally.unreadable) == (3, 1)
    assert err.getvalue().startswith(f"3 dead letters shown from {settings.dead_letter_topic}")

    as_json = io.StringIO()
    options = DeadLetterOptions(reasons=frozenset({"invalid_utf8"}), follow=False, as_json=True)
    tally = show_dead_letters(settings, options, as_json, io.StringIO())
    objects = [orjson.loads(line) for line in as_json.getvalue().splitlines()]
    assert [o.get("reason") for o in objects] == ["invalid_utf8", None]  # and the unreadable record
    assert DeadLetter.decode(letters[1].encode()).original == b"bad \xff byte"
    assert objects[0]["original_b64"] == "YmFkIP8gYnl0ZQ=="
    assert (objects[0]["offset"], objects[0]["line"]) == (11, 0)
    assert (tally.shown, tally.filtered_out) == (1, 2)


def test_follow_topic_reads_from_the_beginning_and_keeps_going(kafka_server: Settings, unique: str) -> None:
    from pipeline.adapters.kafka import follow_topic

    topic = f"follow-{unique}"
    create_topics(kafka_server, [TopicSpec(topic, 2, {})])
    out = producer(kafka_server)
    for i in range(4):
        out.produce(topic, value=f"v{i}".encode(), partition=i % 2)
    assert out.flush(30) == 0
    seen: list[bytes] = []
    empty_polls = 0
    records = follow_topic(kafka_server, topic, from_beginning=True, poll_s=0.2)
    for record in records:
        if record is None:
            empty_polls += 1
            assert empty_polls < 150, f"only {seen} arrived"
            if len(seen) == 4:
                out.produce(topic, value=b"later", partition=1)  # arrives while following
                assert out.flush(30) == 0
            continue
        seen.append(record.value() or b"")
        if len(seen) == 5:
            break
    records.close()
    assert sorted(seen[:4]) == [b"v0", b"v1", b"v2", b"v3"] and seen[4] == b"later"
