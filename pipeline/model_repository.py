"""The Triton model repository on disk: versioned, checksummed, atomically published model versions.

Layout: `<repo>/<model>/config.pbtxt` and `<repo>/<model>/<N>/{model.pt, model.py, metadata.json}`.
`model.py` is the generic Python-backend runner (`pipeline/adapters/triton_runner.py`); the same
version directory is what the in-process TorchScript backend loads, so both backends always serve
byte-identical models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipeline import triton_config
from pipeline.errors import ModelError
from pipeline.triton_config import PYTHON_CPU, ServingLayout
from pipeline.version_checks import UNSERVABLE_KEY, require_servable

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
RUNNER_FILE = "model.py"
METADATA_FILE = "metadata.json"
CONFIG_FILE = "config.pbtxt"
RUNNER_SOURCE = Path(__file__).parent / "adapters" / "triton_runner.py"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output; `dims` exclude the batch dimension, -1 is variable; dtype is Triton's."""

    name: str
    dtype: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int = 4096
    max_queue_delay_us: int = 2000
    instance_count: int = 1
    parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_io(cls, name: str, io: Mapping[str, Any], max_batch_size: int = 4096) -> ModelSpec:
        """From a model module's `io_spec()`: {"inputs": [(name, dtype, dims)], "outputs": [...]}."""
        return cls(
            name=name,
            inputs=tuple(TensorSpec(*t) for t in io["inputs"]),
            outputs=tuple(TensorSpec(*t) for t in io["outputs"]),
            max_batch_size=max_batch_size,
        )


@dataclass(frozen=True)
class PublishedVersion:
    name: str
    version: int
    path: Path
    sha256: str


@dataclass(frozen=True)
class LoadedVersion:
    name: str
    version: int
    module: torch.jit.ScriptModule
    metadata: dict[str, Any]
    path: Path


def render_config(spec: ModelSpec) -> str:
    """config.pbtxt for the Python-backend runner (`pipeline.triton_config` has both layouts)."""
    return triton_config.render_config(spec)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_versions(repo: Path, name: str) -> list[int]:
    """Complete versions of a model (a directory named by an integer holding metadata.json), ascending."""
    model_dir = Path(repo) / name
    if not model_dir.is_dir():
        return []
    versions = [
        int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and (p / METADATA_FILE).is_file()
    ]
    return sorted(versions)


def latest_version(repo: Path, name: str) -> int | None:
    versions = list_versions(repo, name)
    return versions[-1] if versions else None


