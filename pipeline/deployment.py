"""What the online worker runs: the deployed model versions, their template sets, their scorers.

A model version carries the parser state it was trained with (`templates.json`), so the worker
matches lines against exactly the templates the model knows; when a newer version is published,
both the scorer and the template set follow it without a restart. Two models can be deployed side
by side: the next-event model (`detection_model`) for sources with sessions, and the window model
(`window_model`, ProtoSiamese) for the `window_sources`; each source is parsed with the template
set of the model that scores it (`SourceParsers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.columnar_parse import ColumnarParser
from pipeline.errors import ModelError
from pipeline.format_profiles import FormatCatalog, FormatProfile
from pipeline.formats import LogFormat, get_format
from pipeline.model_repository import (
    NewestServable,
    check_servable,
    newest_valid_version,
    read_metadata,
    read_version_file,
)
from pipeline.parsing import MAX_LINE_BYTES, Parser
from pipeline.scoring import (
    NextEventScorer,
    TorchScriptNextEventScorer,
    TorchScriptWindowClassScorer,
    VersionFollower,
    WindowClassScorer,
)
from pipeline.settings import Settings
from pipeline.templates import TemplateMiner
from pipeline.time_windows import WindowSpec
from pipeline.version_checks import TEMPLATES_FILE
from pipeline.windows import SESSION_END_ID, SESSION_END_TEXT

if TYPE_CHECKING:
    from pipeline.parameter_detection import ParameterDetector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemplateSet:
    """The frozen parser state of one model version."""

    model: str
    version: int
    log_format: LogFormat
    miner: TemplateMiner
    texts: dict[int, str]
    session_end_id: int | None  # the end-of-session marker the model predicts, if it was trained with one
    window_spec: WindowSpec | None = None  # window models: how their windows were cut

    def require_window_spec(self) -> WindowSpec:
        if self.window_spec is None:
            raise ModelError(
                f"model {self.model} version {self.version} has no window spec in its metadata; it is not "
                "a window model (publish one with `logad train protosiamese`) or fix LOGAD_WINDOW_MODEL"
            )
        return self.window_spec


def load_template_set(repo: Path, model: str, version: int) -> TemplateSet:
    metadata = read_metadata(repo, model, version)
    miner = TemplateMiner.load_state(read_version_file(repo, model, version, TEMPLATES_FILE))
    miner.freeze()
    end = metadata.get("session_end_id")
    window = metadata.get("window")
    return TemplateSet(
        model,
        version,
        version_format(metadata, f"{model} version {version} metadata.json"),
        miner,
        miner.templates(),
        int(end) if end is not None else None,
        WindowSpec.from_json(window) if window is not None else None,
    )


def version_format(metadata: dict[str, Any], origin: str) -> LogFormat:
    """The log format a version was trained with: the profile it stores (trained with a profiles
    file), else the built-in format it names."""
    profile = metadata.get("format_profile")
    if profile is not None:
        return FormatProfile.from_json(profile, origin).log_format
    return get_format(str(metadata.get("log_format", "hdfs")))


class TemplateFollower:
    """Holds the template set of the newest servable version; checks for a newer one every interval.

    A newer version a worker cannot serve (no `templates.json`, a file failing its checksum, copied
    by hand half-way) is skipped, logged once, and counted through `on_unusable(model, count)`; the
    set held keeps serving, so parsing never stops over a bad version.
    """

    def __init__(
        self,
        repo: Path,
        model: str,
        clock: Callable[[], float],
        interval_s: float = 10.0,
        on_unusable: Callable[[str, int], None] | None = None,
    ) -> None:
        self.repo, self.model, self.clock, self.interval_s = Path(repo), model, clock, interval_s
        self._newest = NewestServable(self.repo, model, on_unusable)
        self._checked_at = float("-inf")
        self._current: TemplateSet | None = None
        self._failed: tuple[int, str] | None = None  # the version that last failed to load, and why

    def current(self) -> TemplateSet:
        now = self.clock()
        if self._current is None or now - self._checked_at >= self.interval_s:
            self._checked_at = now
            version = self._newest()
            if version is None:
                if self._current is None:
                    raise ModelError(
                        f"no servable version of {self.model} in {self.repo}; train one with "
                        f"`logad train {self.model} --logs ...` or run `logad demo`"
                    )
            elif self._current is None or version != self._current.version:
                self._follow(version)
        if self._current is None:
            raise ModelError(f"templates: no template set loaded for {self.model}")
        return self._current

    def _follow(self, version: int) -> None:
        try:
            loaded = load_template_set(self.repo, self.model, version)
        except ModelError as exc:
            # Checked servable a moment ago, yet it does not load (changed in between): keep what
            # serves, and say so once.
            if self._current is None:
                raise
            if self._failed != (version, str(exc)):
                self._failed = (version, str(exc))
                log.warning(
                    "templates: keeping %s version %d, version %d does not load: %s",
                    self.model,
                    self._current.version,
                    version,
                    exc,
                )
            return
        self._current = loaded
        log.info("templates: following %s version %d (%d templates)", self.model, version, len(loaded.texts))

    def text(self, template_id: int) -> str:
        if template_id == SESSION_END_ID:
            return SESSION_END_TEXT  # a model's prediction, never a template of the parser
        return self.current().texts.get(template_id, f"<template {template_id}>")


def next_event_scorer(
    settings: Settings, clock: Callable[[], float], **triton_options: Any
) -> NextEventScorer:
    """The configured backend: Triton over gRPC (deployment default) or in-process TorchScript."""
    if settings.inference_backend == "torchscript":
        return TorchScriptNextEventScorer.from_repo(settings.model_repo, settings.detection_model, clock)
    if settings.inference_backend == "triton":
        from pipeline.adapters.triton import TritonNextEventScorer

        return TritonNextEventScorer(
            settings.triton_grpc_url,
            settings.detection_model,
            usable=servable_check(settings.model_repo, settings.detection_model),
            **triton_options,
        )
    raise ModelError(
        f"inference backend {settings.inference_backend!r} is unknown; set LOGAD_INFERENCE_BACKEND "
        "to 'triton' or 'torchscript'"
    )


class SourceParsers:
    """The parser of each source: window sources use the window model's template set, the others the
    next-event model's. The format is the one the `formats` catalog maps the source to (its
    `[sources]`), else the one the model version was trained with. A parser is rebuilt when its
    model's newest version changes."""

    def __init__(
        self,
        sessions: TemplateFollower,
        windows: TemplateFollower,
        window_sources: frozenset[str],
        max_message_bytes: int,
        max_line_bytes: int = MAX_LINE_BYTES,
        formats: FormatCatalog | None = None,
    ) -> None:
        self.sessions, self.windows, self.window_sources = sessions, windows, window_sources
        self.max_message_bytes = max_message_bytes
        self.max_line_bytes = max_line_bytes
        self.formats = formats
        # (model, format name) -> (version, parser)
        self._parsers: dict[tuple[str, str], tuple[int, ColumnarParser]] = {}
        self._warned: set[tuple[str, int, str]] = set()

    def follower(self, source: str) -> TemplateFollower:
        return self.windows if source in self.window_sources else self.sessions

    def columnar_for_source(self, source: str) -> ColumnarParser:
        """The parse stage's parser of `source` (columns; `Parser` inside for what it cannot prove)."""
        deployed = self.follower(source).current()
        fmt = self._format(source, deployed)
        held = self._parsers.get((deployed.model, fmt.name))
        if held is None or held[0] != deployed.version:
            parser = ColumnarParser(
                fmt,
                deployed.miner,
                max_message_bytes=self.max_message_bytes,
                max_line_bytes=self.max_line_bytes,
            )
            held = self._parsers[(deployed.model, fmt.name)] = (deployed.version, parser)
        return held[1]

    def _format(self, source: str, deployed: TemplateSet) -> LogFormat:
        profile = self.formats.for_source(source) if self.formats is not None else None
        if profile is None:
            return deployed.log_format
        if profile.name != deployed.log_format.name:
            warned = (deployed.model, deployed.version, profile.name)
            if warned not in self._warned:  # once per version and profile: the stream goes on
                self._warned.add(warned)
                log.warning(
                    "formats: source %r parses with profile %r (%s), but %s version %d was trained with "
                    "format %r: its templates may not match (OOV events); retrain with `logad train %s "
                    "--logs FILE --format %s` or map the source to %r",
                    source,
                    profile.name,
                    self.formats.origin if self.formats is not None else "",
                    deployed.model,
                    deployed.version,
                    deployed.log_format.name,
                    deployed.model,
                    profile.name,
                    deployed.log_format.name,
                )
        return profile.log_format

    def for_source(self, source: str) -> Parser:
        """The exact `Parser` of `source`: the one inside its columnar parser, so that raw lines read
        back for alerts split exactly as the events' line indices were counted."""
        return self.columnar_for_source(source).exact


