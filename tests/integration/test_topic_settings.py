"""Topic replication settings on a real broker: min ISR lands on the topic, an impossible replication
factor is refused with the variable to change."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import ConfigResource

from pipeline.adapters.kafka import TopicSpec, admin, create_topics
from pipeline.errors import InfrastructureError
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def test_min_insync_replicas_is_set_on_created_topics(kafka_server: Settings, unique: str) -> None:
    topic = f"min-isr-{unique}"
    settings = kafka_server.replace(topic_min_insync_replicas=1)

    assert create_topics(settings, [TopicSpec(topic, 1, {"cleanup.policy": "compact"})]) == [topic]

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = admin(settings)  # kept: a dropped client cancels its pending futures
    configs = client.describe_configs([resource])[resource].result(timeout=10)
    assert configs["min.insync.replicas"].value == "1"
    assert not configs["min.insync.replicas"].is_default
    assert configs["cleanup.policy"].value == "compact"


def test_a_replication_factor_above_the_brokers_names_the_variable(
    kafka_server: Settings, unique: str
) -> None:
    settings = kafka_server.replace(topic_replication_factor=2)  # the test broker is alone
    with pytest.raises(InfrastructureError, match="LOGAD_TOPIC_REPLICATION_FACTOR"):
        create_topics(settings, [TopicSpec(f"rf-{unique}", 1, {})])
