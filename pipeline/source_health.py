"""A source whose lines mostly fail its log format: probably the wrong `--source` or window source.

Lines of a source parsed with the wrong format all become `no_header` dead letters, and nothing else
says so. `FormatMismatchTracker` watches the last `window_lines` lines of each source and returns a
warning, at most one per source per `warn_every_s`, when more than `threshold` of them failed the
header. Time comes in as an argument; the agent logs the warning.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FormatMismatch:
    """Most recent lines of `source` did not match `format_name`."""

    source: str
    format_name: str
    failed: int
    lines: int

    @property
    def share(self) -> float:
        return self.failed / self.lines if self.lines else 0.0

    def message(self) -> str:
        return (
            f"source {self.source!r}: {self.failed} of its last {self.lines} lines ({self.share:.0%}) do not "
            f"match the {self.format_name} log format and went to the dead-letter topic as no_header. "
            f"Check that the producer names the right source (the `source` header or key, `logad replay "
            f"--source`), that LOGAD_WINDOW_SOURCES lists it if it is a window source, and that the "
            f"deployed model was trained on this format"
        )


@dataclass
class _Recent:
    """The outcomes of a source's last lines, as (parsed, failed) blocks, oldest first."""

    blocks: deque[list[int]] = field(default_factory=deque)
    parsed: int = 0
    failed: int = 0
    warned_at: float | None = None


class FormatMismatchTracker:
    """Per source, the share of its last `window_lines` lines that failed the format's header."""

    def __init__(
        self,
        window_lines: int = 1000,
        min_lines: int = 100,
        threshold: float = 0.5,
        warn_every_s: float = 60.0,
        max_sources: int = 10_000,
    ) -> None:
        if not 0.0 <= threshold < 1.0 or min_lines < 1 or window_lines < min_lines:
            raise ValueError(
                f"format mismatch tracker: need 0 <= threshold < 1 and 1 <= min_lines <= window_lines, "
                f"got threshold={threshold}, min_lines={min_lines}, window_lines={window_lines}"
            )
        self.window_lines = window_lines
        self.min_lines = min_lines
        self.threshold = threshold
        self.warn_every_s = warn_every_s
        self.max_sources = max_sources
        # Least recently seen first: sources come from producers, so their number is bounded here.
        self._sources: OrderedDict[str, _Recent] = OrderedDict()

    def observe(
        self, source: str, format_name: str, parsed: int, failed: int, now_s: float
    ) -> FormatMismatch | None:
        """Record one message's outcome (`parsed` records, `failed` lines without a header); returns
        a warning when most recent lines failed and this source was not warned about lately."""
        recent = self._sources.pop(source, None) or _Recent()
        self._sources[source] = recent
        if len(self._sources) > self.max_sources:
            self._sources.popitem(last=False)
        if parsed or failed:
            recent.blocks.append([parsed, failed])
            recent.parsed += parsed
            recent.failed += failed
            self._trim(recent)
        lines = recent.parsed + recent.failed
        if lines < self.min_lines or recent.failed <= self.threshold * lines:
            return None
        if recent.warned_at is not None and now_s - recent.warned_at < self.warn_every_s:
            return None
        recent.warned_at = now_s
        return FormatMismatch(source, format_name, recent.failed, lines)

    def _trim(self, recent: _Recent) -> None:
        excess = recent.parsed + recent.failed - self.window_lines
        while excess > 0:
            block = recent.blocks[0]
            # Drop from the oldest block, its parsed and failed lines in proportion (their order
            # within one message is not kept).
            size = block[0] + block[1]
            if size <= excess:
                recent.blocks.popleft()
                recent.parsed -= block[0]
                recent.failed -= block[1]
                excess -= size
                continue
            drop_failed = block[1] * excess // size
            drop_parsed = excess - drop_failed
            if drop_parsed > block[0]:
                drop_parsed, drop_failed = block[0], excess - block[0]
            block[0] -= drop_parsed
            block[1] -= drop_failed
            recent.parsed -= drop_parsed
            recent.failed -= drop_failed
            excess = 0
