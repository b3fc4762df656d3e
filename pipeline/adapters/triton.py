"""Triton over gRPC: model control (load after publishing) and async batched inference."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from pipeline.errors import InferenceError, InfrastructureError, ModelError

log = logging.getLogger(__name__)


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
