"""BGL (Blue Gene/L) sample logs: alert-labelled lines without session ids, windowed by time.

A line reads `<alert or -> <unix ts> <date> <node> <time> <node> <type> <component> <level> <content>`.
The first field is `-` for a normal line or the alert category (KERNDTLB, APPSEV, ...).

Templates come from the shared miner (`pipeline.templates.TemplateMiner`): learned on training lines,
then frozen, and later lines matched against the frozen set (an unknown line is OOV with the template
it would have had), exactly as the streaming parser does. BGL adds one masking rule (node names such
as `R02-M1-N0-C:J12-U11`) and uses loghub's Drain threshold for BGL (0.5).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import DataError
from pipeline.templates import DrainConfig, MaskingConfig, MaskingRule, MinerMode, TemplateMiner
from pipeline.time_windows import NORMAL, TimedEvent, Window, WindowSpec, time_windows

log = logging.getLogger(__name__)

BGL_FILES = ("bgl/BGL_2k.log", "bgl/BGL_4k.log", "bgl/BGL_6k.log", "bgl/BGL_8k.log", "bgl/BGL_10k.log")
_HEADER_FIELDS = 9
NODE = MaskingRule("NODE", r"R\d\d-M\d-N[0-9A-F]+(-[A-Z]:J\d\d-U\d\d)?")


def bgl_drain_config() -> DrainConfig:
    """The shared masking rules plus BGL node names (first, before numbers eat their digits)."""
    rules = (NODE, *MaskingConfig().rules)
    return DrainConfig(depth=4, sim_th=0.5, masking=MaskingConfig(rules=rules, token_local=True))


@dataclass(frozen=True)
class BglRecord:
    """One BGL line: alert category (None when normal), epoch seconds, and the message content."""

    alert: str | None
    timestamp_s: float
    node: str
    component: str
    level: str
    content: str
    raw: str


def parse_bgl_line(line: str) -> BglRecord:
    """Split one raw BGL line; raise DataError naming the line when it lacks the header fields."""
    parts = line.rstrip("\n").split(maxsplit=_HEADER_FIELDS)
    if len(parts) < _HEADER_FIELDS:
        raise DataError(f"BGL parse: expected {_HEADER_FIELDS}+ space-separated fields, got {line[:120]!r}")
    try:
        timestamp_s = float(parts[1])
    except ValueError as exc:
        raise DataError(f"BGL parse: second field should be a Unix timestamp, got {parts[1]!r}") from exc
    return BglRecord(
        alert=None if parts[0] == "-" else parts[0],
        timestamp_s=timestamp_s,
        node=parts[3],
        component=parts[7],
        level=parts[8],
        content=parts[9] if len(parts) > _HEADER_FIELDS else "",
        raw=line.rstrip("\n"),
    )


def read_bgl(path: Path) -> list[BglRecord]:
    """Every non-blank line of a BGL file, in file order."""
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        return [parse_bgl_line(line) for line in fh if line.strip()]


class BglTemplater:
    """The shared miner for BGL: `learn` on training lines, then `match` against the frozen templates.

    The component is prefixed to the content so that equal messages of different components (KERNEL
    vs APP) stay different templates.
    """

    def __init__(self, config: DrainConfig | None = None) -> None:
        self._miner = TemplateMiner(config or bgl_drain_config(), MinerMode.LEARN)

    @staticmethod
    def text(record: BglRecord) -> str:
        return f"{record.component} {record.content}"

    def save_state(self) -> bytes:
        """The frozen miner's state: the `templates.json` the streaming parser loads."""
        return self._miner.save_state()

    def templates(self) -> dict[int, str]:
        return self._miner.templates()

    def learn(self, records: Iterable[BglRecord]) -> None:
        """Mine templates from training lines and freeze the set."""
        for record in records:
            self._miner.learn(self.text(record))
        self._miner.freeze()
        log.info("BGL templates: %d learned", len(self._miner.templates()))

    def template_id(self, record: BglRecord) -> int:
        """Template id of a line against the frozen set (OOV lines: id of their would-be template)."""
        if self._miner.mode is MinerMode.LEARN:
            self._miner.freeze()
        return self._miner.match(self.text(record)).template_id


def bgl_events(records: Sequence[BglRecord], templater: BglTemplater) -> list[TimedEvent]:
    """Timed events (template id + alert) of records, matched against the templater's frozen set."""
    return [TimedEvent(r.timestamp_s, templater.template_id(r), r.alert) for r in records]


def learn_windows(
    record_lists: Sequence[Sequence[BglRecord]], spec: WindowSpec
) -> tuple[BglTemplater, list[Window]]:
    """Templates learned on every line, then windows cut per list (each list one file).

    The files are independent samples, so a window never mixes two of them.
    """
    templater = BglTemplater()
    templater.learn(r for records in record_lists for r in records)
    windows = [w for records in record_lists for w in time_windows(bgl_events(records, templater), spec)]
    return templater, windows


def window_classes(
    windows: Iterable[Window], min_windows: int, required: Iterable[str] | None = None
) -> tuple[str, ...]:
    """NORMAL first, then the anomaly labels with `min_windows`+ windows (and in `required`, if given).

    A class with fewer examples cannot be learned (episodes need two); one absent from `required`
    (the test set) could never be scored.
    """
    sizes: dict[str, int] = {}
    for w in windows:
        sizes[w.label] = sizes.get(w.label, 0) + 1
    allowed = None if required is None else set(required)
    kept = sorted(
        c for c, n in sizes.items() if c != NORMAL and n >= min_windows and (allowed is None or c in allowed)
    )
    return (NORMAL, *kept)
