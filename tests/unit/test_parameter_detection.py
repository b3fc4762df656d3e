from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from pipeline.alerts import AlertKind, alert_id
from pipeline.detection import Detector
from pipeline.parameter_detection import KeyHistory, ParameterAnomaly, ParameterDetector
from pipeline.parameter_features import ELAPSED, FeatureSchema, KeyFeatures
from pipeline.parameter_scoring import ParameterBatch, ParameterModelInfo, ParameterScores
from pipeline.scoring import FakeNextEventScorer
from pipeline.sessions import SessionTracker

WRITE, OTHER = 5, 6
TEXT = "write <*> of size <*>"
LIMIT = 100.0


@dataclass(frozen=True)
class Ev:
    session_key: str
    template_id: int
    timestamp: float | None
    params: tuple[str, ...] = ()
    template: str = ""
    source: str = "hdfs"
    oov: bool = False


def write(key: str, ts: float, size: int) -> Ev:
    return Ev(key, WRITE, ts, ("blk", str(size)), TEXT)


class FakeParameterScorer:
    """Anomalous when the size (feature 1) exceeds LIMIT; records every batch it scores."""

    def __init__(self, window_size: int = 2, version: int = 3) -> None:
        self.window_size, self.version = window_size, version
        self.schema = FeatureSchema({WRITE: KeyFeatures(WRITE, 2, (ELAPSED, 1))})
        self.batches: list[ParameterBatch] = []

    async def current(self) -> ParameterModelInfo:
        return ParameterModelInfo("deeplog_params", self.version, self.window_size, self.schema)

    async def score(self, batch: ParameterBatch) -> ParameterScores:
        self.batches.append(batch)
        size = batch.observed[:, 1:2]
        rows = len(batch)
        return ParameterScores(
            error=size.astype(np.float32),
            threshold=np.full((rows, 1), LIMIT, np.float32),
            anomalous=size > LIMIT,
            expected_low=np.zeros((rows, 2), np.float32),
            expected_high=np.tile(np.array([[3.0, LIMIT]], np.float32), (rows, 1)),
            model="deeplog_params",
            version=self.version,
        )


def detector(scorer: FakeParameterScorer) -> tuple[Detector, FakeNextEventScorer]:
    # Every sequence is normal for the next-event model: only parameter alerts can appear.
    next_event = FakeNextEventScorer({0: [WRITE, OTHER], WRITE: [WRITE, OTHER], OTHER: [WRITE, OTHER]})
    store = SessionTracker(window_size=3, timeout_s=1000.0)
    return Detector(next_event, {WRITE: TEXT}, store, parameters=ParameterDetector(scorer)), next_event


def test_one_parameter_alert_per_session_and_one_call_per_batch() -> None:
    scorer = FakeParameterScorer()
    det, next_event = detector(scorer)
    batch = [
        write("warm", 0.0, 10),  # the key's first h vectors only fill its history
        write("warm", 1.0, 10),
        write("a", 2.0, 10),
        write("b", 2.0, 20),
        write("a", 3.0, 500),  # abnormal
        Ev("a", OTHER, 4.0),  # no model for this key
        write("a", 5.0, 600),  # abnormal again: same session, no second alert
        write("b", 6.0, 700),  # abnormal
        write("c", 6.0, 30),
    ]
    result = asyncio.run(det.process(batch))
    assert len(scorer.batches) == 1 and len(scorer.batches[0]) == 6 and next_event.calls == [len(batch)]
    assert [(a.session_key, a.kind) for a in result.alerts] == [
        ("a", AlertKind.PARAMETER_VALUE),
        ("b", AlertKind.PARAMETER_VALUE),
    ]
    alert = result.alerts[0]
    assert alert.alert_id == alert_id("hdfs", "a", AlertKind.PARAMETER_VALUE)
    assert (alert.model, alert.model_version, alert.position) == ("deeplog_params", 3, 1)
    assert alert.event_template == TEXT and alert.event_template_id == WRITE
    assert (
        alert.label.startswith("param_1=500 (expected 0..100)")
        and "elapsed_s=1 (expected 0..3)" in alert.label
    )
    assert alert.score == 1.0 - LIMIT / 500.0
    assert (alert.first_timestamp, alert.last_timestamp) == (2.0, 3.0)
    assert alert.window == (TEXT,)

    again = asyncio.run(det.process([write("a", 7.0, 900), write("d", 7.0, 800)]))
    assert [a.session_key for a in again.alerts] == ["d"]


def test_vectors_hold_elapsed_time_from_the_session_and_history_across_sessions() -> None:
    scorer = FakeParameterScorer(window_size=2)
    det, _ = detector(scorer)
    asyncio.run(
        det.process([write("a", 10.0, 1), write("b", 11.0, 2), write("a", 14.5, 3), write("b", 12.0, 4)])
    )
    (batch,) = scorer.batches
    assert batch.observed.tolist() == [[4.5, 3.0], [1.0, 4.0]]  # elapsed since the same session's last event
    assert batch.history.tolist() == [[[0.0, 1.0], [0.0, 2.0]], [[0.0, 2.0], [4.5, 3.0]]]  # the key's last h
    assert batch.template_id.tolist() == [[WRITE], [WRITE]] and batch.version == 3


def test_a_new_model_version_restarts_the_histories() -> None:
    scorer = FakeParameterScorer(window_size=2)
    det, _ = detector(scorer)
    asyncio.run(det.process([write("a", 0.0, 1), write("a", 1.0, 1), write("a", 2.0, 1)]))
    scorer.version = 4
    asyncio.run(det.process([write("b", 0.0, 1), write("b", 1.0, 1), write("b", 2.0, 500)]))
    assert [len(b) for b in scorer.batches] == [1, 1]  # two warm-up events again after the change


def test_parameters_that_do_not_fit_the_key_are_skipped() -> None:
    scorer = FakeParameterScorer(window_size=1)
    params = ParameterDetector(scorer)
    events = [
        write("a", 0.0, 1),
        Ev("a", WRITE, 1.0, ("blk", "big"), TEXT),
        Ev("a", WRITE, 2.0, ("x",), TEXT),
    ]
    assert asyncio.run(params.check(events, [None, 0.0, 1.0])) == []
    assert params.unfit == 2 and scorer.batches == []


def test_key_history_is_bounded_and_waits_for_h_vectors() -> None:
    history = KeyHistory(window_size=2, max_keys=2)
    history.push(1, (1.0,))
    assert history.window(1) is None
    history.push(1, (2.0,))
    history.push(1, (3.0,))
    assert history.window(1) == ((2.0,), (3.0,))
    history.push(2, (0.0,))
    history.push(3, (0.0,))  # a third key pushes out the least recently seen one
    assert len(history) == 2 and history.window(1) is None


def test_explanation_lists_the_most_deviating_feature_first() -> None:
    anomaly = ParameterAnomaly(
        0, WRITE, ("elapsed_s", "param_1"), (40.0, 5.0), (0.0, 0.0), (2.0, 10.0), 9.0, 3.0, "m", 1
    )
    assert anomaly.explanation() == "elapsed_s=40 (expected 0..2), param_1=5 (expected 0..10)"
    assert anomaly.score == 1.0 - 3.0 / 9.0
