"""The scoring interface: batches in, scores out, one model version per call.

`NextEventScorer` (LAMA, DeepLog) and `WindowClassScorer` (ProtoSiamese) are the two contracts every
inference backend implements: the Triton adapter (`pipeline.adapters`) and the in-process TorchScript
scorers here, which load versions from the model repository and follow newer ones without a restart.
Scores always name the model and the single version that produced them, so an alert can name it too.
`ParameterScorer` is DeepLog's parameter value model (in-process: `pipeline.parameter_scoring`).
`FakeNextEventScorer` is an in-memory stand-in for tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from pipeline.errors import InferenceError, ModelError

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class NextEventBatch:
    """Windows `(B, L)` int64 left-padded with 0 and the events that followed them `(B, 1)` int64."""

    window: np.ndarray
    next_event: np.ndarray

    def __post_init__(self) -> None:
        w, n = self.window, self.next_event
        if w.dtype != np.int64 or n.dtype != np.int64 or w.ndim != 2 or n.shape != (w.shape[0], 1):
            raise InferenceError(
                f"next-event batch: expected window (B, L) int64 and next_event (B, 1) int64, got "
                f"{w.dtype}{w.shape} and {n.dtype}{n.shape}; build it with NextEventBatch.of"
            )

    @classmethod
    def of(
        cls, windows: Sequence[Sequence[int]], next_events: Sequence[int], window_size: int
    ) -> NextEventBatch:
        window = np.asarray(windows, dtype=np.int64).reshape(len(next_events), window_size)
        return cls(window, np.asarray(next_events, dtype=np.int64).reshape(-1, 1))

    def __len__(self) -> int:
        return int(self.window.shape[0])


@dataclass(frozen=True)
class NextEventScores:
    """Per row: top-k ids and probabilities, whether the next event is known, whether it is anomalous."""

    topk_ids: np.ndarray  # (B, K) int64
    topk_probs: np.ndarray  # (B, K) float32
    next_known: np.ndarray  # (B, 1) bool
    anomalous: np.ndarray  # (B, 1) bool
    model: str
    version: int

    def __len__(self) -> int:
        return int(self.anomalous.shape[0])


@dataclass(frozen=True)
class WindowClassBatch:
    """Per window: distinct template ids `(B, M)` int64 padded with 0, their counts `(B, M)` float32."""

    template_ids: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return int(self.template_ids.shape[0])


@dataclass(frozen=True)
class WindowClassScores:
    """Predicted class per window `(B, 1)` and distances to every class prototype `(B, C)`."""

    class_index: np.ndarray
    distances: np.ndarray
    class_names: tuple[str, ...]
    model: str
    version: int


class NextEventScorer(Protocol):
    """Scores a whole batch with exactly one model version."""

    async def score(self, batch: NextEventBatch) -> NextEventScores: ...


class WindowClassScorer(Protocol):
    async def score(self, batch: WindowClassBatch) -> WindowClassScores: ...


class LruCache(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry; hit/miss counts for metrics."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class VersionFollower:
    """Holds the loaded version of one model and swaps in a newer one, checking every `reload_interval_s`.

    The newest servable version is served, so removing a bad version rolls back to the previous one.
    `clock` is injected (seconds, monotonic); `loader(repo, name, version)` and `newest(repo, name)`
    default to `pipeline.model_repository.load_version` and a `NewestServable` of the model (newer
    versions a worker cannot serve, e.g. without `templates.json`, are skipped and logged once, so
    the module never runs ahead of the template set the parser follows). A newer version that fails
    to load (corrupt, half-copied) is logged and the current one keeps serving.
    """

    def __init__(
        self,
        repo: Path,
        name: str,
        clock: Callable[[], float],
        reload_interval_s: float = 30.0,
        loader: Callable[[Path, str, int | None], Any] | None = None,
        newest: Callable[[Path, str], int | None] | None = None,
    ) -> None:
        if loader is None or newest is None:
            from pipeline import model_repository

            loader = loader or model_repository.load_version
            if newest is None:
                scan = model_repository.NewestServable(Path(repo), name)
                newest = lambda _repo, _name: scan()  # noqa: E731 (one scan per follower: warns once)
        self.repo, self.name, self.reload_interval_s = Path(repo), name, reload_interval_s
        self._clock, self._loader, self._newest = clock, loader, newest
        self._loaded: Any = None
        self._checked_at: float | None = None
        self._failed_version: int | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> Any:
        """The loaded version (`.module`, `.metadata`, `.version`) to use for one whole call."""
        async with self._lock:
            now = self._clock()
            due = self._checked_at is None or now - self._checked_at >= self.reload_interval_s
            if self._loaded is None or due:
                self._checked_at = now
                await asyncio.to_thread(self._refresh)
            return self._loaded

    def _refresh(self) -> None:
        newest = self._newest(self.repo, self.name)
        have = None if self._loaded is None else int(self._loaded.version)
        # A lower newest version means the served one was withdrawn (a rollback): follow it, as Triton does.
        if newest is None or newest == have or newest == self._failed_version:
            if self._loaded is None:
                raise ModelError(
                    f"scoring {self.name}: no loadable version under {self.repo / self.name}; "
                    f"train and publish one (`logad train {self.name} --publish`)"
                )
            return
        try:
            loaded = self._loader(self.repo, self.name, newest)
        except ModelError as exc:
            if self._loaded is None:
                raise
            self._failed_version = newest
            log.warning("scoring %s: keeping version %s, newer one failed: %s", self.name, have, exc)
            return
        log.info("scoring %s: now serving version %s (was %s)", self.name, loaded.version, have)
        self._loaded = loaded


# Cached per row: (topk_ids (K,), topk_probs (K,), next_known, anomalous).
_Row = tuple[np.ndarray, np.ndarray, bool, bool]


class TorchScriptNextEventScorer:
    """In-process scoring with the exported TorchScript module (the embedded default, no Triton).

    Real windows repeat a lot (HDFS blocks follow a few paths), so rows are cached by
    (version, window, next event) in a bounded LRU and only distinct, unseen rows reach the model.
    """

    def __init__(self, follower: VersionFollower, cache_size: int = 100_000) -> None:
        self.follower = follower
        self.cache: LruCache[tuple[int, bytes], _Row] = LruCache(cache_size)
        self._cache_version: int | None = None

    @classmethod
    def from_repo(
        cls,
        repo: Path,
        name: str,
        clock: Callable[[], float],
        reload_interval_s: float = 30.0,
        cache_size: int = 100_000,
    ) -> TorchScriptNextEventScorer:
        return cls(VersionFollower(repo, name, clock, reload_interval_s), cache_size)

    async def score(self, batch: NextEventBatch) -> NextEventScores:
        loaded = await self.follower.current()
        version = int(loaded.version)
        if version != self._cache_version:
            self.cache.clear()
            self._cache_version = version
        keys = [(version, row.tobytes()) for row in np.concatenate([batch.window, batch.next_event], axis=1)]
        rows: list[_Row | None] = [self.cache.get(key) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        # Duplicate rows within the batch are computed once.
        first_of: dict[tuple[int, bytes], int] = {}
        for i in missing:
            first_of.setdefault(keys[i], i)
        todo = list(first_of.values())
        if todo:
            computed = await asyncio.to_thread(
                _run_next_event, loaded.module, batch.window[todo], batch.next_event[todo]
            )
            for i, row in zip(todo, computed, strict=True):
                self.cache.put(keys[i], row)
                rows[i] = row
            for i in missing:
                rows[i] = rows[first_of[keys[i]]]
        return _assemble(rows, batch, self.follower.name, version)


def _run_next_event(module: Any, window: np.ndarray, next_event: np.ndarray) -> list[_Row]:
    import torch

    try:
        with torch.inference_mode():
            ids, probs, known, anomalous = module(torch.from_numpy(window), torch.from_numpy(next_event))
    except RuntimeError as exc:
        raise InferenceError(
            f"scoring: TorchScript module failed on a batch of {len(window)}: {exc}"
        ) from exc
    ids_np, probs_np = ids.numpy().astype(np.int64), probs.numpy().astype(np.float32)
    known_np, anomalous_np = known.numpy().reshape(-1), anomalous.numpy().reshape(-1)
    return [(ids_np[i], probs_np[i], bool(known_np[i]), bool(anomalous_np[i])) for i in range(len(ids_np))]


def _assemble(
    rows: Sequence[_Row | None], batch: NextEventBatch, model: str, version: int
) -> NextEventScores:
    if not rows:
        empty = np.zeros((0, 0), dtype=np.int64)
        flags = np.zeros((0, 1), dtype=bool)
        return NextEventScores(empty, empty.astype(np.float32), flags, flags.copy(), model, version)
    full = [row for row in rows if row is not None]
    if len(full) != len(batch):
        raise InferenceError(f"scoring {model}: {len(batch) - len(full)} rows left unscored")
    return NextEventScores(
        topk_ids=np.stack([r[0] for r in full]),
        topk_probs=np.stack([r[1] for r in full]),
        next_known=np.asarray([[r[2]] for r in full], dtype=bool),
        anomalous=np.asarray([[r[3]] for r in full], dtype=bool),
        model=model,
        version=version,
    )


class TorchScriptWindowClassScorer:
    """In-process ProtoSiamese scoring; class names come from the version's metadata (`class_names`)."""

    def __init__(self, follower: VersionFollower) -> None:
        self.follower = follower

    async def score(self, batch: WindowClassBatch) -> WindowClassScores:
        loaded = await self.follower.current()
        names = loaded.metadata.get("class_names") or loaded.metadata.get("classes") or ()
        class_index, distances = await asyncio.to_thread(_run_window_class, loaded.module, batch)
        return WindowClassScores(
            class_index, distances, tuple(names), self.follower.name, int(loaded.version)
        )


