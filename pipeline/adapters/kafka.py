"""confluent-kafka helpers: admin (topics, readiness), producers and consumers built from Settings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.errors import InfrastructureError
from pipeline.settings import TOPIC_FIELDS, Settings
from pipeline.topic_contracts import json_headers, raw_message_headers

log = logging.getLogger(__name__)

T = TypeVar("T")

COMPACTED = {"cleanup.policy": "compact"}
# The session state log (pipeline.session_state_log) is read from its newest snapshot, which a
# partition rewrites at least every `SnapshotPolicy.max_age_s` (6 h): a week's retention keeps it.
STATE_LOG = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


def admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_config())


def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> None:
    """Block until the cluster answers a metadata request, or raise one clear error."""
    client = admin(settings)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client.list_topics(timeout=2.0)
            return
        except KafkaException as exc:
            last = exc
            time.sleep(0.5)
    raise InfrastructureError(
        f"kafka: no broker answered at {settings.bootstrap_servers} within {timeout_s:.0f}s ({last}); "
        "start one with `logad kafka start` or set LOGAD_BOOTSTRAP_SERVERS"
    )


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


# How each topic of `TOPIC_FIELDS` is laid out: spread over `topic_partitions` or one partition, and
# its topic config.
_LAYOUT: dict[str, tuple[bool, dict[str, str]]] = {
    "raw_logs_topic": (True, {}),
    "log_events_topic": (True, {}),
    "anomalies_topic": (True, {}),
    "templates_topic": (False, COMPACTED),
    "dead_letter_topic": (False, {}),
    # Partitioned like log-events: partition p holds the state of log-events partition p's sessions.
    "session_state_topic": (True, STATE_LOG),
    # One partition: every worker reads all of it (an allowlist is global), keyed by alert id.
    "feedback_topic": (False, COMPACTED),
}


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    specs = []
    for name in TOPIC_FIELDS:
        spread, config = _LAYOUT[name]
        specs.append(TopicSpec(getattr(settings, name), settings.topic_partitions if spread else 1, config))
    return specs


def create_topics(settings: Settings, topics: Iterable[TopicSpec] | None = None) -> list[str]:
    """Create missing topics; existing ones are left as they are. Returns the names created."""
    specs = list(topics if topics is not None else pipeline_topics(settings))
    client = admin(settings)
    existing = set(client.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=settings.topic_replication_factor,
            config={**settings.topic_config(), **s.config},
        )
        for s in specs
        if s.name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in client.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise InfrastructureError(
                    f"kafka: could not create topic {name} with replication factor "
                    f"{settings.topic_replication_factor} (LOGAD_TOPIC_REPLICATION_FACTOR) and "
                    f"{settings.topic_config() or 'the broker default min ISR'} "
                    f"(LOGAD_TOPIC_MIN_INSYNC_REPLICAS): {exc}; the factor cannot exceed the brokers"
                ) from exc
    return created


def producer(settings: Settings, **overrides: Any) -> Producer:
    conf: dict[str, Any] = {
        **settings.kafka_config(),
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "message.max.bytes": 16 * 1024 * 1024,
        "enable.idempotence": True,
    }
    conf.update(overrides)
    return Producer(conf)


def consumer(settings: Settings, group_id: str, topics: list[str], **overrides: Any) -> Consumer:
    conf: dict[str, Any] = {
        **settings.kafka_config(),
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "fetch.message.max.bytes": 16 * 1024 * 1024,
    }
    conf.update(overrides)
    client = Consumer(conf)
    if topics:
        client.subscribe(topics)
    return client


def consume(client: Consumer, timeout_s: float, idle_s: float = 2.0) -> Iterator[Message]:
    """Yield messages until `timeout_s` passes or nothing arrives for `idle_s` after the first one."""
    deadline = time.monotonic() + timeout_s
    last_seen: float | None = None
    while time.monotonic() < deadline:
        msg = client.poll(0.2)
        now = time.monotonic()
        if msg is None:
            if last_seen is not None and now - last_seen > idle_s:
                return
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise InfrastructureError(f"kafka: consumer error: {msg.error()}")
        last_seen = now
        yield msg


def topic_partitions(client: Consumer, topic: str, what: str, timeout_s: float = 10.0) -> list[int]:
    """The partition numbers of `topic`, or an InfrastructureError naming `what` was being done and
    whether the broker or the topic is missing."""
    try:
        metadata = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as exc:
        raise InfrastructureError(
            f"kafka: {what} {topic}: no metadata from the broker ({exc.args[0]}); "
            "check that the broker runs (`logad kafka start`)"
        ) from exc
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise InfrastructureError(
            f"kafka: {what} {topic}: no such topic ({None if metadata is None else metadata.error}); "
            "check the topic name setting and that `logad up` created the pipeline's topics"
        )
    return sorted(metadata.partitions)


def end_offsets(client: Consumer, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Per partition of `topic`, the offset the next record written there will get (high watermark)."""
    from confluent_kafka import TopicPartition

    partitions = topic_partitions(client, topic, "end offsets of", timeout_s)
    try:
        return {
            p: client.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
            for p in partitions
        }
    except KafkaException as exc:
        raise InfrastructureError(
            f"kafka: end offsets of {topic}: {exc.args[0]}; check that the broker runs (`logad kafka start`)"
        ) from exc


