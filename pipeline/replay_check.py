"""Before `logad replay` produces a file: do its lines have the header the worker will parse them with?

The worker parses a source with the log format of the model that scores it (`SourceParsers` in
`pipeline.deployment`): window sources (`LOGAD_WINDOW_SOURCES`) with the window model's, the others
with the detection model's; a version names its format in `metadata.json` (`log_format`). A file
replayed under the wrong `--source` turns every line into a `no_header` dead letter, silently. This
module checks a sample of the file against that format and names the known format that fits best,
and the source that would be parsed with it.

A line of a multi-line record (a stack trace) also lacks a header, so a sample's misses are an upper
bound of the dead letters; the warning threshold (more than half) leaves room for that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError, ModelError
from pipeline.formats import PROFILES, LogFormat
from pipeline.settings import Settings

SAMPLE_LINES = 200
MAX_SCANNED_LINES = 10_000  # a file of blank lines must not be read to its end for the sample


@dataclass(frozen=True)
class ExpectedFormat:
    """The format the worker would parse a source with, and why; `log_format` None: cannot tell."""

    source: str
    log_format: LogFormat | None
    why: str


@dataclass(frozen=True)
class FormatFit:
    """How many of the sample's lines have a format's header."""

    name: str
    matched: int
    sample_size: int

    @property
    def share(self) -> float:
        return self.matched / self.sample_size if self.sample_size else 0.0


@dataclass(frozen=True)
class SampleCheck:
    """A sample checked against the expected format, with every known format's fit, best first."""

    expected: LogFormat
    sample_size: int
    failed: int
    fits: tuple[FormatFit, ...]

    @property
    def failed_share(self) -> float:
        return self.failed / self.sample_size if self.sample_size else 0.0

    @property
    def mostly_fails(self) -> bool:
        return 2 * self.failed > self.sample_size

    @property
    def best(self) -> FormatFit | None:
        """The known format that fits the sample best, if it fits better than the expected one."""
        if not self.fits or self.fits[0].matched <= self.sample_size - self.failed:
            return None
        return self.fits[0]


def take_sample(lines: Iterator[bytes], size: int = SAMPLE_LINES) -> tuple[list[bytes], list[str]]:
    """The first `size` non-empty lines, decoded, and every line read for them (to be replayed first)."""
    read: list[bytes] = []
    sample: list[str] = []
    for raw in lines:
        read.append(raw)
        # The parser rejects invalid UTF-8 by itself (invalid_utf8); for the header test, replace it.
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if text.strip():
            sample.append(text)
        if len(sample) >= size or len(read) >= MAX_SCANNED_LINES:
            break
    return read, sample


def check_sample(
    sample: Iterable[str], expected: LogFormat, known: Mapping[str, LogFormat] = PROFILES
) -> SampleCheck:
    """Count the sample's lines without `expected`'s header, and rank the `known` formats by fit.

    Ties rank in the order of `known` (built-ins: hdfs, bgl, generic), so a specific format wins over
    the generic one, which accepts almost any line.
    """
    lines = list(sample)
    failed = sum(1 for line in lines if not expected.starts_record(line))
    order = {name: i for i, name in enumerate(known)}
    fits = [
        FormatFit(name, sum(1 for line in lines if fmt.starts_record(line)), len(lines))
        for name, fmt in known.items()
    ]
    fits.sort(key=lambda fit: (-fit.matched, order[fit.name]))
    return SampleCheck(expected, len(lines), failed, tuple(fits))


def model_for_source(settings: Settings, source: str) -> str:
    """The model whose template set (and format) the worker parses `source` with."""
    return settings.window_model if source in settings.window_source_set else settings.detection_model


