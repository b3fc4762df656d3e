"""The Faust application: settings from `LOGAD_*`, topics, the session table, and the agents."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import faust
from faust.types import FutureMessage

from agents.metrics import Metrics
from pipeline.adapters.faust_config import faust_app_options
from pipeline.settings import Settings

log = logging.getLogger(__name__)

settings = Settings.from_env(os.environ)
app = faust.App(settings.app_id, **faust_app_options(settings))
metrics = Metrics()

raw_logs = app.topic(settings.raw_logs_topic, key_serializer="raw", value_serializer="raw")
log_events = app.topic(
    settings.log_events_topic,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
)
anomalies = app.topic(settings.anomalies_topic, key_serializer="raw", value_serializer="raw")
templates = app.topic(settings.templates_topic, key_serializer="raw", value_serializer="raw")
dead_letters = app.topic(settings.dead_letter_topic, key_serializer="raw", value_serializer="raw")


class AwaitableTable(faust.Table):
    """A table whose changelog writes can be awaited (`written`).

    Faust's dict API queues each write in its producer buffer and forgets the future, and its
    `producer.flush()` gives up after 0.1 s without a message handed on: a commit could then cover
    state still in that queue, lost if the worker died (kill -9) or left the group before sending it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._unsent: list[FutureMessage] = []
        super().__init__(*args, **kwargs)

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        fut = super().send_changelog(*args, **kwargs)
        self._unsent.append(fut)
        return fut

    async def written(self) -> None:
        """Wait until every write so far is acknowledged by the broker (raises if one failed)."""
        unsent, self._unsent = self._unsent, []
        if unsent:
            await asyncio.gather(*unsent)


# Session state per session key, backed by a changelog topic so a restarted worker resumes. Values
# are plain dicts (SessionState.to_dict), never pickles.
sessions = app.tables.add(
    AwaitableTable(
        app,
        name="sessions",
        default=None,
        beacon=app.tables.beacon,
        partitions=settings.topic_partitions,
        key_type=str,  # values: the app's default JSON serializer (a dict per session)
    )
)


def wall_clock() -> float:
    return time.time()


# Registering the agents and web views (imported for their decorators).
from agents import detect, lag, parse, web  # noqa: E402, F401
