from __future__ import annotations

import dataclasses

import numpy as np
import orjson
import pytest

from pipeline.alerts import Alert, AlertKind, RawCoordinates, alert_id
from pipeline.errors import DataError
from pipeline.feedback import (
    Allowlist,
    FeedbackRecord,
    PairAllowlist,
    build_allowlist,
    decode_feedback,
    encode_feedback,
    feedback_from_alert,
    template_set_digest,
)
from pipeline.templates import template_id


def record(
    window: tuple[int, ...] = (0, 0, 3, 4),
    next_event: int = 7,
    kind: AlertKind = AlertKind.UNEXPECTED_NEXT_EVENT,
    alert: str = "a1",
    score: float = 0.5,
) -> FeedbackRecord:
    return FeedbackRecord(alert, kind, "lama", 3, "digest", window, next_event, score, "hdfs", "blk_1")


def test_record_round_trips_through_json() -> None:
    original = dataclasses.replace(record(), note="fine", created_at=12.5)
    assert decode_feedback(encode_feedback(original)) == original


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": 2}, "schema"),
        ({"kind": "nonsense"}, "kind is one of"),
        ({"verdict": "abnormal"}, "verdict"),
        ({"window": [1, "x"]}, "integer template ids"),
        ({"window": []}, "needs the model window"),
        ({"next_event": -3}, "0..2**52"),
        ({"model_version": "3"}, "'model_version' must be int"),
        ({"score": True}, "'score' must be"),
        ({"alert_id": ""}, "must not be empty"),
        ({"surprise": 1}, "unknown fields ['surprise']"),
    ],
)
def test_malformed_records_name_what_is_wrong(change: dict[str, object], message: str) -> None:
    obj = orjson.loads(encode_feedback(record()))
    obj.update(change)
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("*", r"\*")):
        decode_feedback(orjson.dumps(obj))


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"null", b"\xff\xfe"])
def test_non_objects_are_data_errors(data: bytes) -> None:
    with pytest.raises(DataError):
        decode_feedback(data)


def test_missing_field_is_named() -> None:
    obj = orjson.loads(encode_feedback(record()))
    del obj["session_key"]
    with pytest.raises(DataError, match="missing fields \\['session_key'\\]"):
        decode_feedback(orjson.dumps(obj))


def test_vectorised_check_matches_the_scalar_one() -> None:
    rng = np.random.default_rng(0)
    windows = rng.integers(0, 6, size=(500, 4))
    nexts = rng.integers(1, 6, size=500)
    pairs = PairAllowlist(4)
    for i in range(0, 500, 7):
        pairs.add(windows[i].tolist(), int(nexts[i]))
    got = pairs.accepted(windows, nexts)
    expected = [pairs.accepts(w.tolist(), int(n)) for w, n in zip(windows, nexts, strict=True)]
    assert got.tolist() == expected
    assert got[::7].all() and got.sum() >= 500 // 7


def test_only_the_exact_pair_is_accepted() -> None:
    pairs = PairAllowlist(3)
    pairs.add([0, 1, 2], 5)
    windows = np.array([[0, 1, 2], [0, 1, 2], [1, 1, 2], [0, 2, 1]])
    assert pairs.accepted(windows, np.array([5, 6, 5, 5])).tolist() == [True, False, False, False]
    assert pairs.discard([0, 1, 2], 5)
    assert not pairs.accepted(windows, np.array([5, 6, 5, 5])).any()


def test_large_ids_and_the_session_end_marker_hash_exactly() -> None:
    big = template_id("Receiving block <*> src: <*> dest: <*>")
    pairs = PairAllowlist(2)
    pairs.add([0, big], 1 << 52)
    assert pairs.accepted(np.array([[0, big], [0, big]]), np.array([1 << 52, big])).tolist() == [True, False]


def test_window_size_mismatch_is_refused() -> None:
    pairs = PairAllowlist(3)
    with pytest.raises(DataError, match="pad it on the left"):
        pairs.add([1, 2], 3)
    with pytest.raises(DataError, match="windows have 2 events"):
        pairs.accepted(np.zeros((1, 2), dtype=np.int64), np.zeros(1, dtype=np.int64))


