from __future__ import annotations

import random
import re

import pytest

from pipeline.datasets.hdfs_lifecycle import (
    FULL_BLOCK_BYTES,
    NORMAL,
    PARAMETER_ANOMALY_KINDS,
    SLOW_WRITE_FACTOR,
    BlockPlanner,
)
from pipeline.datasets.synthetic import SyntheticConfig, SyntheticHdfs
from pipeline.errors import ConfigError

SIZE = re.compile(r"size (\d+)")
NUMBERS = re.compile(r"\d+")


def plans(kind: str, seed: int) -> tuple[list, list]:
    """The same block planned normal and as `kind` from identically seeded planners."""
    normal = BlockPlanner(random.Random(seed)).plan("blk_1", 0, NORMAL)
    other = BlockPlanner(random.Random(seed)).plan("blk_1", 0, kind)
    return normal, other


@pytest.mark.parametrize("seed", range(5))
def test_slow_write_keeps_the_events_and_stretches_the_write(seed: int) -> None:
    normal, slow = plans("slow_write", seed)
    assert [s[1:4] for s in slow] == [s[1:4] for s in normal]
    assert [s[4] for s in slow] == [s[4] for s in normal]
    # Lines 4-12 are the write (allocation and 3 receives come first; 3 x 2 responder lines, 3 stored).
    for i, (before, after) in enumerate(zip(normal, slow, strict=True)):
        assert after[0] == pytest.approx(before[0] * (SLOW_WRITE_FACTOR if 4 <= i < 13 else 1.0))


@pytest.mark.parametrize("seed", range(5))
def test_abnormal_size_keeps_the_events_and_changes_only_the_size(seed: int) -> None:
    normal, odd = plans("abnormal_size", seed)
    # Same lines with every number but the size equal: the event sequence is a normal block's.
    assert [SIZE.sub("size N", s[4]) for s in odd] == [SIZE.sub("size N", s[4]) for s in normal]
    sizes = {int(m) for s in odd for m in SIZE.findall(s[4])}
    assert len(sizes) == 1 and 4 * FULL_BLOCK_BYTES <= sizes.pop() <= 64 * FULL_BLOCK_BYTES


def test_parameter_kinds_are_opt_in_and_labelled() -> None:
    assert set(SyntheticConfig().anomaly_kinds).isdisjoint(PARAMETER_ANOMALY_KINDS)
    run = SyntheticHdfs(SyntheticConfig(lines=3000, anomaly_rate=0.5, anomaly_kinds=PARAMETER_ANOMALY_KINDS))
    lines = list(run)
    assert lines and set(run.labels.values()) == set(PARAMETER_ANOMALY_KINDS)
    with pytest.raises(ConfigError):
        SyntheticConfig(anomaly_kinds=("slower",))
