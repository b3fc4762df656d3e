"""The detector's clock: the time the raw records were produced (ingest time), not the wall clock.

Sessions close after `session_timeout_s` of inactivity. Measured on the wall clock, a backlog (Triton
down for a while, a worker restarted after a crash, a broker restart) would drain with stretched
gaps, and sessions whose next events wait in the backlog would close early and be judged truncated.
Measured on ingest time, a backlog drains with the session boundaries it would have had without the
delay. Idle partitions still move on: each worker's periodic tick carries the marks of the raw
partitions it holds (`IngestWatermark.values`), and the clock is the lowest of all (`RawWatermarks`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class IngestWatermark:
    """How far this worker has read each raw partition it holds, in ingest time.

    Per partition: the newest record's timestamp; the wall clock only once that partition is caught
    up (nothing waiting) and no record has arrived for `idle_after_s`. Without the lag condition, a
    consumer that fetched nothing for a while because the broker was down would jump the clock past
    its own backlog.
    """

    def __init__(self, idle_after_s: float = 5.0) -> None:
        self.idle_after_s = idle_after_s
        self._newest: dict[int, float] = {}
        self._seen_at: dict[int, float] = {}

    def observe(self, partition: int, record_ts: float | None, now: float) -> None:
        if record_ts is not None:
            self._newest[partition] = max(self._newest.get(partition, record_ts), record_ts)
        self._seen_at[partition] = now

    def values(self, now: float, waiting: Mapping[int, int | None]) -> dict[int, float]:
        """The tick's times for the partitions in `waiting` (those held, with the records waiting on
        each, None when unknown); a partition is left out while nothing is known of it."""
        marks: dict[int, float] = {}
        for partition, behind in waiting.items():
            seen = self._seen_at.get(partition)
            if behind == 0 and (seen is None or now - seen >= self.idle_after_s):
                marks[partition] = now
            elif partition in self._newest:
                marks[partition] = self._newest[partition]
        return marks


class RawWatermarks:
    """The detector's clock: the ingest time up to which every raw partition has been parsed.

    Events advance their raw partition's mark; ticks carry the marks of the partitions their worker
    holds and how many raw partitions there are. The clock is the lowest mark, None until every
    partition has one: a worker that fetched nothing yet, or that died with a backlog, holds the
    clock back instead of letting another worker's idle partitions close sessions whose next events
    are still in that backlog.
    """

    def __init__(self) -> None:
        self._marks: dict[int, float] = {}
        self._partitions = 0

    def observe(self, partition: int, ts: float | None) -> None:
        if ts is not None and ts > self._marks.get(partition, float("-inf")):
            self._marks[partition] = ts

    def observe_many(self, partitions: np.ndarray, timestamps: np.ndarray) -> None:
        """`observe` for columns of (raw partition, ingest time); NaN times are none."""
        known = ~np.isnan(timestamps)
        if not known.any():
            return
        partitions, timestamps = partitions[known], timestamps[known]
        for partition in np.unique(partitions).tolist():
            self.observe(int(partition), float(timestamps[partitions == partition].max()))

    def observe_tick(self, marks: Mapping[int, float], partitions: int) -> None:
        self._partitions = max(self._partitions, partitions)
        for partition, ts in marks.items():
            self.observe(partition, ts)

    def now(self) -> float | None:
        lowest: float | None = None
        for partition in range(self._partitions):
            mark = self._marks.get(partition)
            if mark is None:
                return None
            lowest = mark if lowest is None else min(lowest, mark)
        return lowest
