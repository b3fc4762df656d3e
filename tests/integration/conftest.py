"""Fixtures shared by the integration tests: HDFS_100k with its labels, and a DeepLog version on Triton."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import Settings


@pytest.fixture(scope="session")
def hdfs(data_dir: Path) -> tuple[list[str], frozenset[str]]:
    from pipeline.datasets.loghub import hdfs_lines, read_abnormal_blocks

    return hdfs_lines(data_dir), read_abnormal_blocks(data_dir / "hdfs" / "abnormal_blocks.csv")


@pytest.fixture(scope="session")
def deployed(triton_server: Settings, hdfs: tuple[list[str], frozenset[str]]) -> int:
    """A DeepLog version trained on 80% of the normal blocks, published and loaded into Triton."""
    from pipeline.adapters.triton import load_model
    from pipeline.formats import HDFS
    from pipeline.training.next_event import TrainConfig
    from pipeline.training.raw_logs import publish_trained, train_from_raw_lines

    lines, anomalous = hdfs
    trained, mined, train_keys, _ = train_from_raw_lines(
        "deeplog", lines, HDFS, anomalous, TrainConfig.for_model("deeplog", seed=0, epochs=8), progress=False
    )
    published = publish_trained(
        triton_server.model_repo, trained, mined.miner, "hdfs", {"train_blocks": train_keys}
    )
    assert load_model(triton_server.triton_grpc_url, "deeplog") == published.version
    return published.version
