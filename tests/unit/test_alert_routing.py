from __future__ import annotations

import dataclasses
import random

import pytest

from pipeline.alert_routing import (
    ALERT_NAME,
    WEBHOOK_SCHEMA,
    AlertFilter,
    RetryPolicy,
    alertmanager_alert,
    alertmanager_payload,
    webhook_payload,
)
from pipeline.alerts import AlertKind, decode_alert, encode_alert
from pipeline.errors import ConfigError
from tests.unit.test_alerts import make_alert


def test_alertmanager_alert_puts_the_id_in_labels_and_the_rest_in_annotations() -> None:
    alert = make_alert()
    body = alertmanager_alert(alert, generator_url="http://grafana/d/logad")
    assert body["labels"] == {
        "alertname": ALERT_NAME,
        "alert_id": alert.alert_id,
        "kind": "unexpected_next_event",
        "source": "hdfs",
        "severity": "warning",
    }
    notes = body["annotations"]
    assert (notes["model"], notes["model_version"], notes["session"]) == ("lama", "3", alert.session_key)
    assert notes["expected"] == "0.500 Receiving block <*> src: <*> dest: <*>"
    assert notes["event_time"] == "2008-11-09T12:55:18Z"
    assert notes["raw_line"].startswith("raw-logs[2]@4711 line 3: 081109 203518")
    assert notes["where"] == "component=dfs.DataNode level=INFO"
    assert "note" not in notes and "label" not in notes  # empty ones are left out
    assert body["generatorURL"] == "http://grafana/d/logad"
    assert all(isinstance(v, str) and v for v in [*body["labels"].values(), *notes.values()])


def test_a_resent_alert_has_the_same_labels_whatever_else_changed() -> None:
    first = make_alert()
    again = dataclasses.replace(first, model_version=4, score=0.1, note="raw lines timed out")
    assert alertmanager_alert(first)["labels"] == alertmanager_alert(again)["labels"]
    other = make_alert(session="blk_2")
    assert alertmanager_alert(first)["labels"] != alertmanager_alert(other)["labels"]


def test_long_annotations_are_clipped() -> None:
    alert = dataclasses.replace(make_alert(), event_template="x" * 10_000)
    assert len(alertmanager_alert(alert)["annotations"]["event_template"]) == 4000


def test_webhook_payload_carries_the_alerts_as_the_topic_does() -> None:
    alerts = [make_alert(), make_alert(AlertKind.OOV_EVENT)]
    body = webhook_payload(alerts)
    assert body["schema"] == WEBHOOK_SCHEMA
    import orjson

    assert [decode_alert(orjson.dumps(a)) for a in body["alerts"]] == alerts
    assert len(alertmanager_payload(alerts)) == 2


def test_filter_by_kind_and_source() -> None:
    route = AlertFilter.parse(["oov_event"], ["hdfs"])
    assert route.matches(make_alert(AlertKind.OOV_EVENT))
    assert not route.matches(make_alert(AlertKind.UNEXPECTED_NEXT_EVENT))
    assert not route.matches(dataclasses.replace(make_alert(AlertKind.OOV_EVENT), source="bgl"))
    assert AlertFilter().matches(decode_alert(encode_alert(make_alert())))
    with pytest.raises(ConfigError, match="unknown kind 'oops'; use one of unexpected_next_event"):
        AlertFilter.parse(["oops"])


def test_retry_delays_grow_exponentially_to_the_cap_with_jitter_below_the_ceiling() -> None:
    policy = RetryPolicy(initial_delay_s=0.5, max_delay_s=8.0, multiplier=2.0, jitter=0.5)
    assert [policy.ceiling_s(a) for a in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.ceiling_s(10_000) == 8.0  # no overflow after days of retries
    rng = random.Random(0)
    for attempt in range(8):
        delays = [policy.delay_s(attempt, rng) for _ in range(200)]
        ceiling = policy.ceiling_s(attempt)
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant
    assert RetryPolicy(jitter=0.0).delay_s(3, rng) == 4.0


@pytest.mark.parametrize(
    "kwargs", [{"initial_delay_s": 0.0}, {"initial_delay_s": 9, "max_delay_s": 1}, {"jitter": 1.5}]
)
def test_bad_retry_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="retry policy"):
        RetryPolicy(**kwargs)
