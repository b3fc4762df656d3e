"""ProtoSiamese on a format profile's time windows: `logad train protosiamese --logs F --format P
--labels F`, for sources whose lines carry no session key (BGL's case, for any format).

The lines are joined into records as the worker joins them, templated with the profile's masks,
stamped by its timestamp rule and cut into the same windows the worker cuts online
(`pipeline.time_windows`). A window's class comes from the labels file: `<line number>,<class>` per
anomalous line (1-based line numbers of the log file, as `logad formats check` shows them); a record
takes the class of its first line, and a window the class most of its labelled records have.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.datasets.bgl import window_classes
from pipeline.errors import ConfigError, DataError
from pipeline.format_profiles import FormatProfile
from pipeline.formats import LogRecord, MultilineJoiner
from pipeline.model_repository import sha256_file
from pipeline.templates import TemplateMiner
from pipeline.time_windows import TimedEvent, WindowSpec, time_windows
from pipeline.training.episodic import EpisodicConfig
from pipeline.training.protosiamese import BglTrainingResult, train_on_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileRecords:
    records: list[tuple[int, LogRecord]]  # (first line number, record), records with a timestamp
    lines: int
    unparsed: int
    without_time: int


def read_line_labels(path: Path) -> dict[int, str]:
    """`<line number>,<class>` lines (blank lines and `#` comments skipped) -> {line number: class}."""
    labels: dict[int, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        line, _, name = text.partition(",")
        try:
            labels[int(line)] = name.strip() or "anomaly"
        except ValueError:
            if number == 1:
                continue  # a header row such as `line,class`
            raise DataError(
                f"labels {path} line {number}: expected `<line number>,<class>`, got {text!r}; fix the line"
            ) from None
    return labels


def profile_records(lines: Iterable[str], profile: FormatProfile) -> ProfileRecords:
    """The file's records with the line number each starts on (as `logad formats check` counts)."""
    fmt = profile.log_format
    joiner = MultilineJoiner(fmt)
    starts: list[int] = []
    records: list[tuple[int, LogRecord]] = []
    count = unparsed = without_time = 0

    def take(items: Sequence[object]) -> None:
        nonlocal unparsed, without_time
        for item in items:
            if not isinstance(item, LogRecord):
                unparsed += 1
                continue
            start = starts.pop(0)
            if item.timestamp is None:
                without_time += 1
            else:
                records.append((start, item))

    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        count += 1
        if fmt.starts_record(line):
            starts.append(number)
        take(joiner.feed(line))
    take(joiner.flush())
    return ProfileRecords(records, count, unparsed, without_time)


def train_profile_windows(
    path: Path,
    profile: FormatProfile,
    labels: Mapping[int, str],
    spec: WindowSpec,
    min_windows: int,
    episodic: EpisodicConfig,
    progress: bool = True,
) -> BglTrainingResult:
    """Templates, windows and their classes from one log file, then `train_protosiamese`."""
    if not profile.log_format.timestamp_groups:
        raise ConfigError(
            f"train protosiamese: profile {profile.name!r} has no timestamp rule, so its lines cannot be "
            "cut into time windows; add `timestamp = {{ fields = [...], format = ... }}` to the profile"
        )
    with open(path, encoding="utf-8", errors="replace") as fh:
        read = profile_records((line.rstrip("\n") for line in fh), profile)
    if not read.records:
        raise DataError(
            f"train protosiamese: no record of {path} has the {profile.name} header and a readable "
            f"timestamp ({read.unparsed} lines without the header, {read.without_time} records without "
            f"a time); check with `logad formats check {profile.name} {path}`"
        )
    miner = TemplateMiner(profile.drain_config())
    texts = [profile.log_format.template_text(record) for _, record in read.records]
    for text in texts:
        miner.learn(text)
    miner.freeze()
    events = [
        TimedEvent(record.timestamp or 0.0, miner.match(text).template_id, labels.get(start))
        for (start, record), text in zip(read.records, texts, strict=True)
    ]
    windows = time_windows(events, spec)
    classes = window_classes(windows, min_windows)
    if len(classes) < 2:
        raise DataError(
            f"train protosiamese: no class of the labels has {min_windows}+ windows in {path} "
            f"({len(windows)} windows of {spec.size_s:g}s); label more anomalous lines or lower "
            "--min-train-windows"
        )
    trained, sizes = train_on_windows(windows, classes, episodic, progress, profile.name)
    return BglTrainingResult(
        trained=trained,
        spec=spec,
        templates_state=miner.save_state(),
        n_windows=sum(sizes.values()),
        class_sizes=sizes,
        files_sha256={Path(path).name: sha256_file(Path(path))},
    )
