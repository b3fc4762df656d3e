"""Readers for the shared log data (LOGAD_DATA_DIR, default ../shared/data) and our own fixtures."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import DataError


def data_file(data_dir: Path, relative: str | Path) -> Path:
    """Resolve a file under the data directory, or explain how to point at it."""
    path = Path(relative)
    if not path.is_absolute() and not path.exists():
        path = Path(data_dir) / path
    if not path.is_file():
        raise DataError(
            f"data file {path} not found; set LOGAD_DATA_DIR (or --data-dir) to the folder holding the "
            f"shared log data, or pass the file's path explicitly"
        )
    return path
