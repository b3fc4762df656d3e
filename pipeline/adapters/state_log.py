"""Reading a partition of the session state topic for a restore (blocking: call it from a thread)."""

from __future__ import annotations

from pipeline.adapters.kafka import PartitionReader
from pipeline.session_state_log import PartitionSessions, StateRecord, restore, restore_start

NO_OFFSET = -1


class StateLogReader(PartitionReader):
    """The records a restore needs, read outside the group (never subscribes nor commits)."""

    def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        """(low, high) watermark offsets of the partition: records live at [low, high)."""
        from confluent_kafka import TopicPartition

        tp = TopicPartition(topic, partition)
        return self._retrying(
            lambda: self._consumer().get_watermark_offsets(tp, timeout=self.timeout_s, cached=False),
            f"bounds of {topic}[{partition}]",
        )

    def records(self, topic: str, partition: int, start: int, end: int) -> list[tuple[int, bytes]]:
        """(offset, value) of the records at [start, end)."""
        if end <= start:
            return []
        return [(m.offset(), m.value() or b"") for m in self.read(topic, partition, start, end)]

    def restore(self, topic: str, partition: int) -> tuple[PartitionSessions, int, list[tuple[int, bytes]]]:
        """The partition's sessions as of now, the offset read up to, and the records read (from
        the base named by the last record: `pipeline.session_state_log.restore_start`)."""
        low, high = self.bounds(topic, partition)
        last = None
        if high > low:
            ((_, value),) = self.records(topic, partition, high - 1, high)
            last = StateRecord.decode(value)
        start = restore_start(last, low)
        base = last.base if last is not None else NO_OFFSET
        records = self.records(topic, partition, start, high)
        return restore(partition, records, base), high, records
