"""What each topic carries: its JSON Schema (draft 2020-12, in `pipeline/schemas/`, shipped in the
wheel) and the `content-type` header every record the pipeline produces carries.

Every JSON record also names its own format in its `schema` field as `<name>/<version>`
(`log-anomaly/2`, `event-batch/2`, `dead-letter/1`, `log-template/1`, `session-state-log/1`,
`log-feedback/1`), which
its reader checks; the header lets a consumer that is not `logad` (a connector, a sink, kcat) tell
JSON from raw text without looking inside.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONTENT_TYPE_HEADER = "content-type"
JSON_CONTENT_TYPE = "application/json"
# Raw log lines joined by newlines; no charset: shippers send whatever bytes the log has.
RAW_LINES_CONTENT_TYPE = "text/plain"

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
# The schema file of each topic, by the setting that names the topic.
TOPIC_SCHEMAS = {
    "raw_logs_topic": "raw-logs.headers.schema.json",
    "log_events_topic": "log-events.schema.json",
    "anomalies_topic": "log-anomalies.schema.json",
    "templates_topic": "log-templates.schema.json",
    "dead_letter_topic": "logad-dead-letter.schema.json",
    "session_state_topic": "logad-session-state.schema.json",
    "feedback_topic": "log-feedback.schema.json",
}
WEBHOOK_SCHEMA_FILE = "logad-webhook.schema.json"


def json_headers() -> list[tuple[str, bytes]]:
    """The headers of a JSON record on any pipeline topic."""
    return [(CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE.encode("ascii"))]


def raw_message_headers(source: str, produced_at: float) -> list[tuple[str, bytes]]:
    """The headers `logad replay` puts on a raw-logs message (`raw-logs.headers.schema.json`):
    `source` picks the worker's parser, `produced_at` (Unix s) measures latency."""
    return [
        ("source", source.encode("utf-8")),
        ("produced_at", repr(produced_at).encode("ascii")),
        (CONTENT_TYPE_HEADER, RAW_LINES_CONTENT_TYPE.encode("ascii")),
    ]


def load_schema(file_name: str) -> dict[str, Any]:
    """One schema file of `pipeline/schemas/` as a dict."""
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / file_name).read_text(encoding="utf-8"))
    return loaded


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every schema file, by file name."""
    return {path.name: load_schema(path.name) for path in sorted(SCHEMA_DIR.glob("*.schema.json"))}
