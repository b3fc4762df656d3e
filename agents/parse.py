"""Parse agent: `raw-logs` -> `log-events` (one message per partition per batch), dead letters, templates.

The parsing itself is `pipeline.parse_stage.ParseStage`; this adapter keeps the record order, the
ingest watermark, the read position and the internal-error dead letter, and reports the metrics."""

from __future__ import annotations

import logging
from typing import Any

import faust

from agents import lag
from agents.app import app, dead_letters, log_events, metrics, raw_logs, settings, templates, wall_clock
from agents.failures import dead_letter_or_exit
from agents.faust_workarounds import InputRecord, parse_order
from pipeline.adapters.kafka import RawMessageReader
from pipeline.deployment import SourceParsers, TemplateFollower
from pipeline.parse_stage import ParseStage
from pipeline.raw_lines import RawLineReader
from pipeline.records import SourceOffset
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
# Ingest time up to which this worker has parsed each raw partition; its ticks carry it
# (pipeline.stream_clock).
watermark = IngestWatermark()
read_through = lag.read_through.setdefault(settings.raw_logs_topic, {})
# Alerts carry their raw lines (agents.detect): found among the messages parsed here lately, or read
# back from raw-logs (another worker parsed them, or they left this cache); events carry only positions.
raw_messages = RawMessageReader(settings, settings.app_id, timeout_s=settings.alert_raw_lines_timeout_s)
raw_lines = RawLineReader(
    raw_messages,
    parsers.for_source,
    timeout_s=settings.alert_raw_lines_timeout_s,
    cache_bytes=settings.alert_raw_cache_bytes,
)


@app.agent(raw_logs)
async def parse(stream: faust.StreamT) -> None:
    # The raw messages already waiting (a backlog) are parsed together and their events leave as
    # one log-events message per partition (`ParseStage.flush`): the detect agent's costs are per
    # message. faust's take_events() is not used: it can pair a buffered value with another
    # message's event when messages arrive while a batch is handled, which loses records.
    async for records in parse_order.batches(
        stream, settings.parse_batch_messages, settings.parse_batch_bytes
    ):
        await _parse_batch(records)


async def _parse_batch(records: list[InputRecord]) -> None:
    for record in records:
        await _parse(record)
    try:
        await stage.flush()
    except Exception as exc:  # a bug must not lose the records (agents.failures)
        stage.discard()
        for record in records:
            raw = SourceOffset(record.topic, record.partition, record.offset, timestamp=record.timestamp)
            await dead_letter_or_exit("parse", [record.value], raw, exc)
    # Read once their events are sent: a run whose read positions reached the end has every event in
    # log-events (pipeline.progress).
    for record in records:
        read_through[record.partition] = record.offset + 1


async def _parse(record: InputRecord) -> None:
    raw = SourceOffset(record.topic, record.partition, record.offset, timestamp=record.timestamp)
    watermark.observe(record.partition, record.timestamp, wall_clock())
    raw_lines.remember((record.topic, record.partition, record.offset), record.value)
    try:
        await _parse_record(record.value, record.headers, record.key, raw)
    except Exception as exc:  # a bug or an unusable model must not lose the record (agents.failures)
        await dead_letter_or_exit("parse", [record.value], raw, exc)


async def _parse_record(value: bytes, headers: Any, key: bytes | None, raw: SourceOffset) -> None:
    outcome = await stage.add(value, headers, key, raw)
    metrics.lines.inc(outcome.lines)
    metrics.events.inc(outcome.events)
    metrics.oov.inc(outcome.oov)
    metrics.decode_replacements.inc(outcome.decode_replacements)
    for reason in outcome.dead_letters:
        metrics.dead_letters.labels(reason=reason).inc()
    if outcome.mismatch is not None:
        metrics.format_mismatches.labels(source=outcome.mismatch.source).inc()


async def _send_events(partition: int, key: bytes, value: bytes) -> None:
    await log_events.send(key=key, value=value, partition=partition)


async def _send_dead_letter(key: bytes, value: bytes) -> None:
    await dead_letters.send(key=key, value=value)


async def _send_template(key: bytes, value: bytes) -> None:
    await templates.send(key=key, value=value)


stage = ParseStage(
    parsers.columnar_for_source,
    _send_events,
    _send_dead_letter,
    _send_template,
    wall_clock,
    settings.topic_partitions,
)
