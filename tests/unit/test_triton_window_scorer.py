"""`TritonWindowClassScorer` against an in-memory client: chunking, class names per version, retries."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.adapters.triton import InferResult, TritonWindowClassScorer
from pipeline.errors import InferenceError
from pipeline.scoring import WindowClassBatch


class FakeClient:
    """Answers class = first template id % 2 and distances (B, 2); fails the first `failures` calls."""

    def __init__(self, versions: Sequence[int], failures: int = 0) -> None:
        self.versions = list(versions)
        self.failures = failures
        self.sizes: list[int] = []

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> InferResult:
        if self.failures:
            self.failures -= 1
            raise InferenceError("triton: connection refused")
        ids = inputs["template_ids"]
        assert ids.dtype == np.int64 and inputs["counts"].dtype == np.float32
        self.sizes.append(len(ids))
        index = (ids[:, :1] % 2).astype(np.int64)
        distances = np.concatenate([index, 1 - index], axis=1).astype(np.float32)
        version = self.versions.pop(0) if len(self.versions) > 1 else self.versions[0]
        return InferResult(model, version, {"class_index": index, "distances": distances})

    async def close(self) -> None:
        return None


def make(client: FakeClient, max_batch_size: int = 2) -> tuple[TritonWindowClassScorer, list[int]]:
    asked: list[int] = []

    def names(version: int) -> tuple[str, ...]:
        asked.append(version)
        return ("normal", f"A{version}")

    scorer = TritonWindowClassScorer("unused:1", "protosiamese", names, max_batch_size, max_backoff_s=0.01)
    scorer.client = client  # type: ignore[assignment]
    return scorer, asked


BATCH = WindowClassBatch(
    np.array([[2, 3], [5, 0], [7, 0], [4, 0], [9, 8]], dtype=np.int64), np.ones((5, 2), dtype=np.float32)
)


def test_batch_is_split_by_max_batch_size_and_names_come_from_the_answering_version() -> None:
    client = FakeClient([4])
    scorer, asked = make(client)
    scores = asyncio.run(scorer.score(BATCH))
    assert client.sizes == [2, 2, 1]
    assert scores.class_index[:, 0].tolist() == [0, 1, 1, 0, 1] and scores.distances.shape == (5, 2)
    assert (scores.version, scores.class_names, scores.model) == (4, ("normal", "A4"), "protosiamese")
    asyncio.run(scorer.score(BATCH))
    assert asked == [4]  # metadata read once per version


def test_a_version_change_inside_a_batch_asks_again() -> None:
    client = FakeClient([4, 5, 5, 5, 5, 5])
    scorer, _ = make(client)
    scores = asyncio.run(scorer.score(BATCH))
    assert scores.version == 5 and client.sizes == [2, 2, 1, 2, 2, 1]


def test_triton_down_is_retried_and_reported_degraded() -> None:
    client = FakeClient([1], failures=2)
    scorer, _ = make(client, max_batch_size=8)
    states: list[bool] = []
    scorer.on_degraded = states.append
    scores = asyncio.run(scorer.score(BATCH))
    assert len(scores.class_index) == 5 and client.sizes == [5]
    assert states[0] and not states[-1]  # degraded while failing, recovered after
