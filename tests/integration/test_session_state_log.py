"""The session state log on a real broker: restore reads from the newest snapshot to the end."""

from __future__ import annotations

import pytest

from pipeline.adapters.kafka import STATE_LOG, TopicSpec, create_topics, producer
from pipeline.adapters.state_log import StateLogReader
from pipeline.session_state_log import PartitionSessions, SnapshotPolicy, open_record
from pipeline.settings import Settings
from tests.unit.test_session_state_log import Writer, random_messages

pytestmark = pytest.mark.integration


class KafkaLog:
    """`tests.unit.test_session_state_log.Log`'s `append` on one partition of a real topic."""

    def __init__(self, settings: Settings, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition
        self.out = producer(settings)

    def append(self, value: bytes) -> int:
        offsets: list[int] = []
        self.out.produce(
            self.topic,
            value=value,
            partition=self.partition,
            on_delivery=lambda e, m: offsets.append(m.offset()),
        )
        assert self.out.flush(30) == 0 and len(offsets) == 1
        return offsets[0]


def test_restore_reads_from_the_newest_snapshot_and_equals_the_live_state(
    kafka_server: Settings, unique: str
) -> None:
    topic = f"state-{unique}"
    create_topics(kafka_server, [TopicSpec(topic, 2, STATE_LOG)])
    reader = StateLogReader(kafka_server, f"group-{unique}", timeout_s=30.0)
    try:
        empty, high, records = reader.restore(topic, 1)
        assert (len(empty), high, records) == (0, 0, [])
        log = KafkaLog(kafka_server, topic, 1)
        log.append(open_record(empty))
        writer = Writer(log, empty, SnapshotPolicy(growth=1.0, min_bytes=6_000), 2048)  # type: ignore[arg-type]
        for offset, events in enumerate(random_messages(4, 150)):
            writer.message(offset, events, float(offset), timeout_s=40.0)
        live: PartitionSessions = writer.part
        assert live.base > 0
        restored, high, records = reader.restore(topic, 1)
        assert records[0][0] > 0  # started at a snapshot, not at the first record
        assert restored.states == live.states and restored.covers == 149
        assert restored.generation == live.generation + 1
    finally:
        reader.close()
