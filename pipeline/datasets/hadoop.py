"""Hadoop MapReduce sessions (one per container) with injected failure types.

Each line is `<application/container id>,<space-separated event numbers>`; the numbers index
`Hadoop_templates.csv` and are used directly as template ids (as for DeepLog's HDFS files).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.datasets import data_file
from pipeline.errors import DataError

HADOOP_TRAIN = "hadoop/hadoop_train"
HADOOP_TEST_FILES: dict[str, str] = {
    "normal": "hadoop/hadoop_test_normal",
    "disk_full": "hadoop/hadoop_test_abnormal_disk_full",
    "machine_down": "hadoop/hadoop_test_abnormal_machine_down",
    "network_disconnection": "hadoop/hadoop_test_abnormal_network_disconnection",
}


@dataclass(frozen=True)
class HadoopSession:
    """One container's event numbers in order, with its class label (normal or a failure type)."""

    session_id: str
    events: tuple[int, ...]
    label: str

    def count_map(self) -> dict[int, int]:
        """Template id -> occurrences, the input of `pipeline.tfidf`."""
        return dict(Counter(self.events))


def parse_session(line: str, label: str) -> HadoopSession:
    """Parse `<id>,<n n n ...>`; raise DataError naming the line if it has another shape."""
    session_id, sep, rest = line.strip().partition(",")
    if not sep or not session_id:
        raise DataError(f"hadoop parse: expected '<container id>,<event numbers>', got {line[:120]!r}")
    try:
        events = tuple(int(tok) for tok in rest.split())
    except ValueError as exc:
        raise DataError(f"hadoop parse: event numbers must be integers, got {rest[:120]!r}") from exc
    if any(e <= 0 for e in events):
        raise DataError(f"hadoop parse: event numbers must be >= 1 (0 is padding), got {rest[:120]!r}")
    return HadoopSession(session_id, events, label)


def read_sessions(path: Path, label: str) -> list[HadoopSession]:
    """All sessions of one file, labelled `label`, in file order."""
    with Path(path).open(encoding="utf-8") as fh:
        return [parse_session(line, label) for line in fh if line.strip()]


def load_hadoop(data_dir: Path, files: dict[str, str] | None = None) -> dict[str, list[HadoopSession]]:
    """Sessions per class label from `files` (label -> path; default: the four test files)."""
    files = HADOOP_TEST_FILES if files is None else files
    return {label: read_sessions(data_file(data_dir, rel), label) for label, rel in files.items()}
