"""The Faust application: settings from `LOGAD_*`, topics, and the agents."""

from __future__ import annotations

import logging
import os
import time

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

from agents.metrics import Metrics
from pipeline.adapters.faust_config import faust_app_options, prepare_state_dir
from pipeline.adapters.faust_records import JsonRecords
from pipeline.settings import Settings

log = logging.getLogger(__name__)

settings = Settings.from_env(os.environ)
prepare_state_dir(settings)
app = faust.App(settings.app_id, **faust_app_options(settings))
metrics = Metrics()
# Faust's own sensor (messages in/out, commit and send latency, rebalances) on the registry /metrics
# serves, under a fixed prefix so dashboards do not depend on LOGAD_APP_ID.
app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(metrics.registry, "faust"))
# Topics the worker declares get the same min ISR as those `logad kafka topics` creates.
topic_config = settings.topic_config()

raw_logs = app.topic(
    settings.raw_logs_topic, key_serializer="raw", value_serializer="raw", config=topic_config
)
# The topics the worker writes: raw bytes, each record with a content-type header (pipeline.topic_contracts).
json_records = JsonRecords()
log_events = app.topic(
    settings.log_events_topic, schema=json_records, partitions=settings.topic_partitions, config=topic_config
)
anomalies = app.topic(settings.anomalies_topic, schema=json_records, config=topic_config)
templates = app.topic(settings.templates_topic, schema=json_records, config=topic_config)
dead_letters = app.topic(settings.dead_letter_topic, schema=json_records, config=topic_config)
# Session state of the detect agent (agents.session_state): orjson records, never pickles.
state_log = app.topic(
    settings.session_state_topic,
    schema=json_records,
    partitions=settings.topic_partitions,
    config=topic_config,
)


def wall_clock() -> float:
    return time.time()


# Registering the agents and web views (imported for their decorators).
from agents import detect, lag, parse, web  # noqa: E402, F401
