"""Records whose handling raised: kept as `internal-error` dead letters instead of lost in silence.

A bug or an unusable model must not drop a record: the agent that failed on it sends it here with
its original bytes and source position, and only then goes on to the next record (see `agents.failures`
for what happens when even that cannot be sent).
"""

from __future__ import annotations

from pipeline.records import DeadLetter, SourceOffset

INTERNAL_ERROR = "internal-error"
# Originals up to this size are kept whole. A dead letter carries them base64-encoded (4/3 larger), and
# must fit the 16 MiB the producer and broker allow, or the record could be neither handled nor kept.
KEEP_WHOLE_BYTES = 8 << 20
KEEP_PREFIX_BYTES = 64 << 10


def internal_error(
    step: str, original: bytes, raw: SourceOffset, exc: BaseException, what: str = ""
) -> DeadLetter:
    """The dead letter of a record whose handling in `step` raised `exc`; `what` says what the
    original is when it is not the input record itself."""
    detail = (
        f"{step}: handling the record raised {type(exc).__name__}: {exc}; it was not processed. "
        "See the worker log for the traceback; once fixed, replay the original bytes"
    )
    if what:
        detail += f". The original is {what}"
    if len(original) > KEEP_WHOLE_BYTES:
        detail += f" (record of {len(original)} bytes, kept the first {KEEP_PREFIX_BYTES})"
        original = original[:KEEP_PREFIX_BYTES]
    return DeadLetter(INTERNAL_ERROR, step, original, raw, detail)
