"""Produce and consume on a real Kafka broker: with confluent-kafka, and through a Faust agent."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.adapters.kafka import PartitionReader, TopicSpec, consume, consumer, create_topics, producer
from pipeline.infra.process import free_port
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def test_confluent_produce_consume(kafka_server: Settings, unique: str) -> None:
    topic = f"roundtrip-{unique}"
    assert create_topics(kafka_server, [TopicSpec(topic, 3, {})]) == [topic]
    assert create_topics(kafka_server, [TopicSpec(topic, 3, {})]) == []  # idempotent
    out = producer(kafka_server)
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(500)}
    for key, value in sent.items():
        out.produce(topic, key=key, value=value)
    assert out.flush(30) == 0
    reader = consumer(kafka_server, f"group-{unique}", [topic])
    try:
        received = {m.key(): m.value() for m in consume(reader, timeout_s=30, idle_s=3)}
    finally:
        reader.close()
    assert received == sent


def test_partition_reader_reads_a_range_and_the_groups_commit(kafka_server: Settings, unique: str) -> None:
    """What an agent uses to read back records faust skipped (pipeline.stream_order)."""
    topic, group = f"range-{unique}", f"group-{unique}"
    create_topics(kafka_server, [TopicSpec(topic, 2, {})])
    out = producer(kafka_server)
    for i in range(20):
        out.produce(topic, value=f"v{i}".encode(), partition=1, headers=[("source", b"hdfs")])
    assert out.flush(30) == 0
    reader = PartitionReader(kafka_server, group)
    try:
        assert reader.committed(topic, 1) is None
        records = reader.read(topic, 1, 5, 12)
        assert [(m.offset(), m.value()) for m in records] == [(i, f"v{i}".encode()) for i in range(5, 12)]
        assert records[0].headers() == [("source", b"hdfs")]
        assert [m.offset() for m in reader.read(topic, 1, 18, 20)] == [18, 19]  # reusable, to the end
    finally:
        reader.close()
    member = consumer(kafka_server, group, [topic], **{"enable.auto.commit": False})
    try:
        list(consume(member, timeout_s=30, idle_s=3))
        member.commit(asynchronous=False)
    finally:
        member.close()
    reader = PartitionReader(kafka_server, group)
    try:
        assert reader.committed(topic, 1) == 20
    finally:
        reader.close()


def test_faust_agent_transforms_messages(kafka_server: Settings, unique: str, tmp_path: os.PathLike) -> None:
    source, sink = f"echo-in-{unique}", f"echo-out-{unique}"
    create_topics(kafka_server, [TopicSpec(source, 2, {}), TopicSpec(sink, 2, {})])
    env = {
        **os.environ,
        "LOGAD_BOOTSTRAP_SERVERS": kafka_server.bootstrap_servers,
        "LOGAD_WEB_PORT": str(free_port()),
        "LOGAD_STATE_DIR": str(tmp_path),
        "ECHO_APP_ID": f"echo-{unique}",
        "ECHO_SOURCE": source,
        "ECHO_SINK": sink,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", "tests.support.echo_app", "worker", "-l", "warn"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        out = producer(kafka_server)
        for i in range(200):
            out.produce(source, key=f"k{i}".encode(), value=f"line {i}".encode())
        assert out.flush(30) == 0
        reader = consumer(kafka_server, f"sink-{unique}", [sink])
        try:
            received = {m.key(): m.value() for m in consume(reader, timeout_s=90, idle_s=5)}
        finally:
            reader.close()
    finally:
        worker.terminate()
        try:
            _, err = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, err = worker.communicate()
    assert received == {f"k{i}".encode(): f"LINE {i}".encode() for i in range(200)}, err.decode()[-2000:]
