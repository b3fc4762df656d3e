from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from pipeline.errors import InferenceError, ModelError
from pipeline.model_repository import ModelSpec, TensorSpec, publish_version
from pipeline.scoring import (
    FakeNextEventScorer,
    LruCache,
    NextEventBatch,
    TorchScriptNextEventScorer,
    TorchScriptWindowClassScorer,
    VersionFollower,
    WindowClassBatch,
)

IDS = [3, 8, 15, 40, 2**52 - 5]
K = 2


class TinyNextEvent(nn.Module):
    """Implements the next-event contract: after id at vocab position p, expects p+shift, p+shift+1, ..."""

    def __init__(self, ids: list[int], k: int, shift: int) -> None:
        super().__init__()
        self.register_buffer("ids", torch.tensor(sorted(ids), dtype=torch.int64))
        self.k = k
        self.shift = shift

    def forward(self, window: Tensor, next_event: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n = self.ids.numel()
        pos = torch.searchsorted(self.ids, window[:, -1].contiguous())  # (B,)
        dist = (torch.arange(n).unsqueeze(0) - pos.unsqueeze(1) - self.shift) % n  # (B, n)
        probs = torch.softmax(-dist.float(), dim=1)
        topk_probs, topk_index = probs.topk(self.k, dim=1)  # (B, K)
        topk_ids = self.ids[topk_index]
        known = (self.ids.unsqueeze(0) == next_event).any(dim=1, keepdim=True)  # (B, 1)
        in_topk = (topk_ids == next_event).any(dim=1, keepdim=True)
        return topk_ids, topk_probs, known, ~known | ~in_topk


SPEC = ModelSpec(
    name="tiny",
    inputs=(TensorSpec("window", "INT64", (4,)), TensorSpec("next_event", "INT64", (1,))),
    outputs=(
        TensorSpec("topk_ids", "INT64", (K,)),
        TensorSpec("topk_probs", "FP32", (K,)),
        TensorSpec("next_known", "BOOL", (1,)),
        TensorSpec("anomalous", "BOOL", (1,)),
    ),
)


def publish(repo: Path, shift: int) -> int:
    return publish_version(repo, SPEC, torch.jit.script(TinyNextEvent(IDS, K, shift)), {"k": K}).version


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Counting:
    """Wraps a module to count the rows that reach it (to see the cache work)."""

    module: Any
    rows: list[int] = field(default_factory=list)

    def __call__(self, *args: Tensor) -> Any:
        self.rows.append(int(args[0].shape[0]))
        return self.module(*args)


def batch_of(rows: list[tuple[list[int], int]]) -> NextEventBatch:
    return NextEventBatch.of([w for w, _ in rows], [n for _, n in rows], 4)


ROWS = [([0, 0, 0, 3], 8), ([0, 3, 8, 15], 40), ([3, 8, 15, 40], 3), ([0, 0, 0, 40], 99), ([0, 0, 8, 8], 3)]


def test_scores_equal_the_eager_module(tmp_path: Path) -> None:
    publish(tmp_path, shift=1)
    scorer = TorchScriptNextEventScorer.from_repo(tmp_path, "tiny", Clock())
    batch = batch_of(ROWS)
    scores = asyncio.run(scorer.score(batch))
    ids, probs, known, anomalous = TinyNextEvent(IDS, K, 1)(
        torch.from_numpy(batch.window), torch.from_numpy(batch.next_event)
    )
    np.testing.assert_array_equal(scores.topk_ids, ids.numpy())
    np.testing.assert_allclose(scores.topk_probs, probs.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(scores.next_known, known.numpy())
    np.testing.assert_array_equal(scores.anomalous, anomalous.numpy())
    assert (scores.model, scores.version, len(scores)) == ("tiny", 1, 5)
    assert scores.anomalous[:, 0].tolist() == [False, False, False, True, True]
    assert scores.topk_ids.dtype == np.int64 and scores.topk_probs.dtype == np.float32


def test_cache_sends_each_distinct_row_once(tmp_path: Path) -> None:
    publish(tmp_path, shift=1)
    follower = VersionFollower(tmp_path, "tiny", Clock())
    scorer = TorchScriptNextEventScorer(follower, cache_size=100)
    loaded = asyncio.run(follower.current())
    counting = Counting(loaded.module)
    object.__setattr__(loaded, "module", counting)
    first = asyncio.run(scorer.score(batch_of([*ROWS, ROWS[0], ROWS[1]])))
    second = asyncio.run(scorer.score(batch_of([ROWS[2], ROWS[0]])))
    assert counting.rows == [5]
    np.testing.assert_array_equal(second.topk_ids, first.topk_ids[[2, 0]])
    assert scorer.cache.hits == 2 and len(scorer.cache) == 5


@pytest.mark.parametrize(
    ("max_entries", "puts", "kept"),
    [(2, ["a", "b", "c"], ["b", "c"]), (3, ["a", "b", "a", "c", "d"], ["a", "c", "d"]), (0, ["a"], [])],
)
def test_lru_cache(max_entries: int, puts: list[str], kept: list[str]) -> None:
    cache: LruCache[str, int] = LruCache(max_entries)
    for i, key in enumerate(puts):
        if cache.get(key) is None:
            cache.put(key, i)
    assert [k for k in "abcd" if k in cache._entries] == kept


def test_follows_a_new_version_after_the_reload_interval(tmp_path: Path) -> None:
    publish(tmp_path, shift=1)
    clock = Clock()
    scorer = TorchScriptNextEventScorer.from_repo(tmp_path, "tiny", clock, reload_interval_s=30.0)
    batch = batch_of(ROWS[:1])
    before = asyncio.run(scorer.score(batch))
    assert publish(tmp_path, shift=3) == 2
    clock.now = 29.0
    assert asyncio.run(scorer.score(batch)).version == 1
    clock.now = 30.0
    after = asyncio.run(scorer.score(batch))
    assert after.version == 2 and len(scorer.cache) == 1
    assert before.topk_ids[0].tolist() == [8, 15] and after.topk_ids[0].tolist() == [40, 2**52 - 5]


def test_withdrawn_version_rolls_back(tmp_path: Path) -> None:
    publish(tmp_path, shift=1)
    publish(tmp_path, shift=3)
    clock = Clock()
    scorer = TorchScriptNextEventScorer.from_repo(tmp_path, "tiny", clock, reload_interval_s=1.0)
    assert asyncio.run(scorer.score(batch_of(ROWS))).version == 2
    shutil.rmtree(tmp_path / "tiny" / "2")
    clock.now = 1.0
    scores = asyncio.run(scorer.score(batch_of(ROWS[:1])))
    assert scores.version == 1 and scores.topk_ids[0].tolist() == [8, 15]


def test_corrupt_newer_version_keeps_the_current_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publish(tmp_path, shift=1)
    clock = Clock()
    scorer = TorchScriptNextEventScorer.from_repo(tmp_path, "tiny", clock, reload_interval_s=1.0)
    asyncio.run(scorer.score(batch_of(ROWS)))
    publish(tmp_path, shift=2)
    with (tmp_path / "tiny" / "2" / "model.pt").open("ab") as fh:
        fh.write(b"tampered")
    clock.now = 5.0
    with caplog.at_level(logging.WARNING, logger="pipeline.scoring"):
        assert asyncio.run(scorer.score(batch_of(ROWS))).version == 1
    assert "checksum mismatch" in caplog.text


def test_no_version_raises_model_error(tmp_path: Path) -> None:
    scorer = TorchScriptNextEventScorer.from_repo(tmp_path, "tiny", Clock())
    with pytest.raises(ModelError, match="no loadable version"):
        asyncio.run(scorer.score(batch_of(ROWS)))


@pytest.mark.parametrize(
    ("window", "next_event"),
    [
        (np.zeros((2, 4), dtype=np.int32), np.zeros((2, 1), dtype=np.int64)),
        (np.zeros((2, 4), dtype=np.int64), np.zeros((3, 1), dtype=np.int64)),
        (np.zeros((2, 4), dtype=np.int64), np.zeros(2, dtype=np.int64)),
        (np.zeros(4, dtype=np.int64), np.zeros((1, 1), dtype=np.int64)),
    ],
)
def test_malformed_batch_is_refused(window: np.ndarray, next_event: np.ndarray) -> None:
    with pytest.raises(InferenceError, match="next-event batch"):
        NextEventBatch(window, next_event)


def test_fake_scorer_follows_its_transition_table() -> None:
    fake = FakeNextEventScorer({0: [1], 1: [2, 3], 2: [1]}, k=2, version=7)
    scores = asyncio.run(
        fake.score(batch_of([([0, 0, 0, 0], 1), ([0, 0, 0, 1], 3), ([0, 0, 1, 2], 3), ([0, 0, 0, 2], 9)]))
    )
    assert scores.anomalous[:, 0].tolist() == [False, False, True, True]
    assert scores.next_known[:, 0].tolist() == [True, True, True, False]
    assert scores.topk_ids.tolist() == [[1, 0], [2, 3], [1, 0], [1, 0]]
    assert (scores.model, scores.version, fake.calls) == ("fake", 7, [4])


class TinyClassifier(nn.Module):
    def forward(self, template_ids: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        distances = torch.stack([counts.sum(dim=1), (template_ids > 0).sum(dim=1).float()], dim=1)  # (B, 2)
        return distances.argmin(dim=1, keepdim=True), distances


@dataclass
class FakeLoaded:
    module: Any
    metadata: dict[str, Any]
    version: int


def test_window_class_scorer_names_classes_from_metadata() -> None:
    loaded = FakeLoaded(torch.jit.script(TinyClassifier()), {"class_names": ["normal", "KERNDTLB"]}, 4)
    follower = VersionFollower(
        Path("unused"), "protosiamese", Clock(), loader=lambda *a: loaded, newest=lambda *a: 4
    )
    batch = WindowClassBatch(
        np.array([[5, 6, 0], [5, 0, 0]]), np.array([[1.0, 1.0, 0.0], [9.0, 0.0, 0.0]], dtype=np.float32)
    )
    scores = asyncio.run(TorchScriptWindowClassScorer(follower).score(batch))
    assert scores.class_index[:, 0].tolist() == [0, 1] and scores.class_names == ("normal", "KERNDTLB")
    assert (scores.model, scores.version, scores.distances.shape) == ("protosiamese", 4, (2, 2))