def test_allowlist_scopes_by_model_and_template_set() -> None:
    allowlist = build_allowlist([record()])
    window, nxt = np.array([[0, 0, 3, 4]]), np.array([7])
    assert allowlist.scope("lama", "digest", 4).accepted(window, nxt).tolist() == [True]
    assert allowlist.scope("lama", "other", 4).accepted(window, nxt).tolist() == [False]
    assert allowlist.scope("deeplog", "digest", 4).accepted(window, nxt).tolist() == [False]


def test_duplicate_records_change_nothing() -> None:
    allowlist = Allowlist()
    assert allowlist.add(record())
    assert not allowlist.add(record())
    assert allowlist.records == 1 and allowlist.entries() == 1


def test_parameter_feedback_widens_that_key_only() -> None:
    allowlist = build_allowlist([record(kind=AlertKind.PARAMETER_VALUE, next_event=9, score=0.4)])
    assert allowlist.parameter_accepted("lama", 9, 0.3)
    assert allowlist.parameter_accepted("lama", 9, 0.4)
    assert not allowlist.parameter_accepted("lama", 9, 0.41)
    assert not allowlist.parameter_accepted("lama", 8, 0.1)
    allowlist.add(record(kind=AlertKind.PARAMETER_VALUE, next_event=9, score=0.2, alert="a2"))
    assert allowlist.parameter_accepted("lama", 9, 0.4)  # widening never narrows


def test_window_class_feedback_accepts_the_same_counts_in_any_order() -> None:
    allowlist = build_allowlist([record(kind=AlertKind.WINDOW_CLASS, window=(5, 6, 5))])
    assert allowlist.window_accepted("lama", "digest", [6, 5, 5])
    assert not allowlist.window_accepted("lama", "digest", [6, 5])


def test_allowlist_survives_bytes() -> None:
    allowlist = build_allowlist(
        [
            record(),
            record(window=(0, 1 << 40, 2, 3), next_event=1 << 52, alert="a2"),
            record(kind=AlertKind.PARAMETER_VALUE, next_event=9, alert="a3"),
            record(kind=AlertKind.WINDOW_CLASS, window=(5, 6), alert="a4"),
        ]
    )
    restored = Allowlist.from_bytes(allowlist.to_bytes())
    assert restored.to_bytes() == allowlist.to_bytes()
    assert restored.scope("lama", "digest", 4).accepts((0, 1 << 40, 2, 3), 1 << 52)
    assert restored.parameter_accepted("lama", 9, 0.5) and restored.window_accepted("lama", "digest", [6, 5])
    assert restored.records == 4


@pytest.mark.parametrize("data", [b"pickle", b"{}", b'{"format": "logad-allowlist/1"}'])
def test_bad_allowlist_bytes_are_data_errors(data: bytes) -> None:
    with pytest.raises(DataError):
        Allowlist.from_bytes(data)


def test_record_from_alert_pads_and_hashes_its_window() -> None:
    texts = ("Receiving block <*>", "<template 42>")
    alert = Alert(
        alert_id=alert_id("hdfs", "blk_1", AlertKind.UNEXPECTED_NEXT_EVENT),
        source="hdfs",
        session_key="blk_1",
        kind=AlertKind.UNEXPECTED_NEXT_EVENT,
        model="lama",
        model_version=2,
        score=0.9,
        event_template_id=77,
        event_template="x",
        expected=(),
        window=texts,
        first_timestamp=None,
        last_timestamp=None,
        position=2,
        raw=RawCoordinates(),
    )
    made = feedback_from_alert(alert, 4, template_set_digest([1, 2]), note="ok")
    assert made.window == (0, 0, template_id(texts[0]), 42)
    assert (made.next_event, made.model_version, made.session_key) == (77, 2, "blk_1")
    with pytest.raises(DataError, match="more than the model's 1"):
        feedback_from_alert(alert, 1, "d")


def test_template_set_digest_ignores_order_and_duplicates() -> None:
    assert template_set_digest([3, 1, 2, 2]) == template_set_digest([1, 2, 3])
    assert template_set_digest([1, 2]) != template_set_digest([1, 2, 3])