def window_class_scorer(
    settings: Settings, clock: Callable[[], float], **triton_options: Any
) -> WindowClassScorer:
    """The configured backend for the window model: Triton over gRPC or in-process TorchScript."""
    if settings.inference_backend == "torchscript":
        return TorchScriptWindowClassScorer(
            VersionFollower(settings.model_repo, settings.window_model, clock)
        )
    if settings.inference_backend == "triton":
        from pipeline.adapters.triton import TritonWindowClassScorer

        repo, model = settings.model_repo, settings.window_model
        return TritonWindowClassScorer(
            settings.triton_grpc_url,
            model,
            lambda version: class_names(repo, model, version),
            usable=servable_check(repo, model),
            **triton_options,
        )
    raise ModelError(
        f"inference backend {settings.inference_backend!r} is unknown; set LOGAD_INFERENCE_BACKEND "
        "to 'triton' or 'torchscript'"
    )


def servable_check(repo: Path, model: str) -> Callable[[int], None]:
    """For a Triton scorer: raises ModelError when the version Triton answered with is one this
    worker cannot serve (`check_servable`).

    Triton serves the newest version it loaded, which need not be the one whose templates the parse
    agent follows: a version without `templates.json` (trained on a --sessions file, whose ids are
    the file's small integers, not the parser's text hashes) would find every parsed event unknown
    and alert on every session. The scorer treats such an answer like Triton being down: it waits
    and retries (DEGRADED in the log, `logad_degraded` 1) until a servable version answers. Verdicts
    of servable versions are kept; an unservable one is checked again at every retry, so fixing it
    in place is picked up too.
    """
    servable: set[int] = set()

    def check(version: int) -> None:
        if version not in servable:
            check_servable(repo, model, version)
            servable.add(version)

    return check


