"""The detector with operator feedback: marked (window, next) pairs raise no alert and claim nothing."""

from __future__ import annotations

import asyncio

from pipeline.alerts import AlertKind
from pipeline.detection import Detector
from pipeline.feedback import Allowlist, FeedbackGate, feedback_from_alert
from pipeline.scoring import FakeNextEventScorer
from pipeline.sessions import SessionTracker
from tests.unit.test_detection import TEMPLATES, TRANSITIONS, events_of


def gated() -> tuple[Detector, FeedbackGate]:
    gate = FeedbackGate(Allowlist(), lambda model, version: "ts")
    fake = FakeNextEventScorer(TRANSITIONS, k=2, model="lama", version=4)
    # Texts shown as `<template N>`: an alert's window then reads back to exactly its ids (in the
    # worker, ids are hashes of the template texts and read back through them).
    texts = {tid: f"<template {tid}>" for tid in TEMPLATES}
    return Detector(fake, texts, SessionTracker(3, timeout_s=100.0), feedback=gate), gate


def test_a_marked_alert_is_not_raised_again_in_a_new_session() -> None:
    det, gate = gated()
    (first,) = asyncio.run(det.process(events_of("a", [1, 2, 4]))).alerts
    assert first.kind is AlertKind.UNEXPECTED_NEXT_EVENT
    gate.apply(feedback_from_alert(first, 3, "ts"))
    # Same behaviour in a new session: suppressed and counted; a different anomaly still alerts.
    assert asyncio.run(det.process(events_of("b", [1, 2, 4]))).alerts == ()
    assert gate.suppressed == {"unexpected_next_event": 1}
    (other,) = asyncio.run(det.process(events_of("c", [1, 5, 4]))).alerts
    assert other.session_key == "c"


def test_a_suppressed_row_does_not_use_up_the_sessions_alert() -> None:
    det, gate = gated()
    (first,) = asyncio.run(det.process(events_of("a", [1, 2, 4]))).alerts
    gate.apply(feedback_from_alert(first, 3, "ts"))
    # Session b repeats the marked pair, then does something else abnormal: that one still alerts.
    (alert,) = asyncio.run(det.process(events_of("b", [1, 2, 4, 4]))).alerts
    assert (alert.session_key, alert.position) == ("b", 3)


def test_oov_feedback_and_other_models_or_template_sets() -> None:
    det, gate = gated()
    (oov,) = asyncio.run(det.process(events_of("a", [1, 9]))).alerts
    assert oov.kind is AlertKind.OOV_EVENT
    gate.apply(feedback_from_alert(oov, 3, "other-set"))  # marked under another template set
    assert len(asyncio.run(det.process(events_of("b", [1, 9]))).alerts) == 1
    gate.apply(feedback_from_alert(oov, 3, "ts"))
    assert asyncio.run(det.process(events_of("c", [1, 9]))).alerts == ()
    assert gate.suppressed == {"oov_event": 1}
