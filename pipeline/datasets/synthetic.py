"""Seeded synthetic HDFS_v1-like logs with labelled anomalies, and replays of a real log with fresh ids.

`SyntheticHdfs` streams raw lines in HDFS_v1's exact format (`081109 203518 143 INFO
dfs.DataNode$DataXceiver: Receiving block blk_... src: /... dest: /...:50010`) for users without the
shared data folder. Each block's lines come from `pipeline.datasets.hdfs_lifecycle` (normal
lifecycle, anomaly kinds); `concurrent_blocks` blocks are in flight at once, so their lines
interleave as in the real log, and a finished block is replaced by a new one. Only the blocks in
flight are held, so memory stays constant however many lines are asked for; the anomalous block ids
(with their kind) collect in `labels` as blocks start.

`repeat_with_fresh_blocks` replays a real log (HDFS_100k) several times, rewriting every block id
consistently per repetition, to build long streams whose labels are still known.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import random
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.datasets.hdfs_lifecycle import ALL_ANOMALY_KINDS, ANOMALY_KINDS, NORMAL, BlockPlanner, Step
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

HDFS_V1_START_S = 1226262918  # 2008-11-09 20:35:18 UTC, the first line of HDFS_v1
BLOCK_PATTERN = re.compile(r"blk_-?\d+")
_MASK64 = (1 << 64) - 1
_GOLDEN64 = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. `lines` is an upper bound: only whole blocks are written (none is cut short,
    unlike the end of HDFS_100k), so the output is shorter by less than one block's lines."""

    lines: int = 100_000
    anomaly_rate: float = 0.03  # share of blocks that are anomalous
    seed: int = 0
    concurrent_blocks: int = 64  # blocks in flight at once: how much their lines interleave
    start_s: int = HDFS_V1_START_S
    anomaly_kinds: tuple[str, ...] = ANOMALY_KINDS  # parameter kinds (`PARAMETER_ANOMALY_KINDS`) opt in
    fresh_block_ids: bool = False  # ids from `block_id_salt`, or a random salt when that is None
    block_id_salt: int | None = None  # None: derived from the seed (unless fresh_block_ids)

    def __post_init__(self) -> None:
        problems = []
        if self.lines < 0:
            problems.append(f"lines must be >= 0, got {self.lines}")
        if not 0.0 <= self.anomaly_rate <= 1.0:
            problems.append(f"anomaly_rate must be in [0, 1], got {self.anomaly_rate}")
        if self.concurrent_blocks < 1:
            problems.append(f"concurrent_blocks must be >= 1, got {self.concurrent_blocks}")
        unknown = [k for k in self.anomaly_kinds if k not in ALL_ANOMALY_KINDS]
        if unknown or not self.anomaly_kinds:
            problems.append(f"anomaly_kinds must be a non-empty subset of {ALL_ANOMALY_KINDS}, got {unknown}")
        if problems:
            raise ConfigError("synthetic log config: " + "; ".join(problems) + "; fix the options")


def mix64(x: int) -> int:
    """SplitMix64's finaliser: a bijection on 64-bit integers that scatters consecutive inputs."""
    x &= _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def block_name(serial: int, salt: int) -> str:
    """The id of a run's `serial`-th block: distinct serials give distinct ids; signed like HDFS's."""
    value = mix64(salt + serial * _GOLDEN64)
    return f"blk_{value - (1 << 64) if value >> 63 else value}"


def hdfs_header_time(epoch_s: int) -> str:
    """`yymmdd HHMMSS` in UTC, HDFS_v1's date and time columns."""
    return time.strftime("%y%m%d %H%M%S", time.gmtime(epoch_s))


