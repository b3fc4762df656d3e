"""The Faust application: settings from `LOGAD_*`, topics, the session table, and the agents."""

from __future__ import annotations

import logging
import os
import time

import faust

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

# Session state per session key, backed by a changelog topic so a restarted worker resumes. Values
# are plain dicts (SessionState.to_dict), never pickles.
sessions = app.Table(
    "sessions",
    default=None,
    partitions=settings.topic_partitions,
    key_type=str,  # values: the app's default JSON serializer (a dict per session)
)


def wall_clock() -> float:
    return time.time()


# Registering the agents and web views (imported for their decorators).
from agents import detect, lag, parse, web  # noqa: E402, F401