def read_to_end(
    settings: Settings, topic: str, starts: dict[int, int] | None = None, timeout_s: float = 120.0
) -> list[Message]:
    """Every record of `topic` from `starts` (default: the beginning) up to its end offsets taken now.

    Not "until nothing arrives for a while": a record written before this call is never missed
    however slow the broker answers, and the call returns as soon as the last one is read.
    """
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    client = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"logad-read-{topic}",
            "enable.auto.commit": False,
            "fetch.message.max.bytes": 16 * 1024 * 1024,
        }
    )
    try:
        ends = end_offsets(client, topic)
        begin = starts or {}
        pending = {p: end for p, end in ends.items() if end > begin.get(p, 0)}
        client.assign([TopicPartition(topic, p, begin.get(p, OFFSET_BEGINNING)) for p in pending])
        records: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"kafka: reading {topic} to its end offsets {ends} timed out after {timeout_s:.0f}s "
                    f"with {len(records)} records; partitions still short: {sorted(pending)}"
                )
            msg = client.poll(0.5)
            if msg is None:
                # Offsets may be missing at the end (compaction, transaction markers): the position
                # then passes the end offset without a record there.
                for tp in client.position([TopicPartition(topic, p) for p in pending]):
                    if tp.offset >= pending[tp.partition]:
                        del pending[tp.partition]
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise InfrastructureError(f"kafka: reading {topic}: {msg.error()}")
            end = pending.get(msg.partition())
            if end is None or msg.offset() >= end:
                continue  # written after this call began: not ours to wait for
            records.append(msg)
            if msg.offset() >= end - 1:  # offsets may be missing (transaction markers): stop at the end
                del pending[msg.partition()]
        return records
    finally:
        client.close()


# Coordinator states a fresh or restarting broker passes through; an offsets request then succeeds
# after a moment (librdkafka does not mark NOT_COORDINATOR retriable).
# A coordinator loading, or a partition of a topic created a moment ago whose leader the broker
# has not settled yet (seen as NOT_LEADER_FOR_PARTITION right after creation): try again shortly.
_COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
    }
)


class _GroupOnlooker:
    """One consumer client with a group's id that never subscribes nor commits: it reads the group's
    committed offsets, and any partition's records, without joining the group. (Not the admin
    client's `list_consumer_group_offsets`: with confluent-kafka 2.16 a process that holds a consumer
    crashes when that call meets a loading coordinator.) Blocking, so call it from a thread, not from
    an event loop; not thread-safe; `close()` when done.
    """

    def __init__(self, settings: Settings, group_id: str, timeout_s: float = 10.0) -> None:
        self.settings, self.group_id, self.timeout_s = settings, group_id, timeout_s
        self._client: Consumer | None = None

    def _consumer(self) -> Consumer:
        if self._client is None:
            self._client = Consumer(
                {
                    **self.settings.kafka_config(),
                    "group.id": self.group_id,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "fetch.message.max.bytes": 16 * 1024 * 1024,
                }
            )
        return self._client

    def _retrying(self, call: Callable[[], T], what: str) -> T:
        """`call()`, retried for `timeout_s` while the broker says try again (a loading coordinator)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return call()
            except KafkaException as exc:
                error = exc.args[0]
                transient = error.code() in _COORDINATOR_NOT_READY or error.retriable()
                if transient and time.monotonic() < deadline:
                    time.sleep(0.25)
                    continue
                raise InfrastructureError(
                    f"kafka: {what} of group {self.group_id}: {error.name()} from "
                    f"{self.settings.bootstrap_servers} ({error.str()})"
                ) from exc

    def partition_count(self, topic: str) -> int:
        """How many partitions `topic` has, from the broker's metadata."""
        return len(self._retrying(lambda: topic_partitions(self._consumer(), topic, "partitions of"), topic))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()  # never subscribed and auto commit off: commits nothing
            self._client = None


