"""The detector's clock: the time the raw records were produced (ingest time), not the wall clock.

Sessions close after `session_timeout_s` of inactivity. Measured on the wall clock, a backlog (Triton
down for a while, a worker restarted after a crash, a broker restart) would drain with stretched
gaps, and sessions whose next events wait in the backlog would close early and be judged truncated.
Measured on ingest time, a backlog drains with the session boundaries it would have had without the
delay. Idle partitions still move on: the leader's periodic tick carries `IngestWatermark.value`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class IngestWatermark:
    """How far this worker has read its input, in ingest time.

    The newest raw record's timestamp; the wall clock only once the input is caught up (no lag) and
    no record has arrived for `idle_after_s`. Without the lag condition, a consumer that fetched
    nothing for a while because the broker was down would jump the clock past its own backlog.
    """

    def __init__(self, idle_after_s: float = 5.0) -> None:
        self.idle_after_s = idle_after_s
        self._newest: float | None = None
        self._seen_at: float | None = None

    def observe(self, record_ts: float | None, now: float) -> None:
        if record_ts is not None:
            self._newest = record_ts if self._newest is None else max(self._newest, record_ts)
        self._seen_at = now

    def value(self, now: float, caught_up: bool) -> float | None:
        """The tick's time; None when unknown (nothing read yet and a backlog waiting)."""
        idle = self._seen_at is None or now - self._seen_at >= self.idle_after_s
        if caught_up and idle:
            return now
        return self._newest


class StreamClock:
    """A monotone clock per partition, advanced by the ingest times of the records it processes."""

    def __init__(self) -> None:
        self._now: dict[int, float] = {}

    def advance(self, partition: int, times: Iterable[float | None]) -> float | None:
        """Move the partition's clock to the newest of `times` (never back); its current value."""
        newest = max((t for t in times if t is not None), default=None)
        current = self._now.get(partition)
        if newest is not None and (current is None or newest > current):
            self._now[partition] = current = newest
        return current


def records_behind(read_through: Mapping[int, int], highwaters: Mapping[int, int | None]) -> int | None:
    """Records waiting on the input partitions: high watermark minus this worker's read position.

    `read_through`: per partition, the offset after the last record handled; `highwaters`: per
    assigned partition, the broker's end offset, None while not known (a partition just assigned):
    then the answer is None too, as nothing says the input is caught up. The worker's own read
    positions, not the group's commits: a commit can lag (or stall: faust does not always commit a
    partition that came back to it after a rebalance) with no record waiting.
    """
    if any(high is None for high in highwaters.values()):
        return None
    return sum(max(0, high - read_through.get(p, 0)) for p, high in highwaters.items() if high is not None)
