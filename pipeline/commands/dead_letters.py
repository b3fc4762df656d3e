"""`logad dead-letters`: what the stream could not use, from `logad-dead-letter`, for humans or scripts.

Like `logad tail` it follows the topic by default (new dead letters as they arrive, Ctrl-C to stop);
`--no-follow` prints the whole topic as it stands and exits at the end offsets it had at start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import orjson

from pipeline.dead_letter_view import (
    DEFAULT_PREVIEW_WIDTH,
    Position,
    Tally,
    render_text,
    to_json,
    unreadable_json,
    unreadable_text,
)
from pipeline.errors import DataError
from pipeline.records import DeadLetter
from pipeline.settings import Settings


class KafkaRecord(Protocol):
    """What is read of a Kafka message (confluent-kafka's `Message` has these)."""

    def value(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


@dataclass(frozen=True)
class DeadLetterOptions:
    reasons: frozenset[str] = frozenset()  # empty: every reason
    from_beginning: bool = False
    follow: bool = True
    as_json: bool = False
    width: int = DEFAULT_PREVIEW_WIDTH


def print_dead_letters(
    records: Iterable[KafkaRecord | None], options: DeadLetterOptions, out: TextIO, tally: Tally
) -> None:
    """Print each record (None entries, from empty polls, are skipped); counts go to `tally`.

    A record that is no readable dead letter is reported in the output, whatever the reason filter:
    it is a problem on the topic itself (another producer, a newer schema), not one to hide.
    """
    for record in records:
        if record is None:
            continue
        value = record.value() or b""
        where = Position(record.topic() or "", record.partition() or 0, record.offset() or 0)
        try:
            letter = DeadLetter.decode(value)
        except DataError as exc:
            tally.unreadable += 1
            if options.as_json:
                print(_json_line(unreadable_json(where, len(value), exc)), file=out, flush=True)
            else:
                print(unreadable_text(where, len(value), exc), file=out, flush=True)
            continue
        tally.by_reason[letter.reason] += 1
        if options.reasons and letter.reason not in options.reasons:
            continue
        tally.shown += 1
        if options.as_json:
            print(_json_line(to_json(letter, where, options.width)), file=out, flush=True)
        else:
            print(render_text(letter, options.width), file=out, flush=True)


def _json_line(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode("utf-8")


def show_dead_letters(
    settings: Settings, options: DeadLetterOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> Tally:
    """Read `settings.dead_letter_topic` as `options` say and print it; the summary goes to `err`."""
    topic = settings.dead_letter_topic
    tally = Tally()
    try:
        if options.follow:
            from pipeline.adapters.kafka import follow_topic

            print_dead_letters(follow_topic(settings, topic, options.from_beginning), options, out, tally)
        else:
            from pipeline.adapters.topic_snapshot import TopicSnapshot

            with TopicSnapshot(settings, topic) as snapshot:
                print_dead_letters(snapshot.messages(progress=False), options, out, tally)
    except KeyboardInterrupt:
        pass  # following ends with Ctrl-C: still say what was seen
    print(tally.summary(topic), file=err, flush=True)
    return tally


def _dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    if args.width < 20:
        print(f"logad dead-letters: --width {args.width} is too narrow; use 20 or more", file=sys.stderr)
        return 2
    options = DeadLetterOptions(
        reasons=frozenset(args.reason or ()),
        from_beginning=args.from_beginning,
        follow=not args.no_follow,
        as_json=args.json,
        width=args.width,
    )
    show_dead_letters(settings, options)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dead-letters",
        help="print dead letters (records the stream could not use) with reason, position and a preview",
        description=(
            "Print the records of the dead-letter topic (LOGAD_DEAD_LETTER_TOPIC): reason, step, detail, "
            "where the original came from (topic[partition]@offset and the line within that message), "
            "its size and a preview with control and invalid bytes escaped. Follows the topic like "
            "`logad tail` until Ctrl-C; a summary goes to stderr at the end."
        ),
    )
    parser.add_argument(
        "--reason",
        action="append",
        metavar="R",
        help="only this reason (repeatable; default: all), e.g. no_header, invalid_utf8, binary, empty",
    )
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record, not at the end"
    )
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="print the whole topic as it stands (from the oldest record) and exit at its end offsets",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: the fields, the original bytes as base64 and the preview",
    )
    parser.add_argument(
        "--width",
        type=int,
        default=DEFAULT_PREVIEW_WIDTH,
        help="preview width in characters (default: %(default)s)",
    )
    parser.set_defaults(handler=_dead_letters)
