"""Parse agent: `raw-logs` -> `log-events` (one message per partition per batch), dead letters, templates."""

from __future__ import annotations

import logging
from typing import Any

import faust

from agents import lag
from agents.app import app, dead_letters, log_events, metrics, raw_logs, settings, templates, wall_clock
from agents.failures import dead_letter_or_exit
from agents.ordering import InputRecord, parse_order
from pipeline.deployment import SourceParsers, TemplateFollower
from pipeline.partitioning import group_by_partition
from pipeline.raw_source import BAD_HEADER, BadHeader, source_of
from pipeline.records import DeadLetter, EventBatch, SourceOffset
from pipeline.source_health import FormatMismatchTracker
from pipeline.stream_clock import IngestWatermark

log = logging.getLogger(__name__)

unusable = metrics.set_unusable_versions
follower = TemplateFollower(settings.model_repo, settings.detection_model, wall_clock, on_unusable=unusable)
window_follower = TemplateFollower(
    settings.model_repo, settings.window_model, wall_clock, on_unusable=unusable
)
parsers = SourceParsers(
    follower, window_follower, settings.window_source_set, settings.max_record_bytes, settings.max_line_bytes
)
# Warns (rate-limited) when most recent lines of a source fail its format: likely the wrong source.
format_check = FormatMismatchTracker()
# Ingest time up to which this worker has parsed each raw partition; its ticks carry it
# (pipeline.stream_clock).
watermark = IngestWatermark()
read_through = lag.read_through.setdefault(settings.raw_logs_topic, {})


@app.agent(raw_logs)
async def parse(stream: faust.StreamT) -> None:
    # One raw message at a time: faust's take_events() can pair a buffered value with another
    # message's event when messages arrive while a batch is handled, which loses records. Producers
    # batch many lines per message (`logad replay --lines-per-message`), and each message's events
    # go out as one log-events message per partition.
    async for record in parse_order.records(stream):
        await _parse(record)


async def _parse(record: InputRecord) -> None:
    raw = SourceOffset(record.topic, record.partition, record.offset, timestamp=record.timestamp)
    watermark.observe(record.partition, record.timestamp, wall_clock())
    read_through[record.partition] = record.offset + 1
    try:
        await _parse_record(record.value, record.headers, record.key, raw)
    except Exception as exc:  # a bug or an unusable model must not lose the record (agents.failures)
        await dead_letter_or_exit("parse", [record.value], raw, exc)


async def _parse_record(value: bytes, headers: Any, key: bytes | None, raw: SourceOffset) -> None:
    try:
        source = source_of(headers, key)
    except BadHeader as exc:
        await _dead_letter(DeadLetter(BAD_HEADER, "parse", value, raw, str(exc)))
        return
    parser = parsers.for_source(source)
    records_before = parser.stats.records
    result = parser.parse(value, source, raw, wall_clock())
    metrics.lines.inc(parser.stats.records - records_before)
    metrics.events.inc(len(result.events))
    metrics.oov.inc(sum(1 for e in result.events if e.oov))
    metrics.decode_replacements.inc(result.decode_replacements)
    mismatch = format_check.observe(
        source, parser.format.name, result.records, result.format_misses, wall_clock()
    )
    if mismatch is not None:
        metrics.format_mismatches.labels(source=source).inc()
        log.warning("parse: %s", mismatch.message())
    for dead in result.dead_letters:
        await _dead_letter(dead)
    for template in result.new_templates:
        await templates.send(key=template.key, value=template.encode())
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
