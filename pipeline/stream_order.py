"""Every input record handled once and in order, even when the stream framework skips some.

faust-streaming 0.15.3 can drop records right after a rebalance: its recovery resumes the stream
partitions and seeks them to the committed offsets, records fetched meanwhile fill the agents'
queues, then resuming flow control clears those queues, and the consumer goes on after them. The
skipped records are never processed, and the partition's commits stall at the first of them. An
agent therefore checks each record's offset against the next one it expects (`OffsetTracker`) and
reads what was skipped itself before going on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """What to do with a record: `seen` (handled already: skip it), else first handle the records at
    offsets [missing_from, offset) when `missing_from` is set, then this one."""

    seen: bool = False
    missing_from: int | None = None


class OffsetTracker:
    """Per input partition this agent holds, the next offset it must handle.

    A partition the agent has not handled a record of since it was assigned starts at the group's
    committed offset (`start`), which is where the consumer is seeked to; without a commit, the
    first record decides.
    """

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}

    def knows(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._next

    def start(self, topic: str, partition: int, committed: int | None) -> None:
        if committed is not None:
            self._next[(topic, partition)] = committed

    def check(self, topic: str, partition: int, offset: int) -> Verdict:
        expected = self._next.get((topic, partition))
        if expected is None or offset == expected:
            return Verdict()
        if offset < expected:
            return Verdict(seen=True)
        return Verdict(missing_from=expected)

    def handled(self, topic: str, partition: int, offset: int) -> None:
        self._next[(topic, partition)] = offset + 1

    def reset(self) -> None:
        """After a rebalance: every partition starts again from its committed offset."""
        self._next.clear()