class SyntheticHdfs:
    """Iterate for the lines; `labels` (anomalous block id -> kind), `blocks` and `lines_written` fill
    as lines are produced. The same config (without fresh ids) always gives the same lines."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        if config.block_id_salt is not None:
            self.block_id_salt = config.block_id_salt & _MASK64
        elif config.fresh_block_ids:
            # Replays of one seed into a live pipeline must not continue the previous run's sessions.
            self.block_id_salt = secrets.randbits(64)
            log.info(
                "synthetic log: fresh block-id salt %d (pass it as block_id_salt to reproduce)",
                self.block_id_salt,
            )
        else:
            self.block_id_salt = mix64(config.seed ^ 0x5F3759DF)
        self.labels: dict[str, str] = {}
        self.blocks = 0
        self.lines_written = 0

    def __iter__(self) -> Iterator[str]:
        config = self.config
        # Iterating again replays the same run from the start, so the counts start over too.
        self.labels.clear()
        self.blocks = self.lines_written = 0
        rng = random.Random(config.seed)
        planner = BlockPlanner(rng)
        # Heap of (time of the block's next line, tie-break serial, block name, steps, next index).
        heap: list[tuple[float, int, str, list[Step], int]] = []
        pending = 0  # lines planned but not yet written, across the blocks in flight
        opening = True

        def open_block(at_s: float) -> bool:
            nonlocal pending, opening
            kind = rng.choice(config.anomaly_kinds) if rng.random() < config.anomaly_rate else NORMAL
            name = block_name(self.blocks, self.block_id_salt)
            steps = planner.plan(name, self.blocks, kind)
            if self.lines_written + pending + len(steps) > config.lines:
                opening = False  # the next block does not fit: finish the ones in flight and stop
                return False
            heapq.heappush(heap, (at_s + steps[0][0], self.blocks, name, steps, 0))
            pending += len(steps)
            if kind != NORMAL:
                self.labels[name] = kind
            self.blocks += 1
            return True

        for i in range(config.concurrent_blocks):
            if not open_block(config.start_s + i * 0.2):
                break
        second, stamp = -1, ""
        while heap:
            at_s, serial, name, steps, index = heapq.heappop(heap)
            _, pid, level, component, content = steps[index]
            whole = int(at_s)
            if whole != second:
                second, stamp = whole, hdfs_header_time(whole)
            self.lines_written += 1
            pending -= 1
            yield f"{stamp} {pid} {level} {component}: {content}"
            if index + 1 < len(steps):
                heapq.heappush(heap, (at_s + steps[index + 1][0], serial, name, steps, index + 1))
            elif opening:
                open_block(at_s + rng.expovariate(2.0))


def generate_hdfs(config: SyntheticConfig, labels: dict[str, str] | None = None) -> Iterator[str]:
    """Stream synthetic lines; anomalous block ids and their kind are added to `labels` as they start."""
    run = SyntheticHdfs(config)
    if labels is not None:
        run.labels = labels
    return iter(run)


def write_labels(path: Path, labels: dict[str, str]) -> int:
    """Write `<block id>,<kind>` lines (the format of abnormal_blocks.csv); returns how many."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for block, kind in labels.items():
            fh.write(f"{block},{kind}\n")
    return len(labels)


@dataclass(frozen=True)
class FreshBlockIds:
    """The per-repetition block-id mapping of `repeat_with_fresh_blocks`: a keyed hash, no table."""

    seed: int

    def new_id(self, block: str, repetition: int) -> str:
        """The id `block` gets in `repetition` (the same every time it is asked)."""
        key = f"{self.seed}:{repetition}".encode()
        digest = hashlib.blake2b(block.encode(), digest_size=8, key=key).digest()
        value = int.from_bytes(digest, "big") >> 1  # 63 bits, as HDFS's ids
        return f"blk_{-value if digest[-1] & 1 else value}"

    def relabel(self, blocks: Iterable[str], repetitions: int) -> set[str]:
        """Every new id the given (e.g. anomalous) blocks take over `repetitions` repetitions."""
        originals = list(blocks)
        return {self.new_id(b, r) for r in range(repetitions) for b in originals}


def repeat_with_fresh_blocks(
    lines: Sequence[str], repetitions: int, seed: int = 0, shift_time: bool = True
) -> tuple[Iterator[str], FreshBlockIds]:
    """`lines` replayed `repetitions` times with every `blk_` id rewritten per repetition, and the mapping.

    With `shift_time`, each repetition's HDFS timestamps move on by the span of `lines` plus one
    second, so event time keeps increasing across repetitions (session gaps stay as in the original).
    """
    if repetitions < 0:
        raise ConfigError(f"repeat with fresh blocks: repetitions must be >= 0, got {repetitions}")
    mapping = FreshBlockIds(seed)
    return _replay(lines, repetitions, mapping, shift_time), mapping


def _replay(
    lines: Sequence[str], repetitions: int, mapping: FreshBlockIds, shift_time: bool
) -> Iterator[str]:
    span_s = 0
    if shift_time:
        stamps = [s for s in (_header_seconds(line) for line in lines) if s is not None]
        span_s = (max(stamps) - min(stamps) + 1) if stamps else 0
    for repetition in range(repetitions):
        ids: dict[str, str] = {}

        def fresh(match: re.Match[str], rep: int = repetition, table: dict[str, str] = ids) -> str:
            old = match.group(0)
            new = table.get(old)
            if new is None:
                new = table[old] = mapping.new_id(old, rep)
            return new

        shift = repetition * span_s
        stamps_cache: dict[str, str] = {}
        for line in lines:
            line = BLOCK_PATTERN.sub(fresh, line)
            if shift:
                head = line[:13]
                moved = stamps_cache.get(head)
                if moved is None:
                    seconds = _header_seconds(line)
                    moved = stamps_cache[head] = (
                        head if seconds is None else hdfs_header_time(seconds + shift)
                    )
                line = moved + line[13:]
            yield line


def _header_seconds(line: str) -> int | None:
    """Unix seconds of an HDFS line's `yymmdd HHMMSS` header, None when the line has none."""
    head = line[:13]
    if len(head) < 13 or head[6] != " " or not (head[:6] + head[7:]).isdigit():
        return None
    import calendar

    return calendar.timegm(time.strptime(head, "%y%m%d %H%M%S"))