def publish_version(
    repo: Path,
    spec: ModelSpec,
    scripted: torch.jit.ScriptModule,
    metadata: dict[str, Any],
    extra_files: dict[str, bytes] | None = None,
    unservable_reason: str | None = None,
    layout: ServingLayout = PYTHON_CPU,
) -> PublishedVersion:
    """Write `<repo>/<name>/<N+1>/` atomically (build in a temporary directory, then rename), and
    the model's config.pbtxt for `layout` (`pipeline.triton_config`).

    A reader never sees a half-written version: the directory appears complete or not at all.
    `extra_files` travel with the version (e.g. `templates.json`, the parser state the model was
    trained with), and their sha256 sums are recorded in the metadata.

    A version a worker could not serve (`pipeline.version_checks`: e.g. a next-event model without
    `templates.json`) is refused with ModelError before anything is written. `unservable_reason`
    publishes it anyway for offline use (a benchmark, a test): the reason is recorded in its
    metadata, and workers and `NewestServable` never serve it.
    """
    if unservable_reason is None:
        require_servable("publish", spec.name, metadata, extra_files or {})
    else:
        log.warning("publishing %s as not servable: %s", spec.name, unservable_reason)
        metadata = {**metadata, UNSERVABLE_KEY: unservable_reason}
    if not layout.verifies_itself:
        check_forward_arguments(spec, scripted)
    model_dir = Path(repo) / spec.name
    model_dir.mkdir(parents=True, exist_ok=True)
    if layout.verifies_itself:
        _write_atomic(model_dir / CONFIG_FILE, triton_config.render_config(spec, layout).encode())
    tmp = Path(tempfile.mkdtemp(prefix=".publishing-", dir=model_dir))
    try:
        torch.jit.save(scripted, str(tmp / MODEL_FILE))
        shutil.copyfile(RUNNER_SOURCE, tmp / RUNNER_FILE)
        digest = sha256_file(tmp / MODEL_FILE)
        extra_sums = {}
        for file_name, data in (extra_files or {}).items():
            if "/" in file_name or file_name in {MODEL_FILE, RUNNER_FILE, METADATA_FILE}:
                raise ModelError(f"publish {spec.name}: extra file name {file_name!r} is not allowed")
            (tmp / file_name).write_bytes(data)
            extra_sums[file_name] = hashlib.sha256(data).hexdigest()
        for _ in range(100):
            version = (latest_version(repo, spec.name) or 0) + 1
            meta = {
                **metadata,
                "model": spec.name,
                "version": version,
                "sha256": digest,
                "files": extra_sums,
                "inputs": [t.name for t in spec.inputs],
                "outputs": [t.name for t in spec.outputs],
            }
            (tmp / METADATA_FILE).write_bytes(
                json.dumps(meta, indent=2, sort_keys=True, default=str).encode()
            )
            target = model_dir / str(version)
            try:
                os.rename(tmp, target)  # atomic on one filesystem; fails if another publisher won the race
            except OSError:
                if target.exists():
                    continue
                raise
            log.info("published %s version %d (sha256 %s)", spec.name, version, digest[:12])
            if not layout.verifies_itself:
                write_pinned_config(repo, spec, layout)
            return PublishedVersion(spec.name, version, target, digest)
        raise ModelError(f"publish {spec.name}: could not claim a version number in {model_dir}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_metadata(repo: Path, name: str, version: int) -> dict[str, Any]:
    path = Path(repo) / name / str(version) / METADATA_FILE
    try:
        return dict(json.loads(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {name} version {version}: unreadable {path}: {exc}") from exc


def verify_version(repo: Path, name: str, version: int) -> dict[str, Any]:
    """Check model.pt against the sha256 in metadata.json; return the metadata or raise ModelError."""
    metadata = read_metadata(repo, name, version)
    model_file = Path(repo) / name / str(version) / MODEL_FILE
    if not model_file.is_file():
        raise ModelError(f"model {name} version {version}: {model_file} is missing; republish the model")
    actual = sha256_file(model_file)
    if actual != metadata.get("sha256"):
        raise ModelError(
            f"model {name} version {version}: checksum mismatch (metadata {metadata.get('sha256')!s:.12}, "
            f"file {actual:.12}); refusing to load a corrupt or tampered model, republish it"
        )
    return metadata


def read_version_file(repo: Path, name: str, version: int, file_name: str) -> bytes:
    """An extra file of a version, verified against the sha256 recorded at publishing."""
    expected = read_metadata(repo, name, version).get("files", {}).get(file_name)
    path = Path(repo) / name / str(version) / file_name
    if expected is None or not path.is_file():
        raise ModelError(f"model {name} version {version}: no {file_name}; republish with it")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        raise ModelError(f"model {name} version {version}: {file_name} fails its checksum; republish")
    return data


def load_version(repo: Path, name: str, version: int | None = None) -> LoadedVersion:
    """Load a verified version (the newest when `version` is None) for in-process scoring."""
    if version is None:
        version = latest_version(repo, name)
        if version is None:
            raise ModelError(
                f"model {name}: no published version under {Path(repo) / name}; run `logad train {name}`"
            )
    metadata = verify_version(repo, name, version)
    path = Path(repo) / name / str(version)
    module = torch.jit.load(str(path / MODEL_FILE), map_location="cpu")
    module.eval()
    return LoadedVersion(name, version, module, metadata, path)


def check_servable(repo: Path, name: str, version: int) -> dict[str, Any]:
    """Whether a worker can serve this version: model.pt and every extra file match their sha256, and
    the version carries what its kind needs (`pipeline.version_checks`). Its metadata, or ModelError."""
    metadata = verify_version(repo, name, version)
    files = {
        file_name: read_version_file(repo, name, version, file_name)
        for file_name in metadata.get("files", {})
    }
    require_servable("serve", name, metadata, files)
    return metadata


class NewestServable:
    """The newest servable version of one model, for followers that ask every few seconds.

    Newer versions that are not servable are skipped: each is logged once per reason (WARNING), not
    at every look, and `on_unusable(name, count)` is told how many are skipped at each look (a
    gauge). The kind checks of a version whose metadata and file sums were seen before are not
    repeated (same sums, same bytes); the sha256 of model.pt is, as before.
    """

    def __init__(self, repo: Path, name: str, on_unusable: Callable[[str, int], None] | None = None) -> None:
        self.repo, self.name = Path(repo), name
        self.on_unusable = on_unusable or (lambda name, count: None)
        self._reported: dict[int, str] = {}  # version -> the reason logged for it
        self._servable: set[tuple[int, str]] = set()  # (version, sha256 of metadata.json) checked fine

    def __call__(self) -> int | None:
        skipped = 0
        found = None
        for version in reversed(list_versions(self.repo, self.name)):
            try:
                self._check(version)
            except ModelError as exc:
                skipped += 1
                if self._reported.get(version) != str(exc):
                    self._reported[version] = str(exc)
                    log.warning("%s; skipped, an older servable version serves on", exc)
                continue
            found = version
            break
        self.on_unusable(self.name, skipped)
        return found

    def _check(self, version: int) -> None:
        metadata = verify_version(self.repo, self.name, version)
        key = (version, sha256_file(self.repo / self.name / str(version) / METADATA_FILE))
        if key in self._servable:
            for file_name in metadata.get("files", {}):
                read_version_file(self.repo, self.name, version, file_name)
            return
        check_servable(self.repo, self.name, version)
        self._servable.add(key)


def check_forward_arguments(spec: ModelSpec, scripted: torch.jit.ScriptModule) -> None:
    """The libtorch backend binds inputs to `forward`'s arguments by name: the spec's input names must
    be those arguments, in order, or the version would fail to load (ModelError before writing)."""
    arguments = [a.name for a in scripted.forward.schema.arguments[1:]]  # without self
    declared = [t.name for t in spec.inputs]
    if arguments != declared:
        raise ModelError(
            f"publish {spec.name} for libtorch: config inputs {declared} are not the TorchScript forward "
            f"arguments {arguments}; name the spec's inputs after forward's arguments"
        )


def write_pinned_config(repo: Path, spec: ModelSpec, layout: ServingLayout) -> int | None:
    """config.pbtxt pinned to the newest version that passes `check_servable` (sha256 included), for
    a backend that loads without checking (libtorch); the pinned version, None when none passes
    (then the newest is named, as there is nothing verified to protect)."""
    pinned = newest_valid_version(repo, spec.name)
    config = triton_config.render_config(spec, layout, pinned)
    _write_atomic(Path(repo) / spec.name / CONFIG_FILE, config.encode())
    return pinned


def pinned_version(repo: Path, name: str) -> int | None:
    """The version a libtorch config.pbtxt pins (None: not pinned, or no config)."""
    import re

    path = Path(repo) / name / CONFIG_FILE
    text = path.read_text() if path.is_file() else ""
    found = re.search(r"specific:\s*\{\s*versions:\s*\[\s*(\d+)\s*\]", text)
    return int(found.group(1)) if found else None


def newest_valid_version(repo: Path, name: str) -> int | None:
    """The newest servable version (`check_servable`); newer unservable versions are skipped with a
    warning. For one-off lookups; followers keep a `NewestServable`, which warns once."""
    return NewestServable(repo, name)()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
