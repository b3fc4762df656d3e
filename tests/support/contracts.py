"""Checks of the topic contracts on a real run: every record a worker wrote carries its content type
and validates against its topic's JSON Schema (`pipeline/schemas/`)."""

from __future__ import annotations

import jsonschema
import orjson

from pipeline.adapters.kafka import read_to_end
from pipeline.settings import Settings
from pipeline.topic_contracts import (
    CONTENT_TYPE_HEADER,
    JSON_CONTENT_TYPE,
    RAW_LINES_CONTENT_TYPE,
    TOPIC_SCHEMAS,
    load_schema,
)


def assert_topic_contracts(settings: Settings) -> dict[str, int]:
    """Records checked per topic; an empty topic is fine (not every run dead-letters)."""
    checked: dict[str, int] = {}
    for setting, file_name in TOPIC_SCHEMAS.items():
        topic = getattr(settings, setting)
        validator = jsonschema.Draft202012Validator(load_schema(file_name))
        records = read_to_end(settings, topic)
        for record in records:
            headers = {name: bytes(value or b"").decode("utf-8") for name, value in record.headers() or []}
            where = f"{topic}[{record.partition()}]@{record.offset()}"
            if setting == "raw_logs_topic":
                assert headers.get(CONTENT_TYPE_HEADER) == RAW_LINES_CONTENT_TYPE, (where, headers)
                instance = headers
            else:
                assert headers.get(CONTENT_TYPE_HEADER) == JSON_CONTENT_TYPE, (where, headers)
                instance = orjson.loads(record.value() or b"")
            error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
            assert error is None, f"{where} breaks {file_name}: {list(error.path)}: {error.message}"
        checked[topic] = len(records)
    return checked
