"""internal_error: the dead letter of a record whose handling raised."""

from __future__ import annotations

from pipeline.errors import ModelError
from pipeline.failures import INTERNAL_ERROR, KEEP_PREFIX_BYTES, KEEP_WHOLE_BYTES, internal_error
from pipeline.records import DeadLetter, SourceOffset

RAW = SourceOffset("raw-logs", 2, 41)


def test_keeps_original_position_step_and_exception() -> None:
    letter = internal_error("parse", b"line one\nline two", RAW, ModelError("no valid version of x"))
    decoded = DeadLetter.decode(letter.encode())
    assert (decoded.reason, decoded.step, decoded.original, decoded.raw) == (
        INTERNAL_ERROR,
        "parse",
        b"line one\nline two",
        RAW,
    )
    assert "ModelError: no valid version of x" in decoded.detail


def test_a_huge_original_keeps_a_prefix_so_the_letter_can_be_sent() -> None:
    original = b"x" * (KEEP_WHOLE_BYTES + 1)
    letter = internal_error("detect", original, RAW, RuntimeError("boom"))
    assert letter.original == original[:KEEP_PREFIX_BYTES]
    assert f"record of {len(original)} bytes" in letter.detail
    assert len(letter.encode()) < 1 << 20
