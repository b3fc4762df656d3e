"""One pipeline run in an integration test: its own topics and consumer group, replays, and checks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

from pipeline.adapters.kafka import create_topics, pipeline_topics, read_to_end, replay_lines
from pipeline.alerts import Alert, AlertKind, decode_alert
from pipeline.demo import block_metrics
from pipeline.offline import OfflineResult, detect_offline
from pipeline.settings import Settings


def run_settings(
    kafka: Settings, triton: Settings, unique: str, state_dir: Path, **changes: object
) -> Settings:
    """Settings of a run on fresh topics and a fresh group, scoring with DeepLog on Triton."""
    settings = (
        kafka.isolated_run("test", unique)
        .replace(
            model_repo=triton.model_repo,
            triton_grpc_url=triton.triton_grpc_url,
            detection_model="deeplog",
            inference_backend="triton",
            session_timeout_s=10.0,
            state_dir=state_dir,
        )
        .replace(**changes)
    )
    create_topics(settings, pipeline_topics(settings))
    return settings


def topic_values(settings: Settings, topic: str) -> list[bytes]:
    """Every record of `topic` up to its end offsets now (call it after `Worker.wait_drained`)."""
    return [m.value() for m in read_to_end(settings, topic)]


def alerts_of(settings: Settings) -> list[Alert]:
    return [decode_alert(v) for v in topic_values(settings, settings.anomalies_topic)]


class BackgroundReplay(threading.Thread):
    """`replay_lines` in a thread, paced, so a test can break things while lines flow."""

    def __init__(self, settings: Settings, lines: Sequence[str], source: str, lines_per_s: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.lines, self.source, self.rate = settings, lines, source, lines_per_s
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.sent = replay_lines(
                self.settings,
                (line.encode() for line in self.lines),
                self.settings.raw_logs_topic,
                self.source,
                lines_per_message=100,
                lines_per_s=self.rate,
            )
        except BaseException as exc:  # reported by finish(), in the test's thread
            self.error = exc

    def finish(self, timeout_s: float = 300.0) -> int:
        self.join(timeout_s)
        if self.is_alive():
            raise AssertionError(f"replay did not finish within {timeout_s}s")
        if self.error is not None:
            raise AssertionError(f"replay failed: {self.error!r}") from self.error
        return self.sent


def offline_result(lines: Sequence[str], triton: Settings, version: int, source: str) -> OfflineResult:
    return asyncio.run(detect_offline(lines, triton.model_repo, "deeplog", version, source))


def assert_matches_offline(
    alerts: Sequence[Alert], offline: OfflineResult, anomalous: frozenset[str], version: int | set[int]
) -> dict[str, dict[str, float]]:
    """Nothing lost and nothing applied twice, judged against offline detection of the same version.

    - duplicates only under the same alert id (one id per session and cause);
    - every session offline flags is alerted, and precision and recall agree within 0.01;
    - an alert raised by an event names the same position in its session as offline: a lost session
      state or an event applied twice would shift it.
    """
    assert alerts, "no alerts at all"
    assert {a.model_version for a in alerts} <= (version if isinstance(version, set) else {version})
    assert len({a.alert_id for a in alerts}) == len({(a.session_key, a.kind) for a in alerts})
    streamed = {a.session_key for a in alerts}
    assert offline.flagged_sessions <= streamed, sorted(offline.flagged_sessions - streamed)[:10]
    blocks = sorted(offline.sessions)
    online_scores = block_metrics(streamed, anomalous, blocks)
    offline_scores = block_metrics(set(offline.flagged_sessions), anomalous, blocks)
    assert abs(online_scores["precision"] - offline_scores["precision"]) <= 0.01, (
        online_scores,
        offline_scores,
    )
    assert abs(online_scores["recall"] - offline_scores["recall"]) <= 0.01, (online_scores, offline_scores)
    by_event = (AlertKind.UNEXPECTED_NEXT_EVENT, AlertKind.OOV_EVENT)
    expected = {(a.session_key, a.kind): a.position for a in offline.alerts if a.kind in by_event}
    shifted = [
        (a.session_key, a.kind.value, a.position, expected[(a.session_key, a.kind)])
        for a in alerts
        if (a.session_key, a.kind) in expected and a.position != expected[(a.session_key, a.kind)]
    ]
    assert not shifted, (
        f"alerts at other positions than offline (session, kind, streamed, offline): {shifted[:10]}"
    )
    return {"streaming": online_scores, "offline": offline_scores}
