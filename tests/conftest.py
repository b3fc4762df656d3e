"""Session fixtures: a real Kafka broker and a real Triton server on free loopback ports.

CI starts from nothing, so these fixtures start the servers themselves (and stop them at the end);
an integration test never skips because a server is missing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
def kafka_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's single-node KRaft broker (a `LocalKafka`; outage tests stop and restart it)."""
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
    try:
        wait_for_broker(Settings(bootstrap_servers=server.bootstrap_servers))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_server(kafka_local: Any) -> Settings:
    """Settings pointing at the session's broker."""
    return Settings(bootstrap_servers=kafka_local.bootstrap_servers, kafka_port=kafka_local.port)


@pytest.fixture(scope="session")
def triton_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's Triton server (a `LocalTriton`) on an initially empty temporary repository."""
    from pipeline.infra.process import free_port
    from pipeline.infra.triton_local import LocalTriton

    server = LocalTriton(
        model_repo=tmp_path_factory.mktemp("model-repo"),
        state_dir=tmp_path_factory.mktemp("triton-state"),
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def triton_server(triton_local: Any) -> Settings:
    """Settings pointing at the session's Triton and its model repository."""
    return Settings(
        model_repo=triton_local.model_repo,
        triton_grpc_url=triton_local.grpc_url,
        triton_http_port=triton_local.http_port,
        triton_grpc_port=triton_local.grpc_port,
        triton_metrics_port=triton_local.metrics_port,
    )


@pytest.fixture
def unique() -> str:
    """A fresh suffix for topic and consumer-group names, so tests never share state."""
    return uuid.uuid4().hex[:10]
