"""The loghub-2k parsing benchmark layout: `<System>/<System>_2k.log`, its corrected ground truth
`<System>_2k.log_structured_corrected.csv`, and a `settings.toml` with one table per system (header
format string, masking regexes, Drain's similarity threshold and depth)."""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pipeline.datasets.loghub import read_lines
from pipeline.errors import ConfigError, DataError

LOGHUB2K_DIR = "loghub2k"


@dataclass(frozen=True)
class SystemSettings:
    """One system's benchmark settings (a table of `settings.toml`)."""

    name: str
    log_format: str
    regex: tuple[str, ...]
    drain_st: float
    drain_depth: int


@dataclass(frozen=True)
class LabelledLines:
    """A system's raw lines and, line by line, their true event id and template."""

    lines: tuple[str, ...]
    event_ids: tuple[str, ...]
    templates: tuple[str, ...]


def read_settings(path: Path) -> dict[str, SystemSettings]:
    """Every system of a loghub-style settings file, by name, in file order."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"parsing settings {path}: {exc}; pass a TOML file like loghub2k/settings.toml"
        ) from exc
    systems: dict[str, SystemSettings] = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"parsing settings {path}: {name!r} is not a table; write it as [{name}]")
        try:
            regex = table.get("regex", [])
            if not isinstance(regex, list) or not all(isinstance(r, str) for r in regex):
                raise TypeError("regex must be a list of strings")
            systems[name] = SystemSettings(
                name,
                str(table["log_format"]),
                tuple(regex),
                float(table.get("drain_st", 0.5)),
                int(table.get("drain_depth", 4)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"parsing settings {path}, system {name}: {exc!s}; each system needs log_format (a header "
                "string), regex (a list of strings), drain_st (a number) and drain_depth (an integer)"
            ) from exc
    return systems


def read_system(folder: Path, name: str) -> LabelledLines:
    """A system's raw lines and ground truth; the two files must have the same number of lines."""
    log_path = folder / name / f"{name}_2k.log"
    truth_path = folder / name / f"{name}_2k.log_structured_corrected.csv"
    for path in (log_path, truth_path):
        if not path.is_file():
            raise DataError(
                f"loghub system {name}: {path} not found; the data folder needs <System>/<System>_2k.log and "
                "<System>_2k.log_structured_corrected.csv (pass --data)"
            )
    lines = tuple(line for line in read_lines(log_path) if line.strip())
    with truth_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"EventId", "EventTemplate"} <= set(rows[0]):
        raise DataError(f"loghub system {name}: {truth_path} lacks the EventId and EventTemplate columns")
    if len(rows) != len(lines):
        raise DataError(
            f"loghub system {name}: {log_path} has {len(lines)} non-empty lines but {truth_path} has "
            f"{len(rows)} rows; they must describe the same lines"
        )
    return LabelledLines(lines, tuple(r["EventId"] for r in rows), tuple(r["EventTemplate"] for r in rows))
