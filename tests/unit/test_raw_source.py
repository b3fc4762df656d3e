from __future__ import annotations

from typing import Any

import pytest

from pipeline.raw_source import MAX_SOURCE_CHARS, BadHeader, source_of


@pytest.mark.parametrize(
    ("headers", "key", "expected"),
    [
        ([("source", b"hdfs")], b"other", "hdfs"),
        ([("trace-id", b"\xff\x00"), ("source", b" bgl ")], None, "bgl"),  # other headers ignored
        ([("source", b"hdfs"), ("source", b"hdfs")], None, "hdfs"),
        ([("source", b"")], b"from-key", "from-key"),
        (None, b"from-key", "from-key"),
        ([], None, "default"),
        ([], b"", "default"),
    ],
)
def test_source_of(headers: Any, key: Any, expected: str) -> None:
    assert source_of(headers, key) == expected


@pytest.mark.parametrize(
    ("headers", "key", "problem"),
    [
        ([("source", b"\xff\xfe")], None, "not UTF-8"),
        ([("source", b"a\x00b")], None, "control characters"),
        ([("source", b"x" * (MAX_SOURCE_CHARS + 1))], None, "characters >"),
        ([("source", b"hdfs"), ("source", b"bgl")], None, "twice"),
        ([("source", "not-bytes")], None, "expected bytes"),
        ([], b"\xc3\x28", "not UTF-8"),
    ],
)
def test_unusable_source_is_refused_with_the_reason(headers: Any, key: Any, problem: str) -> None:
    with pytest.raises(BadHeader, match=problem):
        source_of(headers, key)


def test_headers_as_a_mapping() -> None:
    assert source_of({"source": b"hdfs"}, None) == "hdfs"
