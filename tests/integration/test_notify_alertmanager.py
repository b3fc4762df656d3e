"""`logad notify` against a real Alertmanager (Debian's `prometheus-alertmanager`, started here on a
free port with a temporary config and storage): alerts on a topic of the session broker end up in
`GET /api/v2/alerts` with their labels and annotations, and a repeated alert id is one alert."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.adapters.kafka import TopicSpec, consumer_lag, create_topics, producer
from pipeline.alerts import AlertKind, encode_alert
from pipeline.infra.process import free_port, wait_until
from pipeline.settings import Settings
from tests.unit.test_alerts import make_alert

pytestmark = pytest.mark.integration

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
ROOT = Path(__file__).resolve().parents[2]
# Notifications are not under test: one receiver that sends nowhere, groups held back for an hour.
CONFIG = """\
route:
  receiver: nowhere
  group_wait: 1h
receivers:
  - name: nowhere
"""


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of an Alertmanager of this module's own (no clustering, state in a temp folder)."""
    assert ALERTMANAGER.exists(), "install Debian's prometheus-alertmanager (`make test` does)"
    home = tmp_path_factory.mktemp("alertmanager")
    (home / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    log = (home / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            str(ALERTMANAGER),
            f"--config.file={home / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        what = f"alertmanager on port {port} (log {home / 'alertmanager.log'})"
        wait_until(lambda: _ready(url), 20.0, what)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_notify_posts_alerts_to_alertmanager_and_repeats_deduplicate(
    kafka_server: Settings, alertmanager: str, unique: str
) -> None:
    settings = kafka_server.replace(anomalies_topic=f"anomalies-{unique}")
    create_topics(settings, [TopicSpec(settings.anomalies_topic, 2, {})])
    alerts = [make_alert(session=f"blk_{unique}_{i}") for i in range(3)]
    alerts.append(make_alert(AlertKind.OOV_EVENT, session=f"blk_{unique}_0"))
    repeat = dataclasses.replace(alerts[0], model_version=9)  # a worker re-sent it after a restart
    out = producer(settings)
    for alert in [*alerts, repeat]:
        out.produce(settings.anomalies_topic, key=alert.kafka_key(), value=encode_alert(alert))
    assert out.flush(30) == 0

    group = f"notify-{unique}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOGAD_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    command = [
        sys.executable, "-m", "pipeline.cli", "notify", "--alertmanager", alertmanager,
        "--group", group, "--from-beginning",
    ]  # fmt: skip
    notify = subprocess.Popen(
        command,
        env={**env, "LOGAD_ANOMALIES_TOPIC": settings.anomalies_topic},
        stderr=subprocess.PIPE,
        text=True,
    )
    query = f"{alertmanager}/api/v2/alerts?filter=" + urllib.request.quote('alertname="LogAnomaly"')
    topic = settings.anomalies_topic
    try:
        wait_until(
            lambda: consumer_lag(settings, group, [topic]).get(topic) == 0,
            30.0,
            "notify committing past every alert",
        )
    finally:
        notify.send_signal(signal.SIGTERM)
        _, err = notify.communicate(timeout=20)
    assert notify.returncode == 0, err
    assert "5 alerts delivered" in err

    listed = _get_json(query)
    held = {a["labels"]["alert_id"]: a for a in listed}
    # Five posted, four held: the repeat carried alerts[0]'s id and updated that alert.
    assert len(listed) == 4
    assert set(held) == {a.alert_id for a in alerts}
    first = held[alerts[0].alert_id]
    assert first["labels"]["kind"] == "unexpected_next_event"
    assert first["annotations"]["session"] == alerts[0].session_key
    assert first["annotations"]["model"] == "lama"
    # The two sends of alerts[0] went out in whatever order their partitions gave; either version is
    # the one held, and there is exactly one.
    assert first["annotations"]["model_version"] in {"3", "9"}
    assert first["annotations"]["expected"] == "0.500 Receiving block <*> src: <*> dest: <*>"
    assert first["status"]["state"] == "active"
    assert held[alerts[3].alert_id]["labels"]["kind"] == "oov_event"
