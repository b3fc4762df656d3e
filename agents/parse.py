"""Parse agent: `raw-logs` -> `log-events` (one message per partition per batch), dead letters, templates."""

from __future__ import annotations

import logging
from typing import Any

import faust

from agents.app import app, dead_letters, log_events, metrics, raw_logs, settings, templates, wall_clock
from pipeline.deployment import TemplateFollower
from pipeline.parsing import Parser
from pipeline.partitioning import group_by_partition
from pipeline.records import DeadLetter, EventBatch, SourceOffset

log = logging.getLogger(__name__)

follower = TemplateFollower(settings.model_repo, settings.detection_model, wall_clock)
_parsers: dict[int, Parser] = {}


def current_parser() -> Parser:
    """The parser for the deployed template set (rebuilt when a newer model version appears)."""
    deployed = follower.current()
    parser = _parsers.get(deployed.version)
    if parser is None:
        _parsers.clear()
        parser = _parsers[deployed.version] = Parser(
            deployed.log_format, deployed.miner, max_message_bytes=settings.max_record_bytes
        )
    return parser


def source_of(message: Any) -> str:
    """The log source: the `source` header, else the message key, else "default"."""
    for name, value in message.headers or ():
        if name == "source" and isinstance(value, bytes | bytearray):
            text = bytes(value).decode("utf-8", "replace").strip()
            if text:
                return text
    key = message.key
    if isinstance(key, bytes | bytearray) and key:
        return bytes(key).decode("utf-8", "replace")
    return "default"


@app.agent(raw_logs)
async def parse(stream: faust.StreamT) -> None:
    # One raw message at a time: faust's take_events() can pair a buffered value with another
    # message's event when messages arrive while a batch is handled, which loses records. Producers
    # batch many lines per message (`logad replay --lines-per-message`), and each message's events
    # go out as one log-events message per partition.
    async for event in stream.events():
        message = event.message
        raw = SourceOffset(message.topic, message.partition, message.offset)
        value = bytes(event.value) if isinstance(event.value, bytes | bytearray) else b""
        parser = current_parser()
        records_before = parser.stats.records
        try:
            result = parser.parse(value, source_of(message), raw, wall_clock())
        except Exception as exc:  # a parser bug must not stop the stream; the record is kept
            log.exception("parse: unexpected failure at %s", raw)
            await _dead_letter(DeadLetter("internal-error", "parse", value, raw, repr(exc)))
            continue
        metrics.lines.inc(parser.stats.records - records_before)
        metrics.events.inc(len(result.events))
        metrics.oov.inc(sum(1 for e in result.events if e.oov))
        for dead in result.dead_letters:
            await _dead_letter(dead)
        for record in result.new_templates:
            await templates.send(key=record.key, value=record.encode())
        keyed = [(e.session_key, e) for e in result.events]
        for partition, events in group_by_partition(keyed, settings.topic_partitions).items():
            await log_events.send(
                key=f"partition-{partition}".encode(),
                value=EventBatch(tuple(events)).encode(),
                partition=partition,
            )


async def _dead_letter(dead: DeadLetter) -> None:
    metrics.dead_letters.labels(reason=dead.reason).inc()
    await dead_letters.send(key=dead.reason.encode(), value=dead.encode())
