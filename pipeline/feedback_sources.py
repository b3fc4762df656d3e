"""Where feedback records come from: a marked alert with its model version, or a file a client wrote.

A record names the template set its ids mean something in; for a published version that is the
digest of the parser's template ids (`templates.json`), or of the vocabulary for a version without a
parser. The window size is the version's, so an alert's unpadded window can be padded back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from pipeline.alerts import Alert, decode_alert
from pipeline.errors import DataError, ModelError
from pipeline.feedback import FeedbackRecord, feedback_from_dict, template_set_digest
from pipeline.model_repository import list_versions, read_metadata
from pipeline.version_checks import TEMPLATES_FILE


@dataclass(frozen=True)
class VersionContext:
    """What a feedback record needs from the version that raised the alert."""

    model: str
    version: int
    window_size: int
    template_set: str


def version_context(repo: Path, model: str, version: int) -> VersionContext:
    """The window size and template-set digest of a published version (ModelError if it is gone)."""
    if version not in list_versions(repo, model):
        raise ModelError(
            f"feedback: model {model} version {version} is not in the model repository {repo}; the alert "
            "came from a version that was removed, or LOGAD_MODEL_REPO points elsewhere"
        )
    metadata = read_metadata(repo, model, version)
    if (repo / model / str(version) / TEMPLATES_FILE).exists():
        from pipeline.deployment import load_template_set

        ids: list[int] = list(load_template_set(repo, model, version).texts)
    else:
        ids = [int(i) for i in metadata.get("vocabulary", [])]
    return VersionContext(model, version, int(metadata.get("window_size", 0)), template_set_digest(ids))


def read_feedback_file(path: Path) -> list[FeedbackRecord]:
    """Records from a JSON array or JSON lines; a bad one raises DataError naming its place."""
    text = Path(path).read_bytes()
    stripped = text.lstrip()
    if stripped.startswith(b"["):
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise DataError(f"feedback file {path}: not a JSON array ({exc})") from exc
        places = [f"{path} item {i}" for i in range(len(items))]
    else:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        items, places = [], []
        for number, line in lines:
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise DataError(f"feedback file {path}:{number}: not JSON ({exc})") from exc
            places.append(f"{path}:{number}")
    records = []
    for item, place in zip(items, places, strict=True):
        try:
            records.append(feedback_from_dict(item))
        except DataError as exc:
            raise DataError(f"{place}: {exc}") from exc
    return records


MIN_ID_PREFIX = 8  # `logad tail` shows the first 8 characters of an alert id


def find_alert(values: Iterable[bytes | None], wanted: str) -> Alert | None:
    """The last alert whose id is `wanted`, or starts with it (at least 8 characters, as `logad tail`
    shows ids), among `log-anomalies` values; DataError when a prefix names two alerts. Undecodable
    values are skipped: they are not the alert asked for, and `logad tail` reports them."""
    if len(wanted) < MIN_ID_PREFIX:
        raise DataError(f"feedback: alert id {wanted!r} is too short; give {MIN_ID_PREFIX}+ characters")
    found: dict[str, Alert] = {}
    needle = wanted.encode("utf-8")
    for value in values:
        if not value or needle not in value:
            continue
        try:
            alert = decode_alert(value)
        except DataError:
            continue
        if alert.alert_id.startswith(wanted):
            found[alert.alert_id] = alert
    if len(found) > 1:
        raise DataError(
            f"feedback: {wanted!r} starts {len(found)} alert ids ({', '.join(sorted(found))}); give more"
        )
    return next(iter(found.values()), None)
