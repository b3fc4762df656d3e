"""The consumer-lag helper behind the worker's `logad_consumer_lag` gauge, on a real broker (issue 5)."""

from __future__ import annotations

import pytest

from pipeline.adapters.kafka import (
    ConsumerLagProbe,
    TopicSpec,
    consume,
    consumer,
    consumer_lag,
    create_topics,
    producer,
)
from pipeline.settings import Settings

pytestmark = pytest.mark.integration

MESSAGES = 150


def test_lag_counts_uncommitted_messages_per_topic(kafka_server: Settings, unique: str) -> None:
    topic, other, group = f"lag-{unique}", f"lag-other-{unique}", f"group-{unique}"
    create_topics(kafka_server, [TopicSpec(topic, 3, {}), TopicSpec(other, 1, {})])
    out = producer(kafka_server)
    for i in range(MESSAGES):
        out.produce(topic, key=f"k{i}".encode(), value=b"x")
    out.produce(other, value=b"y")
    assert out.flush(30) == 0

    # No consumer has ever committed: the whole topic lags; a missing topic is left out.
    assert consumer_lag(kafka_server, group, [topic, other, f"missing-{unique}"]) == {
        topic: MESSAGES,
        other: 1,
    }

    reader = consumer(kafka_server, group, [topic], **{"enable.auto.commit": False})
    try:
        assert len(list(consume(reader, timeout_s=30, idle_s=3))) == MESSAGES
        reader.commit(asynchronous=False)
    finally:
        reader.close()
    probe = ConsumerLagProbe(kafka_server, group)
    try:
        assert probe.lag([topic, other]) == {topic: 0, other: 1}
        out.produce(topic, value=b"late")
        assert out.flush(30) == 0
        assert probe.lag([topic]) == {topic: 1}  # the same probe, called again
    finally:
        probe.close()
