"""Triton over gRPC: model control (load after publishing) and async batched inference."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from pipeline.errors import InferenceError, InfrastructureError, ModelError
from pipeline.parameter_scoring import ParameterBatch, ParameterModelInfo, ParameterScores, unscored
from pipeline.scoring import LruCache, NextEventBatch, NextEventScores, WindowClassBatch, WindowClassScores

log = logging.getLogger(__name__)

T = TypeVar("T")


def server_live(grpc_url: str, timeout_s: float = 3.0) -> bool:
    """Whether a Triton server answers at `grpc_url` (alive; its models may still be loading)."""
    try:
        client = grpcclient.InferenceServerClient(grpc_url)
    except InferenceServerException:
        return False
    try:
        return bool(client.is_server_live(client_timeout=timeout_s))
    except InferenceServerException:
        return False
    finally:
        client.close()


def load_model(grpc_url: str, name: str, timeout_s: float = 120.0) -> int:
    """Ask Triton to (re)load `name`; returns the version now serving.

    Triton keeps the previous version serving when the new one fails to load (a corrupt checksum
    makes the runner refuse), so a failed load raises ModelError and changes nothing.
    """
    client = grpcclient.InferenceServerClient(grpc_url)
    try:
        client.load_model(name, client_timeout=timeout_s)
    except InferenceServerException as exc:
        raise ModelError(f"triton: loading {name} failed: {exc.message()}") from exc
    finally:
        client.close()
    return serving_version(grpc_url, name)


def serving_version(grpc_url: str, name: str) -> int:
    client = grpcclient.InferenceServerClient(grpc_url)
    try:
        index = client.get_model_repository_index(as_json=True).get("models", [])
    except InferenceServerException as exc:
        raise InfrastructureError(
            f"triton: repository index unavailable at {grpc_url}: {exc.message()}"
        ) from exc
    finally:
        client.close()
    ready = [int(m["version"]) for m in index if m.get("name") == name and m.get("state") == "READY"]
    if not ready:
        raise ModelError(f"triton: no READY version of {name} at {grpc_url}; publish one with `logad train`")
    return max(ready)


def serving_version_or_none(grpc_url: str, name: str) -> int | None:
    """`serving_version`, or None when no version serves or Triton cannot say."""
    try:
        return serving_version(grpc_url, name)
    except (InfrastructureError, ModelError):
        return None


@dataclass(frozen=True)
class InferResult:
    model: str
    version: int
    outputs: dict[str, np.ndarray]


class AsyncTritonClient:
    """One async gRPC channel; `infer` sends a whole batch as one request."""

    def __init__(self, grpc_url: str, timeout_s: float = 30.0) -> None:
        self.grpc_url = grpc_url
        self.timeout_s = timeout_s
        self._client: aioclient.InferenceServerClient | None = None

    def _get(self) -> aioclient.InferenceServerClient:
        if self._client is None:
            self._client = aioclient.InferenceServerClient(self.grpc_url)
        return self._client

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> InferResult:
        request_inputs = []
        for name, array in inputs.items():
            tensor = aioclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            request_inputs.append(tensor)
        requested = [aioclient.InferRequestedOutput(name) for name in outputs]
        try:
            response = await self._get().infer(
                model, request_inputs, outputs=requested, client_timeout=self.timeout_s
            )
        except InferenceServerException as exc:
            raise InferenceError(
                f"triton: inference on {model} at {self.grpc_url} failed: {exc.message()}"
            ) from exc
        except (TimeoutError, OSError) as exc:
            raise InferenceError(f"triton: inference on {model} at {self.grpc_url} failed: {exc!r}") from exc
        proto = response.get_response()
        return InferResult(
            model=model,
            version=int(proto.model_version),
            outputs={name: response.as_numpy(name) for name in outputs},
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class TritonNextEventScorer:
    """`NextEventScorer` over Triton gRPC: one request per batch, distinct rows only, cached by version.

    While Triton is unreachable, `score` retries with capped exponential backoff and logs that the
    pipeline is degraded: the stream waits (nothing is lost) and resumes when Triton returns. A batch
    is always answered by one version: if the serving version changes, cached rows are dropped and
    the whole batch is asked again. `usable(version)` raises ModelError for a version the worker
    cannot serve (`pipeline.deployment.servable_check`); such answers are dropped and retried like
    failures, so no batch is scored by a version whose template set the worker does not hold.
    """

    OUTPUTS = ("topk_ids", "topk_probs", "next_known", "anomalous")

    def __init__(
        self,
        grpc_url: str,
        model: str,
        cache_size: int = 100_000,
        max_backoff_s: float = 5.0,
        on_degraded: Callable[[bool], None] | None = None,
        usable: Callable[[int], None] | None = None,
    ) -> None:
        self.client = AsyncTritonClient(grpc_url)
        self.model = model
        self.usable = usable
        self.cache: LruCache[bytes, tuple[np.ndarray, ...]] = LruCache(cache_size)
        self.cache_version: int | None = None
        self.max_backoff_s = max_backoff_s
        self.on_degraded = on_degraded or (lambda degraded: None)
        self.calls = 0
        self.rows_sent = 0

    async def score(self, batch: NextEventBatch) -> NextEventScores:
        keys = [row.tobytes() for row in np.concatenate([batch.window, batch.next_event], axis=1)]
        rows = [self.cache.get(k) for k in keys]
        while True:
            todo: dict[bytes, int] = {}
            for i, (key, row) in enumerate(zip(keys, rows, strict=True)):
                if row is None:
                    todo.setdefault(key, i)
            if not todo:
                break
            result = await self._infer_retrying(batch, list(todo.values()))
            if result.version != self.cache_version:
                self.cache.clear()
                changed = self.cache_version is not None
                self.cache_version = result.version
                if changed and len(todo) < len(set(keys)):
                    # Some rows came from the old version's cache: ask again, so one version answers all.
                    log.info(
                        "triton %s: now serving version %d; rescoring the batch", self.model, result.version
                    )
                    rows = [None] * len(keys)
                    continue
            fresh = {
                key: tuple(result.outputs[name][j] for name in self.OUTPUTS) for j, key in enumerate(todo)
            }
            for key, row in fresh.items():
                self.cache.put(key, row)
            rows = [row if row is not None else fresh[key] for key, row in zip(keys, rows, strict=True)]
            break
        full = [row for row in rows if row is not None]
        return NextEventScores(
            topk_ids=np.stack([r[0] for r in full]).astype(np.int64),
            topk_probs=np.stack([r[1] for r in full]).astype(np.float32),
            next_known=np.stack([r[2] for r in full]).reshape(-1, 1).astype(bool),
            anomalous=np.stack([r[3] for r in full]).reshape(-1, 1).astype(bool),
            model=self.model,
            version=int(self.cache_version or 0),
        )

    async def _infer_retrying(self, batch: NextEventBatch, indices: list[int]) -> InferResult:
        inputs = {"window": batch.window[indices], "next_event": batch.next_event[indices]}
        result = await infer_retrying(
            self.client, self.model, inputs, self.OUTPUTS, self.max_backoff_s, self.on_degraded, self.usable
        )
        self.calls += 1
        self.rows_sent += len(indices)
        return result

    async def close(self) -> None:
        await self.client.close()


async def infer_retrying(
    client: AsyncTritonClient,
    model: str,
    inputs: Mapping[str, np.ndarray],
    outputs: Sequence[str],
    max_backoff_s: float,
    on_degraded: Callable[[bool], None],
    usable: Callable[[int], None] | None = None,
) -> InferResult:
    """`client.infer`, retried while Triton fails (`retrying`) or answers with a version `usable`
    refuses (ModelError)."""

    async def attempt() -> InferResult:
        result = await client.infer(model, inputs, outputs)
        if usable is not None:
            usable(result.version)
        return result

    return await retrying(attempt, model, max_backoff_s, on_degraded)


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    model: str,
    max_backoff_s: float,
    on_degraded: Callable[[bool], None],
    errors: tuple[type[Exception], ...] = (InferenceError, ModelError),
) -> T:
    """`attempt()`, retried with capped exponential backoff while it raises `errors`; never gives up.

    The stream waits rather than dropping events; `on_degraded(True)` on every failed attempt and
    `on_degraded(False)` on recovery drive the `logad_degraded` and failure-count metrics.
    """
    delay, failures = 0.1, 0
    while True:
        try:
            result = await attempt()
        except errors as exc:
            failures += 1
            on_degraded(True)  # every failed attempt: the metric counts them
            log.warning(
                "DEGRADED: %s; retry %d in %.1fs (events wait, nothing is dropped)", exc, failures, delay
            )
            await asyncio.sleep(delay)
            delay = min(max_backoff_s, delay * 2)
            continue
        if failures:
            log.warning("RECOVERED: triton %s answered again after %d failed attempts", model, failures)
            on_degraded(False)
        return result


class TritonWindowClassScorer:
    """`WindowClassScorer` over Triton gRPC (ProtoSiamese): a batch of windows in as few requests as
    `max_batch_size` allows, retried like `TritonNextEventScorer`.

    Class names are not a tensor: `class_names(version)` reads them for the version that answered
    (from its metadata.json in the model repository), cached per version. A batch split into several
    requests is asked again whole if the serving version changes between them, so one version
    answers every window of the batch.
    """

    OUTPUTS = ("class_index", "distances")

    def __init__(
        self,
        grpc_url: str,
        model: str,
        class_names: Callable[[int], tuple[str, ...]],
        max_batch_size: int = 1024,
        max_backoff_s: float = 5.0,
        on_degraded: Callable[[bool], None] | None = None,
        usable: Callable[[int], None] | None = None,
    ) -> None:
        self.client = AsyncTritonClient(grpc_url)
        self.model = model
        self.usable = usable
        self.class_names = class_names
        self.max_batch_size = max_batch_size
        self.max_backoff_s = max_backoff_s
        self.on_degraded = on_degraded or (lambda degraded: None)
        self._names: dict[int, tuple[str, ...]] = {}
        self.calls = 0

    async def score(self, batch: WindowClassBatch) -> WindowClassScores:
        if len(batch) == 0:
            empty = np.zeros((0, 1), dtype=np.int64)
            return WindowClassScores(empty, np.zeros((0, 0), dtype=np.float32), (), self.model, 0)
        for _ in range(3):
            parts = [
                await self._infer(batch, start, min(start + self.max_batch_size, len(batch)))
                for start in range(0, len(batch), self.max_batch_size)
            ]
            versions = {p.version for p in parts}
            if len(versions) == 1:
                version = parts[0].version
                return WindowClassScores(
                    class_index=np.concatenate([p.outputs["class_index"] for p in parts])
                    .reshape(-1, 1)
                    .astype(np.int64),
                    distances=np.concatenate([p.outputs["distances"] for p in parts]).astype(np.float32),
                    class_names=self._class_names(version),
                    model=self.model,
                    version=version,
                )
            log.info("triton %s: version changed within a batch (%s); asking again", self.model, versions)
        raise InferenceError(
            f"triton {self.model}: serving version kept changing while scoring one batch of {len(batch)}"
        )

    async def _infer(self, batch: WindowClassBatch, start: int, stop: int) -> InferResult:
        inputs = {"template_ids": batch.template_ids[start:stop], "counts": batch.counts[start:stop]}
        result = await infer_retrying(
            self.client, self.model, inputs, self.OUTPUTS, self.max_backoff_s, self.on_degraded, self.usable
        )
        self.calls += 1
        return result

    def _class_names(self, version: int) -> tuple[str, ...]:
        names = self._names.get(version)
        if names is None:
            names = self._names[version] = self.class_names(version)
        return names

    async def close(self) -> None:
        await self.client.close()


class TritonParameterScorer:
    """`ParameterScorer` over Triton gRPC: DeepLog's parameter value model, one request per batch.

    h and the feature schema of a version are not tensors: `info_of(version)` reads them from that
    version in the model repository (cached per version). The version a batch is built for is the one
    Triton answered last (at first, the one it serves); a batch answered by another version, or
    refused because a new version's tensors no longer fit it, is answered unscored (every row normal)
    and the next batch is built for the new version, as the in-process scorer does. While Triton is
    unreachable, calls are retried like `TritonNextEventScorer`'s.
    """

    OUTPUTS = ("error", "threshold", "anomalous", "expected_low", "expected_high")

    def __init__(
        self,
        grpc_url: str,
        model: str,
        info_of: Callable[[int], ParameterModelInfo],
        max_backoff_s: float = 5.0,
        on_degraded: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = AsyncTritonClient(grpc_url)
        self.grpc_url, self.model, self.info_of = grpc_url, model, info_of
        self.max_backoff_s = max_backoff_s
        self.on_degraded = on_degraded or (lambda degraded: None)
        self._version: int | None = None
        self._infos: dict[int, ParameterModelInfo] = {}

    async def current(self) -> ParameterModelInfo:
        if self._version is None:
            # Triton not up, or the model not loaded yet: wait, as for inference.
            self._version = await retrying(
                lambda: asyncio.to_thread(serving_version, self.grpc_url, self.model),
                self.model,
                self.max_backoff_s,
                self.on_degraded,
                errors=(InfrastructureError, ModelError),
            )
        info = self._infos.get(self._version)
        if info is None:
            version = self._version
            # A version info_of refuses (not servable) is waited out like a missing one.
            info = self._infos[version] = await retrying(
                lambda: asyncio.to_thread(self.info_of, version),
                self.model,
                self.max_backoff_s,
                self.on_degraded,
                errors=(ModelError,),
            )
        return info

    async def score(self, batch: ParameterBatch) -> ParameterScores:
        if len(batch) == 0:
            return unscored(batch, self.model, batch.version)
        inputs = {"template_id": batch.template_id, "history": batch.history, "observed": batch.observed}
        try:
            result = await self.client.infer(self.model, inputs, self.OUTPUTS)
        except (InferenceError, ModelError):
            serving = await asyncio.to_thread(serving_version_or_none, self.grpc_url, self.model)
            if serving is not None and serving != batch.version:
                self._version = serving
                return unscored(batch, self.model, serving)
            result = await infer_retrying(
                self.client, self.model, inputs, self.OUTPUTS, self.max_backoff_s, self.on_degraded
            )
        self._version = result.version
        if result.version != batch.version:
            return unscored(batch, self.model, result.version)
        error, threshold, anomalous, low, high = (result.outputs[name] for name in self.OUTPUTS)
        return ParameterScores(
            error.reshape(-1, 1).astype(np.float32),
            threshold.reshape(-1, 1).astype(np.float32),
            anomalous.reshape(-1, 1).astype(bool),
            low.astype(np.float32),
            high.astype(np.float32),
            model=self.model,
            version=result.version,
        )

    async def close(self) -> None:
        await self.client.close()
