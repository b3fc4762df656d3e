"""Every record the encoders really produce validates against its topic's JSON Schema
(`pipeline/schemas/`), a broken one does not, and every schema tags its records `<name>/<version>`."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource

from pipeline.alert_routing import webhook_payload
from pipeline.alerts import AlertKind, decode_alert, encode_alert
from pipeline.columnar_parse import ColumnarParser
from pipeline.event_columns import EventColumns
from pipeline.failures import internal_error
from pipeline.formats import HDFS
from pipeline.records import DeadLetter, EventBatch, LogEvent, SourceOffset, TemplateRecord
from pipeline.session_state_log import SnapshotPolicy
from pipeline.settings import Settings
from pipeline.templates import TemplateMiner
from pipeline.topic_contracts import (
    SCHEMA_DIR,
    TOPIC_SCHEMAS,
    WEBHOOK_SCHEMA_FILE,
    all_schemas,
    json_headers,
    raw_message_headers,
)
from tests.unit.test_alerts import V1_ALERT, make_alert
from tests.unit.test_parse_stage import LINE, Sinks, _frozen, _handle, _stage
from tests.unit.test_session_state_log import Log, Writer, open_partition, random_messages

SCHEMAS = all_schemas()
REGISTRY: Registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)


def validator(file_name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(SCHEMAS[file_name], registry=REGISTRY)


def assert_valid(file_name: str, value: bytes | dict[str, Any]) -> None:
    instance = orjson.loads(value) if isinstance(value, bytes) else value
    errors = sorted(validator(file_name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{file_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def assert_invalid(file_name: str, instance: Any) -> None:
    assert not validator(file_name).is_valid(instance), f"{file_name} took {str(instance)[:200]}"


def test_every_topic_has_a_valid_draft_2020_12_schema_with_a_unique_id() -> None:
    assert {f.name for f in SCHEMA_DIR.glob("*.schema.json")} == set(TOPIC_SCHEMAS.values()) | {
        WEBHOOK_SCHEMA_FILE
    }
    assert set(TOPIC_SCHEMAS) == {
        name for name in (f.name for f in dataclasses.fields(Settings)) if name.endswith("_topic")
    }
    # One topic list: every topic setting is created and laid out, in TOPIC_FIELDS.
    from pipeline.adapters.kafka import pipeline_topics
    from pipeline.settings import TOPIC_FIELDS

    assert set(TOPIC_FIELDS) == set(TOPIC_SCHEMAS)
    settings = Settings()
    assert [spec.name for spec in pipeline_topics(settings)] == list(settings.all_topics())
    for schema in SCHEMAS.values():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
    assert len({s["$id"] for s in SCHEMAS.values()}) == len(SCHEMAS)


def _tags(schema: dict[str, Any]) -> list[str]:
    """The `schema` constants of a record schema and of its alternatives."""
    found = [schema["properties"]["schema"]["const"]] if "schema" in schema.get("properties", {}) else []
    for definition in schema.get("$defs", {}).values():
        found += _tags(definition)
    return found


def test_every_json_record_is_tagged_name_slash_version() -> None:
    tags = {name: _tags(schema) for name, schema in SCHEMAS.items() if not name.startswith("raw-logs")}
    assert all(tags.values()), tags
    assert all(re.fullmatch(r"[a-z][a-z0-9-]*/[1-9][0-9]*", t) for ts in tags.values() for t in ts), tags


@pytest.mark.parametrize("kind", list(AlertKind))
def test_alerts_validate(kind: AlertKind) -> None:
    assert_valid("log-anomalies.schema.json", encode_alert(make_alert(kind)))


def test_alerts_without_lines_and_upgraded_version_1_alerts_validate() -> None:
    bare = dataclasses.replace(make_alert(), lines=(), fields=(), event_time=None, note="timed out")
    assert_valid("log-anomalies.schema.json", encode_alert(bare))
    assert_valid("log-anomalies.schema.json", encode_alert(decode_alert(orjson.dumps(V1_ALERT))))
    good = orjson.loads(encode_alert(make_alert()))
    assert_invalid("log-anomalies.schema.json", {**good, "kind": "nope"})
    assert_invalid("log-anomalies.schema.json", {**good, "schema": 2})  # the old untagged form
    assert_invalid("log-anomalies.schema.json", {k: v for k, v in good.items() if k != "expected"})


def test_the_webhook_body_validates() -> None:
    body = webhook_payload([make_alert(), make_alert(AlertKind.WINDOW_CLASS)])
    assert_valid(WEBHOOK_SCHEMA_FILE, orjson.loads(orjson.dumps(body)))
    assert_invalid(WEBHOOK_SCHEMA_FILE, {**body, "alerts": [{"alert_id": "x"}]})  # checked through $ref


def test_what_the_parse_stage_sends_validates() -> None:
    """log-events, dead letters and templates exactly as the parse agent would send them."""
    sinks = Sinks()
    stage = _stage(ColumnarParser(HDFS, TemplateMiner.load_state(_frozen(HDFS, [LINE]))), sinks)
    other = LINE.replace("Receiving block", "Deleting block").replace("src:", "from")
    payload = b"\n".join([LINE.encode(), b"no header here", other.encode(), b"\x00\x01binary", LINE.encode()])
    _handle(stage, payload, 5)
    _handle(stage, "\n".join(LINE.replace("blk_-16", f"blk_{i}") for i in range(40)).encode(), 6)
    assert sinks.events and sinks.dead and sinks.templates
    for _, _, value in sinks.events:
        assert_valid("log-events.schema.json", value)
    for _, value in sinks.dead:
        assert_valid("logad-dead-letter.schema.json", value)
    for _, value in sinks.templates:
        assert_valid("log-templates.schema.json", value)


def _event(i: int, params: tuple[str, ...], timestamp: float | None) -> LogEvent:
    raw = SourceOffset("raw-logs", i % 3, 1000 + i, i, None if i % 2 else 1.7e9 + i)
    return LogEvent("hdfs", f"blk_{i % 4}", timestamp, 100 + i % 5, f"t {i % 5} <*>", params, i % 7 == 0, raw)


@pytest.mark.parametrize(
    "events",
    [
        [],
        [_event(0, ("a",), 1.0)],
        [_event(i, ("a", "b c"), None if i % 3 else float(i)) for i in range(30)],  # params with a space
        [_event(i, (), math.nan if i else 2.0) for i in range(5)],
        [
            dataclasses.replace(_event(i, ("x",), 5.0), raw=SourceOffset("raw-logs", 1, 7, i, 9.0))
            for i in range(9)
        ],
    ],
)
def test_event_batches_of_both_versions_and_ticks_validate(events: list[LogEvent]) -> None:
    assert_valid("log-events.schema.json", EventColumns.from_events(events).encode())
    assert_valid("log-events.schema.json", EventBatch(tuple(events)).encode())
    tick = ((0, 1.7e9), (3, 1.7e9 + 0.5))
    assert_valid("log-events.schema.json", EventBatch((), tick, 4).encode())
    assert_valid("log-events.schema.json", EventColumns.empty(tick, 4).encode())


def test_broken_event_batches_do_not_validate() -> None:
    good = orjson.loads(EventColumns.from_events([_event(i, ("a",), 1.0) for i in range(3)]).encode())
    assert_invalid("log-events.schema.json", {**good, "schema": "event-batch/3"})
    assert_invalid("log-events.schema.json", {**good, "columns": {**good["columns"], "oov": ["<u2", "AA=="]}})
    columns = {k: v for k, v in good["columns"].items() if k != "param_end"}
    assert_invalid("log-events.schema.json", {**good, "columns": columns})
    assert_invalid("log-events.schema.json", {**good, "watermarks": [[0, 1.0]]})  # without raw_partitions
    v1 = orjson.loads(EventBatch((_event(1, (), 1.0),)).encode())
    v1["events"][0]["oov"] = 1
    assert_invalid("log-events.schema.json", v1)


def test_dead_letters_validate() -> None:
    letters = [
        DeadLetter("binary", "parse", b"\x00\xff", SourceOffset("raw-logs", 0, 3, 2), "control bytes"),
        internal_error("detect", b"{}", SourceOffset("log-events", 1, 9), ValueError("boom")),
        DeadLetter("empty", "parse", b""),
    ]
    for letter in letters:
        assert_valid("logad-dead-letter.schema.json", letter.encode())
    good = orjson.loads(letters[0].encode())
    assert_invalid("logad-dead-letter.schema.json", {**good, "original_b64": "not base64!"})
    assert_invalid("logad-dead-letter.schema.json", {**good, "extra": 1})


def test_templates_validate() -> None:
    record = TemplateRecord(42, "Receiving block <*>", 1.7e9, 3, replaces_id=7, oov=True)
    assert_valid("log-templates.schema.json", record.encode())
    assert_invalid("log-templates.schema.json", {**orjson.loads(record.encode()), "count": -1})


def test_every_session_state_record_kind_validates() -> None:
    log = Log()
    writer = Writer(log, open_partition(log), SnapshotPolicy(growth=1.0, min_bytes=2_000), 4096)
    for offset, events in enumerate(random_messages(3, 60)):
        writer.message(offset, events, float(offset), timeout_s=20.0)
    kinds = set()
    for value in log.values:
        assert_valid("logad-session-state.schema.json", value)
        kinds.add(orjson.loads(value)["kind"])
    assert kinds == {"open", "delta", "snapshot"}
    good = orjson.loads(log.values[-1])
    assert_invalid("logad-session-state.schema.json", {**good, "kind": "other"})
    assert_invalid("logad-session-state.schema.json", {**good, "put": [{"v": 2}]})


def test_raw_logs_headers_from_replay_validate() -> None:
    headers = {name: value.decode("utf-8") for name, value in raw_message_headers("hdfs", 1.7e9 + 0.25)}
    assert headers["content-type"] == "text/plain" and headers["source"] == "hdfs"
    assert_valid("raw-logs.headers.schema.json", headers)
    assert_invalid("raw-logs.headers.schema.json", {**headers, "produced_at": "yesterday"})
    assert_invalid("raw-logs.headers.schema.json", {**headers, "source": ""})


def test_json_records_carry_the_json_content_type() -> None:
    assert json_headers() == [("content-type", b"application/json")]


def test_feedback_records_validate() -> None:
    from pipeline.feedback import FeedbackRecord, encode_feedback

    record = FeedbackRecord(
        "a1b2c3", AlertKind.OOV_EVENT, "lama", 3, "0123456789abcdef", (0, 0, 5, 7), 9, 1.0
    )
    assert_valid("log-feedback.schema.json", encode_feedback(record))
    assert_invalid("log-feedback.schema.json", {**orjson.loads(encode_feedback(record)), "verdict": "maybe"})
