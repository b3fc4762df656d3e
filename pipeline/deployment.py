"""What the online worker runs: the deployed next-event model version, its template set, its scorer.

A model version carries the parser state it was trained with (`templates.json`), so the worker
matches lines against exactly the templates the model knows; when a newer version is published,
both the scorer and the template set follow it without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError
from pipeline.formats import LogFormat, get_format
from pipeline.model_repository import newest_valid_version, read_metadata, read_version_file
from pipeline.scoring import NextEventScorer, TorchScriptNextEventScorer
from pipeline.settings import Settings
from pipeline.templates import TemplateMiner

log = logging.getLogger(__name__)

TEMPLATES_FILE = "templates.json"


@dataclass(frozen=True)
class TemplateSet:
    """The frozen parser state of one model version."""

    model: str
    version: int
    log_format: LogFormat
    miner: TemplateMiner
    texts: dict[int, str]
    session_end_id: int | None  # the end-of-session marker the model predicts, if it was trained with one


def load_template_set(repo: Path, model: str, version: int) -> TemplateSet:
    metadata = read_metadata(repo, model, version)
    miner = TemplateMiner.load_state(read_version_file(repo, model, version, TEMPLATES_FILE))
    miner.freeze()
    end = metadata.get("session_end_id")
    return TemplateSet(
        model,
        version,
        get_format(str(metadata.get("log_format", "hdfs"))),
        miner,
        miner.templates(),
        int(end) if end is not None else None,
    )


class TemplateFollower:
    """Holds the template set of the newest valid version; checks for a newer one every interval."""

    def __init__(self, repo: Path, model: str, clock: Callable[[], float], interval_s: float = 10.0) -> None:
        self.repo, self.model, self.clock, self.interval_s = Path(repo), model, clock, interval_s
        self._checked_at = float("-inf")
        self._current: TemplateSet | None = None

    def current(self) -> TemplateSet:
        now = self.clock()
        if self._current is None or now - self._checked_at >= self.interval_s:
            self._checked_at = now
            version = newest_valid_version(self.repo, self.model)
            if version is None:
                if self._current is None:
                    raise ModelError(
                        f"no valid version of {self.model} in {self.repo}; train one with "
                        f"`logad train {self.model} --raw-log ...` or run `logad demo`"
                    )
            elif self._current is None or version != self._current.version:
                self._current = load_template_set(self.repo, self.model, version)
                log.info(
                    "templates: following %s version %d (%d templates)",
                    self.model,
                    version,
                    len(self._current.texts),
                )
        if self._current is None:
            raise ModelError(f"templates: no template set loaded for {self.model}")
        return self._current

    def text(self, template_id: int) -> str:
        return self.current().texts.get(template_id, f"<template {template_id}>")


def next_event_scorer(
    settings: Settings, clock: Callable[[], float], **triton_options: Any
) -> NextEventScorer:
    """The configured backend: Triton over gRPC (deployment default) or in-process TorchScript."""
    if settings.inference_backend == "torchscript":
        return TorchScriptNextEventScorer.from_repo(settings.model_repo, settings.detection_model, clock)
    if settings.inference_backend == "triton":
        from pipeline.adapters.triton import TritonNextEventScorer

        return TritonNextEventScorer(settings.triton_grpc_url, settings.detection_model, **triton_options)
    raise ModelError(
        f"inference backend {settings.inference_backend!r} is unknown; set LOGAD_INFERENCE_BACKEND "
        "to 'triton' or 'torchscript'"
    )
