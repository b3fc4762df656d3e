"""Feedback in: alerts found by id, record files validated, `logad feedback` without a broker."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.alerts import Alert, AlertKind, RawCoordinates, alert_id, encode_alert
from pipeline.cli import main
from pipeline.errors import DataError, ModelError
from pipeline.feedback import FeedbackRecord, decode_feedback, encode_feedback
from pipeline.feedback_sources import find_alert, read_feedback_file, version_context


def make_alert(session: str = "blk_1", model: str = "deeplog", version: int = 1) -> Alert:
    return Alert(
        alert_id=alert_id("hdfs", session, AlertKind.UNEXPECTED_NEXT_EVENT),
        source="hdfs",
        session_key=session,
        kind=AlertKind.UNEXPECTED_NEXT_EVENT,
        model=model,
        model_version=version,
        score=0.8,
        event_template_id=5,
        event_template="<template 5>",
        expected=(),
        window=("<template 3>", "<template 4>"),
        first_timestamp=None,
        last_timestamp=None,
        position=2,
        raw=RawCoordinates(),
    )


def test_find_alert_by_id_or_prefix_skipping_garbage() -> None:
    one, two = make_alert("blk_1"), make_alert("blk_2")
    values = [b"\xff not json", None, encode_alert(one), b'{"schema": 9}', encode_alert(two)]
    assert find_alert(values, one.alert_id) == one
    assert find_alert(values, two.alert_id[:8]) == two
    assert find_alert(values, "0" * 32) is None
    with pytest.raises(DataError, match="too short"):
        find_alert(values, one.alert_id[:4])


def test_a_prefix_of_two_alerts_is_refused() -> None:
    one = make_alert("blk_1")
    twin = dataclasses.replace(make_alert("blk_3"), alert_id=one.alert_id[:10] + "f" * 22)
    with pytest.raises(DataError, match="starts 2 alert ids"):
        find_alert([encode_alert(one), encode_alert(twin)], one.alert_id[:10])


def _record(alert: str = "a1") -> FeedbackRecord:
    return FeedbackRecord(alert, AlertKind.OOV_EVENT, "lama", 2, "d", (0, 1), 9)


def test_record_files_as_lines_or_array(tmp_path: Path) -> None:
    lines, array = tmp_path / "r.jsonl", tmp_path / "r.json"
    lines.write_bytes(encode_feedback(_record()) + b"\n\n" + encode_feedback(_record("a2")) + b"\n")
    array.write_bytes(orjson.dumps([orjson.loads(encode_feedback(_record()))]))
    assert [r.alert_id for r in read_feedback_file(lines)] == ["a1", "a2"]
    assert read_feedback_file(array) == [_record()]


def test_a_bad_record_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(encode_feedback(_record()) + b"\n{not json\n")
    with pytest.raises(DataError, match=r"r\.jsonl:2: not JSON"):
        read_feedback_file(path)
    obj = orjson.loads(encode_feedback(_record()))
    obj["next_event"] = "nine"
    path.write_bytes(orjson.dumps([obj]))
    with pytest.raises(DataError, match="item 0: feedback record: field 'next_event' must be int"):
        read_feedback_file(path)


def test_version_context_of_a_missing_version(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="version 3 is not in the model repository"):
        version_context(tmp_path, "lama", 3)


class FakeMessage:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """`logad feedback`'s broker calls, faked: alerts to read, records sent, a published version."""
    import pipeline.adapters.kafka as adapter
    import pipeline.feedback_sources as sources

    state: dict[str, Any] = {"alerts": [encode_alert(make_alert())], "sent": []}
    monkeypatch.setattr(
        adapter, "read_to_end", lambda settings, topic, **kw: [FakeMessage(v) for v in state["alerts"]]
    )

    def send(settings: Any, topic: str, records: list[tuple[bytes, bytes]], timeout_s: float = 30.0) -> int:
        state["sent"].extend((topic, key, value) for key, value in records)
        return len(records)

    monkeypatch.setattr(adapter, "send_keyed", send)
    monkeypatch.setattr(
        sources,
        "version_context",
        lambda repo, model, version: sources.VersionContext(model, version, 4, "ts"),
    )
    return state


def test_feedback_by_alert_id_sends_what_the_alert_carried(kafka: dict[str, Any]) -> None:
    alert = make_alert()
    assert main(["feedback", alert.alert_id[:12], "--normal", "--note", "batch job"]) == 0
    [(topic, key, value)] = kafka["sent"]
    record = decode_feedback(value)
    assert topic == "log-feedback" and key == alert.alert_id.encode()
    assert (record.window, record.next_event, record.template_set) == ((0, 0, 3, 4), 5, "ts")
    assert (record.model, record.model_version, record.session_key, record.note) == (
        "deeplog",
        1,
        "blk_1",
        "batch job",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["feedback", "0" * 32, "--normal"], "no alert with id"),
        (["feedback", "0" * 32], "--normal"),
        (["feedback"], "give the ALERT_ID"),
    ],
)
def test_feedback_errors_are_clear(
    kafka: dict[str, Any], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert kafka["sent"] == []


def test_feedback_records_file_is_validated_before_sending(
    kafka: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(encode_feedback(_record()) + b"\n" + encode_feedback(_record("a2")) + b"\n")
    assert main(["feedback", "--records", str(path)]) == 0
    assert [key for _, key, _ in kafka["sent"]] == [b"a1", b"a2"]
    path.write_bytes(encode_feedback(_record("a3")) + b'\n{"schema": 1}\n')
    assert main(["feedback", "--records", str(path)]) == 1
    assert "r.jsonl:2" in capsys.readouterr().err
    assert len(kafka["sent"]) == 2  # nothing of the bad file went out
