"""Read a topic from its beginning up to the end offsets it had when reading started (confluent-kafka).

Used to train from what the stream already holds (`logad train ... --from-topic`). The reader takes
partitions by assignment under a fresh consumer group and never commits, so it neither joins nor
disturbs the worker's group, and running it twice reads the same records. Records produced while it
reads lie past the snapshot and are not returned, so a busy topic still gives a finite read.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from tqdm import tqdm

from pipeline.adapters.kafka import topic_partitions
from pipeline.errors import InfrastructureError
from pipeline.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicExtent:
    """Per partition: the first offset still held and the end offset (next to be written) at start."""

    topic: str
    start_offsets: dict[int, int]
    end_offsets: dict[int, int]

    @property
    def messages(self) -> int:
        """Records in the snapshot (an upper bound on a compacted topic, whose offsets have gaps)."""
        return sum(self.end_offsets[p] - self.start_offsets[p] for p in self.end_offsets)


class TopicSnapshot:
    """`with TopicSnapshot(settings, topic) as snapshot: for message in snapshot.messages(): ...`."""

    def __init__(self, settings: Settings, topic: str, idle_timeout_s: float = 30.0) -> None:
        self.settings, self.topic, self.idle_timeout_s = settings, topic, idle_timeout_s
        self.group_id = f"logad-snapshot-{uuid.uuid4().hex[:12]}"
        self._client: Consumer | None = None
        self.extent = TopicExtent(topic, {}, {})

    def __enter__(self) -> TopicSnapshot:
        conf: dict[str, Any] = {
            **self.settings.kafka_config(),
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.message.max.bytes": 16 * 1024 * 1024,
        }
        self._client = Consumer(conf)
        try:
            self.extent = self._measure(self._client)
        except BaseException:
            self._client.close()
            self._client = None
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()  # auto commit is off: closing commits nothing
            self._client = None

    def _measure(self, client: Consumer) -> TopicExtent:
        partitions = topic_partitions(client, self.topic, "read topic")
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for partition in partitions:
            low, high = client.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=10)
            if high > low:  # an empty partition has nothing to wait for
                starts[partition], ends[partition] = low, high
        return TopicExtent(self.topic, starts, ends)

    def messages(self, progress: bool = True) -> Iterator[Message]:
        """The snapshot's records, each partition in offset order (partitions interleaved)."""
        client = self._client
        if client is None:
            raise InfrastructureError(f"read topic {self.topic}: use TopicSnapshot as a context manager")
        pending = dict(self.extent.end_offsets)
        if not pending:
            return
        client.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in pending])
        bar = tqdm(
            total=self.extent.messages, desc=f"reading {self.topic}", unit=" msgs", disable=not progress
        )
        last_seen = time.monotonic()
        try:
            while pending:
                msg = client.poll(0.5)
                if msg is None:
                    if time.monotonic() - last_seen > self.idle_timeout_s:
                        self._finish_or_fail(client, pending)
                        last_seen = time.monotonic()
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise InfrastructureError(f"read topic {self.topic}: consumer error {error}")
                partition, offset = msg.partition(), msg.offset()
                end = pending.get(partition)
                if end is None or offset is None or offset >= end:
                    continue  # produced after the snapshot began
                last_seen = time.monotonic()
                bar.update(1)
                yield msg
                if offset >= end - 1:
                    self._done(client, pending, partition)
        finally:
            bar.close()

    def _done(self, client: Consumer, pending: dict[int, int], partition: int) -> None:
        pending.pop(partition, None)
        client.pause([TopicPartition(self.topic, partition)])  # stop fetching what we would skip

    def _finish_or_fail(self, client: Consumer, pending: dict[int, int]) -> None:
        # Offsets that hold no record (transaction markers, compaction) are never delivered: a
        # partition whose position reached its end is complete even without its last offset.
        positions = client.position([TopicPartition(self.topic, p) for p in pending])
        for tp in positions:
            if tp.offset >= 0 and tp.offset >= pending.get(tp.partition, 0):
                self._done(client, pending, tp.partition)
        if pending:
            behind = {tp.partition: (tp.offset, pending[tp.partition]) for tp in positions}
            behind = {p: where for p, where in behind.items() if p in pending}
            raise InfrastructureError(
                f"read topic {self.topic}: nothing arrived for {self.idle_timeout_s:.0f}s with partitions "
                f"still short of their end offsets (partition: (position, end)) {behind}; check the broker"
            )
