"""Session fixtures: a real Kafka broker and a real Triton server on free loopback ports.

CI starts from nothing, so these fixtures start the servers themselves (and stop them at the end);
an integration test never skips because a server is missing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LOGAD_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR} (set LOGAD_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A single-node KRaft broker for the whole test session; yields Settings pointing at it."""
    from pipeline.adapters.kafka import wait_for_broker
    from pipeline.infra.kafka_local import LocalKafka, default_cache_dir
    from pipeline.infra.process import free_port

    server = LocalKafka(
        state_dir=tmp_path_factory.mktemp("kafka-state"),
        port=free_port(),
        controller_port=free_port(),
        partitions=4,
        cache_dir=default_cache_dir(),
    )
    server.start()
    settings = Settings(bootstrap_servers=server.bootstrap_servers, kafka_port=server.port)
    try:
        wait_for_broker(settings)
        yield settings
    finally:
        server.stop()


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A Triton server on an (initially empty) temporary model repository."""
    from pipeline.infra.process import free_port
    from pipeline.infra.triton_local import LocalTriton

    repo = tmp_path_factory.mktemp("model-repo")
    server = LocalTriton(
        model_repo=repo,
        state_dir=tmp_path_factory.mktemp("triton-state"),
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
    )
    server.start()
    try:
        yield Settings(
            model_repo=repo,
            triton_grpc_url=server.grpc_url,
            triton_http_port=server.http_port,
            triton_grpc_port=server.grpc_port,
            triton_metrics_port=server.metrics_port,
        )
    finally:
        server.stop()


@pytest.fixture
def unique() -> str:
    """A fresh suffix for topic and consumer-group names, so tests never share state."""
    return uuid.uuid4().hex[:10]