class ConsumerLagProbe(_GroupOnlooker):
    """Per-topic lag of a consumer group: end offsets minus the group's committed offsets."""

    def lag(self, topics: list[str]) -> dict[str, int]:
        """Messages not yet committed, per topic; a group that never committed lags fully (from the
        oldest offset still held). Topics that do not exist are left out."""
        return self._retrying(lambda: self._lag_once(topics), f"lag on {topics}")

    def _lag_once(self, topics: list[str]) -> dict[str, int]:
        from confluent_kafka import TopicPartition

        client = self._consumer()
        metadata = client.list_topics(timeout=self.timeout_s).topics
        present = [t for t in topics if t in metadata]
        partitions = [TopicPartition(t, p) for t in present for p in metadata[t].partitions]
        if not partitions:
            return {}
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in client.committed(partitions, timeout=self.timeout_s)
        }
        lag = dict.fromkeys(present, 0)
        for tp in partitions:
            low, high = client.get_watermark_offsets(tp, timeout=self.timeout_s)
            done = committed.get((tp.topic, tp.partition), -1)
            lag[tp.topic] += max(high - (done if done >= 0 else low), 0)
        return lag


class PartitionReader(_GroupOnlooker):
    """A group's committed offset of one partition, and a range of that partition's records, read
    outside the group: for the agents' check for records faust skipped (`pipeline.stream_order`)."""

    def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of the partition; None if it never committed there."""
        from confluent_kafka import TopicPartition

        wanted = [TopicPartition(topic, partition)]
        (tp,) = self._retrying(
            lambda: self._consumer().committed(wanted, timeout=self.timeout_s),
            f"committed offset of {topic}[{partition}]",
        )
        return tp.offset if tp.offset >= 0 else None

    def read(self, topic: str, partition: int, start: int, end: int) -> list[Message]:
        """The records at offsets [start, end) of `topic`[`partition`], in order."""
        from confluent_kafka import TopicPartition

        client = self._consumer()
        client.assign([TopicPartition(topic, partition, start)])
        records: list[Message] = []
        deadline = time.monotonic() + self.timeout_s
        try:
            while True:
                if time.monotonic() > deadline:
                    raise InfrastructureError(
                        f"kafka: reading {topic}[{partition}] offsets {start}..{end - 1} timed out after "
                        f"{self.timeout_s:.0f}s with {len(records)} records"
                    )
                msg = client.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    raise InfrastructureError(f"kafka: reading {topic}[{partition}]: {msg.error()}")
                if msg.offset() < end:
                    records.append(msg)
                if msg.offset() >= end - 1:  # offsets may be missing (retention): stop at the range's end
                    break
        finally:
            client.unassign()
        return records


class RawMessageReader(PartitionReader):
    """Raw messages at given offsets, read outside the group: the `RawMessages` port of alert
    read-back (`pipeline.raw_lines`). Offsets of one partition less than `max_gap` apart are read in
    one range, so the few messages behind a batch of alerts cost a few fetches, not one each."""

    def __init__(self, settings: Settings, group_id: str, timeout_s: float = 3.0, max_gap: int = 16) -> None:
        super().__init__(settings, group_id, timeout_s)
        self.max_gap = max_gap

    def messages(self, keys: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int, int], bytes]:
        wanted = set(keys)
        by_partition: dict[tuple[str, int], list[int]] = {}
        for topic, partition, offset in sorted(wanted):
            by_partition.setdefault((topic, partition), []).append(offset)
        found: dict[tuple[str, int, int], bytes] = {}
        for (topic, partition), offsets in by_partition.items():
            for start, last in _runs(offsets, self.max_gap):
                for msg in self.read(topic, partition, start, last + 1):
                    key = (topic, partition, msg.offset())
                    if key in wanted:
                        found[key] = msg.value() or b""
        return found


def _runs(offsets: list[int], max_gap: int) -> list[tuple[int, int]]:
    """Sorted offsets as (first, last) ranges whose neighbours are at most `max_gap` apart."""
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and offset - runs[-1][1] <= max_gap:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return runs


def consumer_lag(settings: Settings, group_id: str, topics: list[str]) -> dict[str, int]:
    """Messages not yet committed by `group_id`, per topic (a group that never committed lags fully)."""
    probe = ConsumerLagProbe(settings, group_id)
    try:
        return probe.lag(topics)
    finally:
        probe.close()


def replay_lines(
    settings: Settings,
    lines: Iterable[bytes],
    topic: str,
    source: str,
    lines_per_message: int = 1,
    lines_per_s: float | None = None,
    on_sent: Any = None,
) -> int:
    """Produce raw lines to `topic` (several per message when asked), optionally paced; returns lines sent.

    Messages carry the `source` header and key, `produced_at` (epoch seconds) for latency tracking and
    a `content-type` (`pipeline.topic_contracts.raw_message_headers`).
    """
    out = producer(settings)
    sent = 0
    started = time.monotonic()
    chunk: list[bytes] = []

    def flush_chunk() -> None:
        nonlocal chunk
        if not chunk:
            return
        headers = raw_message_headers(source, time.time())
        while True:
            try:
                out.produce(topic, key=source.encode(), value=b"\n".join(chunk), headers=headers)
                break
            except BufferError:
                out.poll(0.05)  # the local queue is full: let the broker catch up
        out.poll(0)
        chunk = []

    for line in lines:
        chunk.append(line.rstrip(b"\n"))
        sent += 1
        if len(chunk) >= lines_per_message:
            flush_chunk()
            if on_sent is not None:
                on_sent(lines_per_message)
        if lines_per_s and sent % 1000 == 0:
            ahead = sent / lines_per_s - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    remainder = len(chunk)
    flush_chunk()
    if on_sent is not None and remainder:
        on_sent(remainder)
    if out.flush(60) != 0:
        raise InfrastructureError(f"kafka: {len(out)} messages still unsent to {topic} after 60s")
    return sent


def follow_topic(
    settings: Settings, topic: str, from_beginning: bool, poll_s: float = 0.5
) -> Iterator[Message | None]:
    """Every record of `topic` from its oldest (or from its end offsets now), and then as they arrive.

    Partitions are taken by assignment under a fresh group that never commits, so a viewer neither
    joins nor moves anyone's offsets. Yields None after each empty poll so that the caller can stop
    (or notice a Ctrl-C) between records; runs until the caller closes the generator.
    """
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

    client = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"logad-follow-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.message.max.bytes": 16 * 1024 * 1024,
        }
    )
    try:
        partitions = topic_partitions(client, topic, "follow")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        client.assign([TopicPartition(topic, p, start) for p in partitions])
        while True:
            msg = client.poll(poll_s)
            if msg is None:
                yield None
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise InfrastructureError(f"kafka: follow {topic}: {error}")
                log.warning("kafka: follow %s: %s (retrying)", topic, error)  # transient: librdkafka retries
                continue
            yield msg
    finally:
        client.close()  # auto commit is off: closing commits nothing


class CommittingReader:
    """A group member of `topics` that commits only what it is told to (`logad notify`'s source).

    Auto commit is off: an offset moves only after the caller delivered every record up to it. After a
    rebalance the partition restarts at its committed offset, so a batch whose commit failed is read
    again (by this member or the next owner) rather than lost.
    """

    def __init__(self, settings: Settings, group_id: str, topics: list[str], from_beginning: bool) -> None:
        self.group_id = group_id
        self._client = Consumer(
            {
                **settings.kafka_config(),
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "fetch.message.max.bytes": 16 * 1024 * 1024,
            }
        )
        self._client.subscribe(topics)

    def poll(self, max_records: int, timeout_s: float) -> list[Any]:
        from pipeline.notify import TopicRecord

        records = []
        for msg in self._client.consume(max_records, timeout_s):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise InfrastructureError(f"kafka: consumer of group {self.group_id}: {error}")
                log.warning("kafka: consumer of group %s: %s (retrying)", self.group_id, error)
                continue
            records.append(TopicRecord(msg.topic(), msg.partition(), msg.offset(), msg.value() or b""))
        return records

    def commit(self, records: Sequence[Any]) -> None:
        from confluent_kafka import TopicPartition

        ends: dict[tuple[str, int], int] = {}
        for r in records:
            ends[(r.topic, r.partition)] = max(ends.get((r.topic, r.partition), -1), r.offset + 1)
        offsets = [TopicPartition(topic, partition, end) for (topic, partition), end in ends.items()]
        try:
            self._client.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Lost the partitions meanwhile (a rebalance during long retries): the new owner reads the
            # batch again from the last commit, and its alert ids deduplicate at the receiver.
            log.warning(
                "kafka: commit of %s by group %s failed (%s); those records will be read again",
                offsets, self.group_id, exc.args[0],
            )  # fmt: skip

    def close(self) -> None:
        self._client.close()


def send_keyed(
    settings: Settings, topic: str, records: Sequence[tuple[bytes, bytes]], timeout_s: float = 30.0
) -> int:
    """Produce JSON (key, value) records to `topic` (with the JSON content-type header) and wait until
    the broker acknowledged every one.

    Raises InfrastructureError naming the first delivery error, or how many were left unsent."""
    out = producer(settings)
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in records:
        out.produce(topic, key=key, value=value, headers=json_headers(), on_delivery=delivered)
        out.poll(0)
    left = out.flush(timeout_s)
    if errors or left:
        why = errors[0] if errors else f"{left} records unsent after {timeout_s:.0f}s"
        raise InfrastructureError(
            f"kafka: sending to {topic}: {why}; "
            "check that the broker runs (`logad kafka start`) and the topic exists (`logad up` creates it)"
        )
    return len(records)
