"""The Faust application: settings from `LOGAD_*`, topics, and the agents."""

from __future__ import annotations

import logging
import os
import time

import faust

from agents.metrics import Metrics
from pipeline.adapters.faust_config import faust_app_options
from pipeline.adapters.faust_records import JsonRecords
from pipeline.settings import Settings

log = logging.getLogger(__name__)

settings = Settings.from_env(os.environ)
app = faust.App(settings.app_id, **faust_app_options(settings))
metrics = Metrics()

raw_logs = app.topic(settings.raw_logs_topic, key_serializer="raw", value_serializer="raw")
# The topics the worker writes: raw bytes, each record with a content-type header (pipeline.topic_contracts).
json_records = JsonRecords()
log_events = app.topic(settings.log_events_topic, schema=json_records, partitions=settings.topic_partitions)
anomalies = app.topic(settings.anomalies_topic, schema=json_records)
templates = app.topic(settings.templates_topic, schema=json_records)
dead_letters = app.topic(settings.dead_letter_topic, schema=json_records)
# Session state of the detect agent (agents.session_state): orjson records, never pickles.
state_log = app.topic(settings.session_state_topic, schema=json_records, partitions=settings.topic_partitions)


def wall_clock() -> float:
    return time.time()


# Registering the agents and web views (imported for their decorators).
from agents import detect, lag, parse, web  # noqa: E402, F401