def _run_window_class(module: Any, batch: WindowClassBatch) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.inference_mode():
        index, distances = module(torch.from_numpy(batch.template_ids), torch.from_numpy(batch.counts))
    return index.numpy().astype(np.int64), distances.numpy().astype(np.float32)


class FakeNextEventScorer:
    """Deterministic in-memory scorer: the expected next events depend on the last event of the window.

    `transitions[last_id]` lists the expected followers (most likely first; `0` is "session start").
    An id is known when it appears in `transitions`. Records the size of every call in `calls`.
    """

    def __init__(
        self, transitions: Mapping[int, Sequence[int]], k: int = 2, model: str = "fake", version: int = 1
    ) -> None:
        self.transitions = {int(a): [int(b) for b in bs] for a, bs in transitions.items()}
        self.known = {i for i in self.transitions if i} | {b for bs in self.transitions.values() for b in bs}
        self.k, self.model, self.version = k, model, version
        self.calls: list[int] = []

    async def score(self, batch: NextEventBatch) -> NextEventScores:
        self.calls.append(len(batch))
        ids = np.zeros((len(batch), self.k), dtype=np.int64)
        probs = np.zeros((len(batch), self.k), dtype=np.float32)
        known = np.zeros((len(batch), 1), dtype=bool)
        anomalous = np.zeros((len(batch), 1), dtype=bool)
        for i, (window, nxt) in enumerate(
            zip(batch.window.tolist(), batch.next_event[:, 0].tolist(), strict=True)
        ):
            last = next((w for w in reversed(window) if w), 0)
            expected = self.transitions.get(last, [])[: self.k]
            ids[i, : len(expected)] = expected
            probs[i, : len(expected)] = 1.0 / max(len(expected), 1)
            known[i, 0] = nxt in self.known
            anomalous[i, 0] = not known[i, 0] or nxt not in expected
        return NextEventScores(ids, probs, known, anomalous, self.model, self.version)
