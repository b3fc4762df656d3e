"""Training from raw log lines: mine templates, build sessions, train, publish with the parser state.

Template ids come from a second pass in match mode over the frozen template set, which is exactly
what the streaming parser does with the published `templates.json`: training and serving see the
same ids for the same line.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.datasets.sessions import group_block_sessions
from pipeline.errors import ParseError
from pipeline.formats import LogFormat
from pipeline.model_repository import ModelSpec, PublishedVersion, publish_version
from pipeline.models.next_event import default_config, io_spec
from pipeline.templates import TemplateMiner
from pipeline.training.next_event import TrainConfig, TrainedModel, train_next_event
from pipeline.triton_config import PYTHON_CPU, ServingLayout
from pipeline.version_checks import TEMPLATES_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MinedSessions:
    miner: TemplateMiner  # frozen (match mode) after mining
    sessions: dict[str, list[int]]  # session key -> template ids in log order
    lines: int
    unparsed: int


def mine_sessions(lines: Sequence[str], fmt: LogFormat, progress: bool = True) -> MinedSessions:
    """Learn templates from all lines, freeze them, and group the lines' final ids by session."""
    miner = TemplateMiner()
    records = []
    unparsed = 0
    for line in tqdm(lines, desc="mining templates", unit=" lines", disable=not progress):
        try:
            record = fmt.parse_line(line)
        except ParseError:
            unparsed += 1
            continue
        miner.learn(fmt.template_text(record))
        records.append(record)
    miner.freeze()
    pairs = (
        (r.session_keys, miner.match(fmt.template_text(r)).template_id) for r in records if r.session_keys
    )
    return MinedSessions(miner, group_block_sessions(pairs), len(lines), unparsed)


def split_normal_blocks(
    sessions: dict[str, list[int]], anomalous: Iterable[str], train_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """The 80/20 protocol: a seeded share of the normal blocks trains; the rest and all anomalous test.

    Training keys come in the seeded shuffled order (training splits them again for validation).
    """
    bad = set(anomalous)
    normal = sorted(k for k in sessions if k not in bad)
    order = np.random.default_rng(seed).permutation(len(normal))
    cut = round(len(normal) * train_fraction)
    train = [normal[i] for i in order[:cut]]
    train_set = set(train)
    test = sorted(k for k in sessions if k not in train_set)
    return train, test


def sessions_digest(keys: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


def next_event_spec(kind: str, window_size: int, top_k: int, max_batch_size: int = 4096) -> ModelSpec:
    return ModelSpec.from_io(kind, io_spec(window_size, top_k), max_batch_size)


def publish_trained(
    repo: Path,
    trained: TrainedModel,
    miner: TemplateMiner | None,
    log_format: str | None,
    extra_metadata: dict[str, Any],
    max_batch_size: int = 4096,
    unservable_reason: str | None = None,
    layout: ServingLayout = PYTHON_CPU,
) -> PublishedVersion:
    """Script the trained detector and publish it (with the parser state when trained from raw lines).

    Without a miner the version has no parser state, so a worker cannot serve it: publishing refuses
    it (ModelError) unless `unservable_reason` says why it is published for offline use only.
    """
    spec = next_event_spec(trained.kind, trained.config.window_size, trained.top_k, max_batch_size)
    metadata = {**trained.metadata(), **extra_metadata}
    scripted = torch.jit.script(trained.detector())
    return publish_with_parser(repo, spec, scripted, metadata, miner, log_format, unservable_reason, layout)


def publish_with_parser(
    repo: Path,
    spec: ModelSpec,
    scripted: Any,
    metadata: dict[str, Any],
    miner: TemplateMiner | None,
    log_format: str | None,
    unservable_reason: str | None = None,
    layout: ServingLayout = PYTHON_CPU,
) -> PublishedVersion:
    """Publish a scripted model with the parser state it was trained with (none without a miner).

    Refused before anything is written when a worker could not serve the version
    (`pipeline.version_checks`), unless `unservable_reason` (see `publish_version`)."""
    parser_metadata, extra = parser_state(miner.save_state() if miner is not None else None, log_format)
    return publish_version(
        repo,
        spec,
        scripted,
        {**metadata, **parser_metadata},
        extra,
        unservable_reason=unservable_reason,
        layout=layout,
    )


def parser_state(
    miner_state: bytes | None, log_format: str | None
) -> tuple[dict[str, Any], dict[str, bytes] | None]:
    """Metadata and extra files that ship a version's parser: the format profile and `templates.json`.

    Every model trained from raw lines publishes through here, so the worker's `TemplateFollower`
    loads any of them the same way (`pipeline.deployment.load_template_set`).
    """
    metadata: dict[str, Any] = {"log_format": log_format} if log_format else {}
    return metadata, ({TEMPLATES_FILE: miner_state} if miner_state is not None else None)


def train_from_raw_lines(
    kind: str,
    lines: Sequence[str],
    fmt: LogFormat,
    anomalous_blocks: Iterable[str],
    train_config: TrainConfig,
    train_fraction: float = 0.8,
    progress: bool = True,
) -> tuple[TrainedModel, MinedSessions, list[str], list[str]]:
    """Mine, split 80/20 by normal blocks, and train on the training share. Returns the test keys too."""
    mined = mine_sessions(lines, fmt, progress)
    train_keys, test_keys = split_normal_blocks(
        mined.sessions, anomalous_blocks, train_fraction, train_config.seed
    )
    log.info(
        "raw-log training: %d sessions, %d train (normal), %d test",
        len(mined.sessions),
        len(train_keys),
        len(test_keys),
    )
    config = default_config(kind)
    trained = train_next_event(kind, config, [mined.sessions[k] for k in train_keys], train_config, progress)
    return trained, mined, train_keys, test_keys
