"""Which `log-events` partition a session lives on: the same everywhere, so one session has one home.

The parse stage sends one message per partition per batch, and the detection stage's session table
is partitioned the same way, so a session's state and its events always meet on one worker.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def partition_for(session_key: str, partitions: int) -> int:
    # crc32 is stable across processes and Python versions (unlike hash()).
    return zlib.crc32(session_key.encode("utf-8")) % partitions


def group_by_partition(items: Iterable[tuple[str, T]], partitions: int) -> dict[int, list[T]]:
    """Group (session key, item) pairs by partition, keeping their order within each partition."""
    groups: dict[int, list[T]] = {}
    for key, item in items:
        groups.setdefault(partition_for(key, partitions), []).append(item)
    return groups