def expected_format(settings: Settings, source: str) -> ExpectedFormat:
    """The newest valid version's `log_format` (as the worker picks it), else the format named like the
    source when nothing is published here; `log_format` None when neither tells."""
    from pipeline.deployment import version_format
    from pipeline.format_profiles import load_formats
    from pipeline.model_repository import newest_valid_version, read_metadata

    if settings.formats:  # as `deployment.SourceParsers`: the source's profile wins
        profile = load_formats(settings.formats).for_source(source)
        if profile is not None:
            return ExpectedFormat(source, profile.log_format, f"its profile in {settings.formats}")
    model = model_for_source(settings, source)
    repo = Path(settings.model_repo)
    role = "window model" if source in settings.window_source_set else "detection model"
    version = newest_valid_version(repo, model)
    if version is not None:
        # As `deployment.load_template_set`: the stored profile, else the named built-in format.
        where = f"{model} version {version}"
        fmt = version_format(read_metadata(repo, model, version), f"{where} metadata.json")
        return ExpectedFormat(source, fmt, f"the {role} {where} in {repo}")
    if source in PROFILES:
        why = f"no version of the {role} {model} in {repo}: assuming the format named like the source"
        return ExpectedFormat(source, PROFILES[source], why)
    return ExpectedFormat(
        source, None, f"no version of the {role} {model} in {repo} and no built-in format named {source!r}"
    )


def source_hint(settings: Settings, format_name: str) -> str:
    """Which `--source` the worker would parse with `format_name`, or what to do when none is."""
    candidates = [*sorted(settings.window_source_set), *PROFILES]
    for source in dict.fromkeys(candidates):
        found = expected_format(settings, source).log_format
        if found is not None and found.name == format_name:
            return f"--source {source}"
    return (
        f"no source is parsed as {format_name} here: publish a model trained on such logs, or (a window "
        f"model reading {format_name}) list the source in LOGAD_WINDOW_SOURCES"
    )


def warning_text(check: SampleCheck, expected: ExpectedFormat, hint: str | None) -> str:
    """One paragraph for stderr: the share that fails, the format and why, and what would fit."""
    text = (
        f"{check.failed} of the first {check.sample_size} lines ({check.failed_share:.0%}) lack the "
        f"{check.expected.name} header that source {expected.source!r} is parsed with ({expected.why}); "
        f"the worker would turn such lines into no_header dead letters."
    )
    best = check.best
    if best is None:
        return text + " No known format fits the sample better; check the file or add its format."
    return text + f" Best fit: the {best.name} format ({best.share:.0%} of the sample): {hint}."


def run_check(settings: Settings, source: str, sample: list[str]) -> tuple[SampleCheck | None, str]:
    """(the check or None when skipped, a message: the warning, a skip notice, or "" when all is well)."""
    try:
        expected = expected_format(settings, source)
    except (ModelError, ConfigError) as exc:
        return None, f"format check skipped: {exc}"
    if expected.log_format is None:
        return None, f"format check skipped: {expected.why}"
    if not sample:
        return None, "format check skipped: no non-empty line in the file's start"
    check = check_sample(sample, expected.log_format)
    if not check.mostly_fails:
        return check, ""
    best = check.best
    return check, warning_text(check, expected, source_hint(settings, best.name) if best else None)


def join_continuations(lines: Iterable[bytes], fmt: LogFormat, max_lines: int = 500) -> Iterator[bytes]:
    """Lines with each continuation line (no header, a multi-line format) joined to the line before,
    so that a record never straddles two raw messages: the worker joins lines only within one.

    At most `max_lines` lines a record (the worker's limit: it dead-letters the rest anyway), so a
    file of another format cannot become one huge message; use it only on a file whose sample fits
    the format (`SampleCheck.mostly_fails` False)."""
    pending: list[bytes] = []
    for line in lines:
        line = line.rstrip(b"\r\n")
        joins = pending and len(pending) < max_lines
        if joins and not fmt.starts_record(line.decode("utf-8", "replace")):
            pending.append(line)
            continue
        if pending:
            yield b"\n".join(pending)
        pending = [line]
    if pending:
        yield b"\n".join(pending)
