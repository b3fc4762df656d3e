from __future__ import annotations

import dataclasses

import orjson
import pytest

from pipeline.alerts import (
    ALERT_SCHEMA,
    Alert,
    AlertKind,
    ExpectedEvent,
    RawCoordinates,
    RawLine,
    alert_id,
    decode_alert,
    deduplicate,
    encode_alert,
)
from pipeline.errors import DataError


def make_alert(
    kind: AlertKind = AlertKind.UNEXPECTED_NEXT_EVENT, session: str = "blk_-1608999687919862906"
) -> Alert:
    return Alert(
        alert_id=alert_id("hdfs", session, kind),
        source="hdfs",
        session_key=session,
        kind=kind,
        model="lama",
        model_version=3,
        score=0.875,
        event_template_id=123456789012345,
        event_template="Unexpected error trying to delete block <*>",
        expected=(ExpectedEvent(11, "Receiving block <*> src: <*> dest: <*>", 0.5),),
        window=("Verification succeeded for <*>",),
        first_timestamp=1226235318.0,
        last_timestamp=None,
        position=7,
        raw=RawCoordinates("raw-logs", 2, 4711, 3),
        event_time=1226235318.0,
        lines=(
            RawLine(RawCoordinates("raw-logs", 2, 4700, 0), None),
            RawLine(RawCoordinates("raw-logs", 2, 4711, 3), "081109 203518 143 INFO dfs.DataNode: x\n  at y"),
        ),
        fields=(("component", "dfs.DataNode"), ("level", "INFO")),
        note="",
    )


# A version 1 alert as workers before schema 2 wrote it (old `log-anomalies` topics).
V1_ALERT = {
    "alert_id": alert_id("hdfs", "blk_1", AlertKind.OOV_EVENT),
    "source": "hdfs",
    "session_key": "blk_1",
    "kind": "oov_event",
    "model": "deeplog",
    "model_version": 2,
    "score": 1.0,
    "event_template_id": 9,
    "event_template": "new <*>",
    "expected": [{"template_id": 1, "template": "open <*>", "probability": 0.9}],
    "window": ["open <*>"],
    "first_timestamp": 1.0,
    "last_timestamp": 2.0,
    "position": 1,
    "raw": {"topic": "raw-logs", "partition": 0, "offset": 17},
    "label": "",
    "schema": 1,
}


@pytest.mark.parametrize("kind", list(AlertKind))
def test_round_trip(kind: AlertKind) -> None:
    alert = make_alert(kind)
    data = encode_alert(alert)
    assert decode_alert(data) == alert
    obj = orjson.loads(data)
    assert obj["schema"] == ALERT_SCHEMA == "log-anomaly/2" and obj["kind"] == kind.value
    assert obj["raw"] == {"topic": "raw-logs", "partition": 2, "offset": 4711, "line": 3}
    assert obj["lines"][1] == {
        "at": {"topic": "raw-logs", "partition": 2, "offset": 4711, "line": 3},
        "text": "081109 203518 143 INFO dfs.DataNode: x\n  at y",
    }


def test_round_trip_without_raw_lines_and_with_a_note() -> None:
    alert = dataclasses.replace(
        make_alert(), lines=(), fields=(), note="raw lines not read back", event_time=None
    )
    assert decode_alert(encode_alert(alert)) == alert


def test_version_1_alerts_still_decode_upgraded() -> None:
    alert = decode_alert(orjson.dumps(V1_ALERT))
    assert alert.schema == ALERT_SCHEMA
    assert alert.raw == RawCoordinates("raw-logs", 0, 17, -1)  # line index unknown in version 1
    assert alert.lines == (RawLine(RawCoordinates("raw-logs", 0, 17, -1)),)
    assert (alert.event_time, alert.fields, alert.note) == (2.0, (), "")
    assert alert.expected[0].template == "open <*>" and alert.kind is AlertKind.OOV_EVENT
    assert decode_alert(encode_alert(alert)) == alert  # re-encoded as version 2
    window = decode_alert(orjson.dumps({**V1_ALERT, "kind": "window_class", "raw": RAW_V1_NONE}))
    assert window.lines == () and window.event_time is None


def test_alerts_tagged_with_the_bare_version_2_still_decode() -> None:
    alert = make_alert()
    legacy = orjson.dumps({**orjson.loads(encode_alert(alert)), "schema": 2})  # before the string tag
    assert decode_alert(legacy) == alert


def test_id_is_stable_and_distinguishes_source_session_kind() -> None:
    base = alert_id("hdfs", "blk_1", AlertKind.OOV_EVENT)
    assert base == alert_id("hdfs", "blk_1", AlertKind("oov_event"))
    assert len(base) == 32 and int(base, 16) >= 0
    others = {
        alert_id("bgl", "blk_1", AlertKind.OOV_EVENT),
        alert_id("hdfs", "blk_2", AlertKind.OOV_EVENT),
        alert_id("hdfs", "blk_1", AlertKind.UNEXPECTED_NEXT_EVENT),
    }
    assert base not in others and len(others) == 3


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"{not json", "expected JSON"),
        (b"[1, 2]", "expected schema"),
        (orjson.dumps({**orjson.loads(encode_alert(make_alert())), "schema": 99}), "got 99"),
        (orjson.dumps({**orjson.loads(encode_alert(make_alert())), "schema": True}), "got True"),
        (orjson.dumps({**orjson.loads(encode_alert(make_alert())), "schema": "log-anomaly/3"}), "got 'log"),
        (orjson.dumps({**orjson.loads(encode_alert(make_alert())), "kind": "nope"}), "malformed"),
        (
            orjson.dumps({k: v for k, v in orjson.loads(encode_alert(make_alert())).items() if k != "raw"}),
            "malformed",
        ),
    ],
)
def test_bad_alert_raises_data_error(data: bytes, match: str) -> None:
    with pytest.raises(DataError, match=match):
        decode_alert(data)


RAW_V1_NONE = {"topic": "", "partition": -1, "offset": -1}


def test_deduplicate_keeps_first_per_session_and_cause() -> None:
    first = make_alert()
    resent = dataclasses.replace(first, score=0.1, position=9)
    other_kind = make_alert(AlertKind.OOV_EVENT)
    other_session = make_alert(session="blk_2")
    assert deduplicate([first, other_kind, resent, other_session]) == [first, other_kind, other_session]


def test_alerts_are_keyed_by_session() -> None:
    assert make_alert(session="blk_42").kafka_key() == b"blk_42"