def class_names(repo: Path, model: str, version: int) -> tuple[str, ...]:
    """Class names of a window-model version, in prototype order (index = the model's class index)."""
    names = read_metadata(repo, model, version).get("class_names")
    if not isinstance(names, list) or not names:
        raise ModelError(f"model {model} version {version}: metadata.json has no class_names; republish it")
    return tuple(str(n) for n in names)


def parameter_detector(
    settings: Settings, clock: Callable[[], float], **triton_options: Any
) -> ParameterDetector | None:
    """DeepLog's parameter value check, when `parameter_model` has a version in the repository.

    Scored by the configured backend (Triton, or in-process TorchScript); newer versions are followed
    without a restart, but a model first published after the worker started needs one.
    """
    from pipeline.parameter_detection import ParameterDetector
    from pipeline.parameter_features import FeatureSchema
    from pipeline.parameter_scoring import ParameterModelInfo, ParameterScorer, TorchScriptParameterScorer

    name, repo = settings.parameter_model, settings.model_repo
    # Only verified versions: an optional check must not stop the worker over a corrupt file.
    if not name or newest_valid_version(repo, name) is None:
        log.info("parameter detection off: no valid %r model in %s", name, repo)
        return None
    scorer: ParameterScorer
    if settings.inference_backend == "triton":
        from pipeline.adapters.triton import TritonParameterScorer

        def info_of(version: int) -> ParameterModelInfo:
            # From metadata.json: the worker needs no TorchScript module when Triton scores. Only a
            # servable version's: one without a schema must not be scored with another's.
            metadata = check_servable(repo, name, version)
            return ParameterModelInfo(
                name, version, int(metadata["window_size"]), FeatureSchema.from_json(metadata["schema"])
            )

        scorer = TritonParameterScorer(settings.triton_grpc_url, name, info_of, **triton_options)
    else:
        scorer = TorchScriptParameterScorer(VersionFollower(repo, name, clock))
    return ParameterDetector(scorer, max_keys=settings.parameter_history_keys)
