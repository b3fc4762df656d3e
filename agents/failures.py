"""What an agent does when handling a record raised: dead-letter it, or stop the worker.

The record counts as handled (faust acknowledges it, and commits past it) once the agent asks for the
next one; faust also acknowledges the record an agent raised on. So an agent never lets an exception
out: it sends the record to the dead-letter topic (`internal-error`, see pipeline.failures) and waits
until the broker has it. If even that fails, the worker exits at once (`os._exit`), before faust can
commit past the record: a restarted worker reads it again instead of losing it in silence.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence

from agents.app import dead_letters, metrics
from pipeline.failures import INTERNAL_ERROR, internal_error
from pipeline.records import SourceOffset

log = logging.getLogger(__name__)

# How long the broker may take to acknowledge a dead letter (the producer retries within it).
DELIVERY_TIMEOUT_S = 120.0
EXIT_UNRECORDED = 70  # EX_SOFTWARE: a supervisor restarts the worker, which reads the record again


async def dead_letter_or_exit(
    step: str,
    originals: Sequence[bytes],
    raw: SourceOffset,
    exc: BaseException,
    also_wait: Callable[[], Awaitable[None]] | None = None,
    what: str = "",
) -> None:
    """Keep what `step` failed on (`originals`: the record, or the sessions it was closing) as
    `internal-error` dead letters; `exc` is what it raised, `what` says what an original is.

    Returns once the broker acknowledged them (and `also_wait`, e.g. the agent's other pending
    writes); otherwise logs why and ends the process without acknowledging the record.
    """
    log.error(
        "%s: handling %s[%d]@%d raised; sending %d dead letter(s) as %s",
        step, raw.topic, raw.partition, raw.offset, len(originals), INTERNAL_ERROR,
        exc_info=(type(exc), exc, exc.__traceback__),
    )  # fmt: skip
    try:
        sent = []
        for original in originals:
            letter = internal_error(step, original, raw, exc, what)
            metrics.dead_letters.labels(reason=letter.reason).inc()
            sent.append(await dead_letters.send(key=letter.reason.encode(), value=letter.encode()))
        await asyncio.wait_for(asyncio.gather(*sent), DELIVERY_TIMEOUT_S)
        if also_wait is not None:
            await asyncio.wait_for(also_wait(), DELIVERY_TIMEOUT_S)
    except Exception as failure:
        exit_unrecorded(step, raw, failure)


def exit_unrecorded(step: str, raw: SourceOffset, failure: BaseException) -> None:
    """End the worker now: `raw` was neither handled nor dead-lettered, so it must not be committed."""
    log.critical(
        "%s: %s[%d]@%d could not be processed nor sent to the dead-letter topic (%r); the worker exits "
        "without committing it so that a restart reads it again. Check the broker and the dead-letter "
        "topic (%s), then restart the worker",
        step, raw.topic, raw.partition, raw.offset, failure, dead_letters.get_topic_name(),
    )  # fmt: skip
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_UNRECORDED)  # not sys.exit: faust's shutdown would commit the offsets it acknowledged
