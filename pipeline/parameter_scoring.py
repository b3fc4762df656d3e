"""In-process `ParameterScorer`: DeepLog's parameter value model as its exported TorchScript module.

The feature schema and h are read from the loaded module's own buffers (`schema_of`), so the
vectors a worker builds always fit the version that scores them. Versions come from a
`VersionFollower` over the model repository (newer versions are followed without a restart) or,
for evaluation and tests, from `FixedVersion`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.errors import InferenceError
from pipeline.parameter_features import FeatureSchema
from pipeline.scoring import VersionFollower


@dataclass(frozen=True)
class ParameterBatch:
    """Per event: its key `(B, 1)` int64, the key's previous h vectors `(B, h, D)` and its own vector
    `(B, D)`, float32 raw values right-padded with 0; built with the schema of model `version`."""

    template_id: np.ndarray
    history: np.ndarray
    observed: np.ndarray
    version: int

    def __post_init__(self) -> None:
        t, h, o = self.template_id, self.history, self.observed
        ok = (
            t.dtype == np.int64
            and h.dtype == np.float32
            and o.dtype == np.float32
            and t.ndim == 2
            and t.shape[1] == 1
            and h.ndim == 3
            and h.shape[0] == t.shape[0]
            and o.shape == (t.shape[0], h.shape[2])
        )
        if not ok:
            raise InferenceError(
                f"parameter batch: expected template_id (B, 1) int64, history (B, h, D) and observed (B, D) "
                f"float32, got {t.shape} {t.dtype}, {h.shape} {h.dtype}, {o.shape} {o.dtype}"
            )

    def __len__(self) -> int:
        return int(self.template_id.shape[0])


@dataclass(frozen=True)
class ParameterScores:
    """Per event: error and threshold `(B, 1)` float32, anomalous `(B, 1)` bool, and the range `(B, D)`
    (raw units) each feature alone could take within the threshold."""

    error: np.ndarray
    threshold: np.ndarray
    anomalous: np.ndarray
    expected_low: np.ndarray
    expected_high: np.ndarray
    model: str
    version: int

    def __len__(self) -> int:
        return int(self.anomalous.shape[0])


@dataclass(frozen=True)
class ParameterModelInfo:
    """What a caller needs to build a `ParameterBatch` for one version: h and the feature schema."""

    model: str
    version: int
    window_size: int
    schema: FeatureSchema


class ParameterScorer(Protocol):
    """DeepLog's parameter value model. `score` answers with the version it holds; a batch built for
    another version (see `current`) is answered with that version and no row anomalous."""

    async def current(self) -> ParameterModelInfo: ...

    async def score(self, batch: ParameterBatch) -> ParameterScores: ...


class VersionSource(Protocol):
    """Something that hands out the version to use for one call (`.module`, `.version`)."""

    name: str

    async def current(self) -> Any: ...


@dataclass(frozen=True)
class FixedVersion:
    """One module as a version source that never changes (offline evaluation, tests)."""

    name: str
    module: Any
    version: int = 1

    async def current(self) -> FixedVersion:
        return self


class TorchScriptParameterScorer:
    """Scores parameter value vectors with the module of the version its source holds."""

    def __init__(self, source: VersionSource) -> None:
        self.source = source
        self._info: ParameterModelInfo | None = None

    @classmethod
    def from_repo(
        cls, repo: Path, name: str, clock: Callable[[], float], reload_interval_s: float = 30.0
    ) -> TorchScriptParameterScorer:
        return cls(VersionFollower(repo, name, clock, reload_interval_s))

    async def current(self) -> ParameterModelInfo:
        from pipeline.models.parameters import schema_of

        loaded = await self.source.current()
        version = int(loaded.version)
        if self._info is None or self._info.version != version:
            module = loaded.module
            self._info = ParameterModelInfo(
                self.source.name, version, int(module.window_size), schema_of(module)
            )
        return self._info

    async def score(self, batch: ParameterBatch) -> ParameterScores:
        loaded = await self.source.current()
        version = int(loaded.version)
        if version != batch.version or len(batch) == 0:
            return unscored(batch, self.source.name, version)
        outputs = await asyncio.to_thread(_run, loaded.module, batch)
        return ParameterScores(*outputs, model=self.source.name, version=version)


def _run(module: Any, batch: ParameterBatch) -> tuple[np.ndarray, ...]:
    import torch

    try:
        with torch.inference_mode():
            outputs = module(
                torch.from_numpy(batch.template_id),
                torch.from_numpy(batch.history),
                torch.from_numpy(batch.observed),
            )
    except RuntimeError as exc:
        raise InferenceError(
            f"parameter scoring: TorchScript module failed on a batch of {len(batch)}: {exc}"
        ) from exc
    error, threshold, anomalous, low, high = (o.numpy() for o in outputs)
    return (
        error.astype(np.float32),
        threshold.astype(np.float32),
        anomalous.astype(bool),
        low.astype(np.float32),
        high.astype(np.float32),
    )


def unscored(batch: ParameterBatch, model: str, version: int) -> ParameterScores:
    """The answer to a batch built for another version: every row normal, tagged with this version."""
    rows, width = len(batch), batch.observed.shape[1]
    zeros = np.zeros((rows, 1), np.float32)
    ranges = np.zeros((rows, width), np.float32)
    return ParameterScores(
        zeros, zeros.copy(), np.zeros((rows, 1), bool), ranges, ranges.copy(), model, version
    )
