"""The Faust schema of every topic the worker writes: bytes in and out, and a `content-type` header.

The pipeline encodes its records itself (`pipeline.records`, `pipeline.event_columns`,
`pipeline.alerts`, `pipeline.session_state_log`), so keys and values pass as raw bytes. The header is
added here, where every agent's `send` passes, so no agent has to remember it.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types.core import merge_headers

from pipeline.topic_contracts import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE


class JsonRecords(faust.Schema):
    """Raw key and value; each record sent gets `content-type: application/json` (unless the caller
    set one)."""

    def __init__(self, content_type: str = JSON_CONTENT_TYPE) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")
        self.content_type = content_type

    def on_dumps_value_prepare_headers(self, value: Any, headers: Any) -> Any:
        given = headers.keys() if isinstance(headers, dict) else (name for name, _ in headers)
        if CONTENT_TYPE_HEADER not in given:
            merge_headers(headers, {CONTENT_TYPE_HEADER: self.content_type})
        return headers
