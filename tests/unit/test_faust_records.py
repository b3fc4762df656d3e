from __future__ import annotations

import faust

from pipeline.adapters.faust_records import JsonRecords


def test_every_value_sent_gets_the_content_type_and_passes_as_bytes() -> None:
    app = faust.App("test-faust-records")
    schema = JsonRecords()
    value, headers = schema.dumps_value(app, b'{"schema":"dead-letter/1"}', headers={})
    assert value == b'{"schema":"dead-letter/1"}'
    assert headers == {"content-type": b"application/json"}
    _, listed = schema.dumps_value(app, b"{}", headers=[("trace", b"1")])
    assert listed == [("trace", b"1"), ("content-type", b"application/json")]
    _, kept = schema.dumps_value(app, b"{}", headers={"content-type": b"application/x-other"})
    assert kept == {"content-type": b"application/x-other"}  # a caller's own header wins
    key, _ = schema.dumps_key(app, b"blk_1", headers={})
    assert key == b"blk_1"
