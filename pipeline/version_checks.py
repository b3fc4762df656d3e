"""What a model version must carry to be served, and how good its validation must be to be published.

A worker uses more of a version than its weights: the parser state it was trained with
(`templates.json`: the template ids the model's vocabulary speaks), and per kind the window spec and
class names (window models) or the feature schema and h (parameter models). A version without them
cannot be served: publishing refuses it before anything is written, and a worker that meets one
(copied by hand, half-written, corrupt) skips it and keeps the last servable one
(`pipeline.model_repository.NewestServable`). The rules here are pure functions of a version's
metadata and the bytes of its extra files, so publishing and serving apply the same ones.

`validation_gate` is the other publishing check: a version that flags most validation sessions
(normal sessions held out of training) would flood on-call with false alerts.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError, DataError, ModelError

log = logging.getLogger(__name__)

TEMPLATES_FILE = "templates.json"
# Set in metadata.json by an explicit opt-out (`publish_version(unservable_reason=...)`): such a version
# is for offline use (a benchmark, a unit test) and a worker never serves it.
UNSERVABLE_KEY = "unservable"


class ModelRole(enum.Enum):
    """What the worker does with a model: which parts of a version it reads."""

    NEXT_EVENT = "next-event"  # lama, deeplog: templates
    WINDOW = "window"  # protosiamese: templates, window spec, class names
    PARAMETER = "parameter"  # deeplog_params: feature schema, h


ROLE_OF_KIND = {
    "lama": ModelRole.NEXT_EVENT,
    "deeplog": ModelRole.NEXT_EVENT,
    "protosiamese": ModelRole.WINDOW,
    "deeplog_params": ModelRole.PARAMETER,
}


def role_of(name: str, metadata: Mapping[str, Any]) -> ModelRole | None:
    """The role of a version: by its metadata `kind`, else by its model name; None for other models
    (test and benchmark models no worker serves: only their checksums are checked)."""
    return ROLE_OF_KIND.get(str(metadata.get("kind") or name))


def servable_problems(name: str, metadata: Mapping[str, Any], files: Mapping[str, bytes]) -> list[str]:
    """Everything that keeps a worker from serving this version, each with how to fix it; [] if none.

    `files` are the version's extra files (name -> bytes), already checked against their sha256.
    """
    problems: list[str] = []
    if UNSERVABLE_KEY in metadata:
        problems.append(
            f"it was published as not servable ({metadata[UNSERVABLE_KEY]}); publish a servable version"
        )
    role = role_of(name, metadata)
    if role in (ModelRole.NEXT_EVENT, ModelRole.WINDOW):
        problems += _template_problems(name, files)
    if role is ModelRole.WINDOW:
        problems += _window_problems(metadata)
    if role is ModelRole.PARAMETER:
        problems += _parameter_problems(metadata)
    return problems


def require_servable(step: str, name: str, metadata: Mapping[str, Any], files: Mapping[str, bytes]) -> None:
    """Raise ModelError naming every problem of `servable_problems`."""
    problems = servable_problems(name, metadata, files)
    if problems:
        version = metadata.get("version")
        which = f"{name} version {version}" if version is not None else name
        raise ModelError(f"{step}: {which} is not servable: {'; '.join(problems)}")


def _template_problems(name: str, files: Mapping[str, bytes]) -> list[str]:
    from pipeline.templates import TemplateMiner

    data = files.get(TEMPLATES_FILE)
    if data is None:
        remedy = (
            "retrain with `logad train protosiamese`"
            if ROLE_OF_KIND.get(name) is ModelRole.WINDOW
            else "sessions from a --sessions file carry no parser state: train with --logs or "
            "--from-topic, or pass --no-publish to train and report only"
        )
        return [f"no {TEMPLATES_FILE} (the parser state whose template ids the model knows); {remedy}"]
    try:
        TemplateMiner.load_state(data)
    except DataError as exc:
        return [f"{TEMPLATES_FILE} does not load ({exc}); republish the version"]
    return []


def _window_problems(metadata: Mapping[str, Any]) -> list[str]:
    from pipeline.time_windows import WindowSpec

    problems = []
    window = metadata.get("window")
    if window is None:
        problems.append("no window spec (`window` in metadata.json); publish with `logad train protosiamese`")
    else:
        try:
            WindowSpec.from_json(window)
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"window spec {window!r} is malformed ({exc}); republish the version")
    names = metadata.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append("no class_names list in metadata.json; publish with `logad train protosiamese`")
    return problems


def _parameter_problems(metadata: Mapping[str, Any]) -> list[str]:
    from pipeline.parameter_features import FeatureSchema

    problems = []
    h = metadata.get("window_size")
    if not isinstance(h, int) or isinstance(h, bool) or h < 1:
        problems.append(f"window_size (h) is {h!r}, expected a positive integer; republish the version")
    schema = metadata.get("schema")
    if schema is None:
        problems.append(
            "no feature schema in metadata.json; publish with `logad train deeplog_params --logs F`"
        )
    else:
        try:
            FeatureSchema.from_json(schema)
        except (DataError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"feature schema is malformed ({exc}); republish the version")
    return problems


@dataclass(frozen=True)
class ValidationFpr:
    """The session false-positive rate of a trained version on its validation sessions (normal,
    held out of training), at the threshold it will be served with."""

    fpr: float
    sessions: int
    threshold: str  # e.g. "k = 9", "z = 7", for the message


class ValidationRefused(ModelError):
    """Publishing refused: the validation false-positive rate says the version would only raise noise."""


def validation_gate(model: str, figure: ValidationFpr, max_fpr: float, force: bool) -> str | None:
    """Whether a trained version may be published: None when it may without comment, a loud warning
    (returned, for the command to print) above `max_fpr`, ValidationRefused when every validation
    session is flagged, unless `force`."""
    if not 0.0 <= max_fpr <= 1.0:
        raise ConfigError(f"publish {model}: max validation FPR {max_fpr!r} is not within [0, 1]")
    if figure.sessions == 0 or math.isnan(figure.fpr):
        return (
            f"WARNING: {model} has no validation figure at {figure.threshold}, so its false-positive "
            "rate is unknown; "
            "train on more sessions (or a larger --validation-fraction)"
        )
    if figure.fpr <= max_fpr:
        return None
    what = (
        f"{model} flags {figure.fpr:.1%} of its {figure.sessions} validation sessions (normal, held out) "
        f"at {figure.threshold}, above the {max_fpr:.1%} allowed"
    )
    if figure.fpr >= 1.0 and not force:
        raise ValidationRefused(
            f"publish: {what}: every normal session would alert, so this version is not published. "
            "Train on more (or cleaner) normal sessions, or pass --force to publish it anyway"
        )
    return (
        f"WARNING: {what}; expect many false alerts. Train on more normal sessions, or raise "
        "--publish-max-fpr (LOGAD_PUBLISH_MAX_VALIDATION_FPR) if this is expected"
        + (" (published with --force)" if figure.fpr >= 1.0 else "")
    )
