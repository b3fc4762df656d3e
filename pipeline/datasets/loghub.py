"""Readers for loghub's HDFS sample in the shared data folder, read in place (never copied).

- `hdfs/HDFS_100k.log.gz`: raw lines;
- `hdfs/HDFS_100k.log_structured.csv.zip`: loghub's parse of the same lines (ground truth `EventId`);
- `hdfs/abnormal_blocks.csv`: the anomalous blocks of HDFS_v1 (`<block id>,<event numbers>`).
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.datasets import data_file
from pipeline.errors import DataError

HDFS_RAW = "hdfs/HDFS_100k.log.gz"
HDFS_STRUCTURED = "hdfs/HDFS_100k.log_structured.csv.zip"
HDFS_ABNORMAL = "hdfs/abnormal_blocks.csv"
STRUCTURED_COLUMNS = (
    "LineId",
    "Date",
    "Time",
    "Pid",
    "Level",
    "Component",
    "Content",
    "EventId",
    "EventTemplate",
)


@dataclass(frozen=True)
class StructuredLine:
    """One row of a loghub `*_structured.csv`."""

    line_id: int
    content: str
    event_id: str
    event_template: str


def read_lines(path: Path) -> Iterator[str]:
    """Raw log lines without their line ends, from a plain or gzipped file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="\n") as handle:
            for line in handle:
                yield line.rstrip("\r\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(
            f"read log lines from {path}: {exc}; check the file (md5 in the data README)"
        ) from exc


def hdfs_lines(data_dir: Path, relative: str | Path = HDFS_RAW) -> list[str]:
    """The raw HDFS_100k lines (104,815 of them)."""
    return list(read_lines(data_file(data_dir, relative)))


def read_structured(path: Path) -> list[StructuredLine]:
    """Rows of a loghub structured CSV, plain or as the only CSV inside a zip."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith(".csv")]
                if len(names) != 1:
                    raise DataError(f"read {path}: expected one .csv inside the zip, found {names}")
                with archive.open(names[0]) as raw:
                    return _rows(io.TextIOWrapper(raw, encoding="utf-8", newline=""), path)
        with path.open(encoding="utf-8", newline="") as handle:
            return _rows(handle, path)
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DataError(
            f"read structured log {path}: {exc}; check the file (md5 in the data README)"
        ) from exc


def _rows(handle: io.TextIOBase | io.TextIOWrapper, path: Path) -> list[StructuredLine]:
    reader = csv.DictReader(handle)
    missing = [
        c for c in ("LineId", "Content", "EventId", "EventTemplate") if c not in (reader.fieldnames or ())
    ]
    if missing:
        raise DataError(
            f"read {path}: columns {missing} missing; expected loghub columns {STRUCTURED_COLUMNS}"
        )
    try:
        return [
            StructuredLine(int(r["LineId"]), r["Content"], r["EventId"], r["EventTemplate"]) for r in reader
        ]
    except (TypeError, ValueError) as exc:
        raise DataError(f"read {path}: a row does not have loghub's shape ({exc})") from exc


def hdfs_structured(data_dir: Path, relative: str | Path = HDFS_STRUCTURED) -> list[StructuredLine]:
    """loghub's parse of HDFS_100k: content, `EventId` (E1..E29) and template per line."""
    return read_structured(data_file(data_dir, relative))


def read_abnormal_blocks(path: Path) -> frozenset[str]:
    """Block ids labelled anomalous (`<block id>,<event numbers>` per line; no header)."""
    blocks: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            block = line.split(",", 1)[0].strip()
            if not block:
                continue
            if not block.startswith("blk_"):
                raise DataError(
                    f"read {path} line {number}: expected a block id 'blk_...', got {block[:40]!r}"
                )
            blocks.add(block)
    return frozenset(blocks)


def hdfs_labels(data_dir: Path, blocks: list[str], relative: str | Path = HDFS_ABNORMAL) -> dict[str, bool]:
    """Block id -> anomalous, for the given blocks (a block not in the label file is normal)."""
    abnormal = read_abnormal_blocks(data_file(data_dir, relative))
    return {block: block in abnormal for block in blocks}
