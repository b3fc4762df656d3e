"""Session data for the next-event models: DeepLog's session files, HDFS block labels, block grouping.

DeepLog's files (`deeplog_train`, `deeplog_test_*`) hold one session per line as space-separated
event numbers 1..29 (E1..E29); the event number itself is the template id. `abnormal_blocks.csv`
lines are `<block id>,<event numbers>`; a block not listed there is normal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from pipeline.errors import DataError

Session = tuple[int, ...]


def parse_session_line(line: str, where: str = "session line") -> Session:
    """One session from `1 2 3` or `<id>,1 2 3`."""
    events = line.split(",", 1)[1] if "," in line else line
    try:
        return tuple(int(tok) for tok in events.split())
    except ValueError as exc:
        raise DataError(
            f"reading sessions: {where}: expected space-separated event numbers, got {line[:80]!r}; "
            f"check that the file is in the deeplog_* format"
        ) from exc


def read_session_file(path: Path) -> list[Session]:
    """All non-empty sessions of a deeplog_* (or `<id>,<events>`) file, in file order."""
    sessions: list[Session] = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                session = parse_session_line(line, f"{path}:{number}")
                if session:
                    sessions.append(session)
    return sessions


def read_block_labels(path: Path) -> frozenset[str]:
    """Block ids listed in `abnormal_blocks.csv` (the anomalous ones)."""
    with Path(path).open(encoding="utf-8") as fh:
        return frozenset(line.split(",", 1)[0].strip() for line in fh if line.strip())


def group_block_sessions(events: Iterable[tuple[Sequence[str], int]]) -> dict[str, list[int]]:
    """Template ids per block, in log order, from `(session_keys, template_id)` pairs.

    A line naming several blocks (HDFS replication lines can) belongs to each of them once.
    """
    blocks: dict[str, list[int]] = {}
    for keys, template_id in events:
        for key in dict.fromkeys(keys):
            blocks.setdefault(key, []).append(template_id)
    return blocks
