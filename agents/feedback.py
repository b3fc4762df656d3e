"""Operator feedback in the worker: `log-feedback` -> the allowlist the detector masks its rows with.

Every worker reads the whole compacted topic (one partition, no group: an allowlist is global), from
the start when it starts, so the allowlist survives restarts without state of its own; then it reads
what arrives, every `POLL_S`, so a verdict takes effect within a couple of seconds. The detect agent
waits for the first full read (`wait_ready`) before its first message, so a restarted worker never
alerts on behaviour it was told is normal. Malformed records go to the dead-letter topic; a missing
topic (a deployment older than feedback) is logged and retried, and detection runs without feedback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from agents.app import app, dead_letters, metrics, settings
from agents.parse import follower
from pipeline.adapters.kafka import read_to_end
from pipeline.errors import DataError, LogadError
from pipeline.feedback import Allowlist, FeedbackGate, decode_feedback, template_set_digest
from pipeline.records import DeadLetter, SourceOffset

log = logging.getLogger(__name__)

POLL_S = 1.0
_digests: dict[int, str] = {}  # id of a TemplateSet object -> its digest (a set is immutable)


def _template_set(model: str, version: int) -> str:
    """The digest of the template set the worker parses with: the ids of scored events are its ids."""
    current = follower.current()
    key = id(current.texts)
    if key not in _digests:
        _digests.clear()
        _digests[key] = template_set_digest(current.texts)
    return _digests[key]


gate = FeedbackGate(
    Allowlist(), _template_set, on_suppressed=lambda kind: metrics.suppressed.labels(kind).inc()
)
_ready = asyncio.Event()
_positions: dict[int, int] = {}


async def wait_ready() -> None:
    """Returns once the topic was read to its end offsets at start (or found missing)."""
    await _ready.wait()


async def _apply(messages: Sequence[Any]) -> None:
    for message in messages:
        _positions[message.partition()] = message.offset() + 1
        value = message.value()
        if value is None:
            continue  # a tombstone: the verdict's pairs stay accepted (other records may share them)
        try:
            record = decode_feedback(value)
        except DataError as exc:
            metrics.dead_letters.labels(reason="bad-feedback").inc()
            raw = SourceOffset(message.topic(), message.partition(), message.offset())
            await dead_letters.send(
                key=b"bad-feedback",
                value=DeadLetter("bad-feedback", "feedback", value, raw, str(exc)).encode(),
            )
            continue
        if gate.apply(record):
            log.info("feedback: %s %s of %s now accepted", record.kind.value, record.alert_id, record.model)
    metrics.feedback_entries.set(gate.allowlist.entries())


@app.task
async def follow_feedback() -> None:
    loop = asyncio.get_running_loop()
    topic = settings.feedback_topic
    while True:
        try:
            starts = dict(_positions) or None
            messages = await loop.run_in_executor(None, read_to_end, settings, topic, starts, 30.0)
            await _apply(messages)
        except LogadError as exc:
            log.warning("feedback: cannot read %s (%s); detection goes on without new feedback", topic, exc)
        _ready.set()
        await asyncio.sleep(POLL_S)
