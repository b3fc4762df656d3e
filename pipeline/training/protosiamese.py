"""ProtoSiamese from labelled windows to a published model version (`logad train protosiamese`).

`train_protosiamese` is the one training path: the few-shot evaluation (`fewshot-bgl`,
`fewshot-hadoop`) scores what it returns, and `train_bgl` adds the BGL data, the window spec and
the parser state, so the published version carries everything the worker needs to cut and classify
the same windows online: `templates.json` (the frozen miner the windows were counted with),
`metadata.json` (class names in prototype order, the window spec, the format profile, the sha256 of
the training files) and the TorchScript module with TF-IDF featurizer and prototypes inside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.datasets.bgl import learn_windows, read_bgl, window_classes
from pipeline.errors import DataError
from pipeline.model_repository import PublishedVersion, publish_version, sha256_file
from pipeline.models.protosiamese import (
    Encoder,
    ProtoSiameseClassifier,
    ProtoSiameseConfig,
    build_classifier,
    export_metadata,
    model_spec,
    script,
)
from pipeline.tfidf import Idf, TfidfFeaturizer, WindowCounts, fit_idf, pad_windows
from pipeline.time_windows import WindowSpec
from pipeline.training.episodic import EpisodicConfig, EpochStats, train_episodic
from pipeline.training.raw_logs import parser_state
from pipeline.triton_config import PYTHON_CPU, ServingLayout

log = logging.getLogger(__name__)

BGL_FORMAT = "bgl"


@dataclass(frozen=True)
class TrainedProtoSiamese:
    """A trained classifier (eval mode) with what it was fitted on."""

    classifier: ProtoSiameseClassifier
    class_names: tuple[str, ...]
    idf: Idf
    config: ProtoSiameseConfig
    history: tuple[EpochStats, ...]

    def scripted(self) -> torch.jit.ScriptModule:
        return script(self.classifier)

    def metadata(self) -> dict[str, Any]:
        return {
            **export_metadata(self.classifier, self.class_names, self.idf, self.config),
            "final_episode_loss": self.history[-1].loss if self.history else None,
            "final_query_accuracy": self.history[-1].query_accuracy if self.history else None,
        }


def train_protosiamese(
    windows: Sequence[WindowCounts],
    labels: np.ndarray,
    class_names: Sequence[str],
    episodic: EpisodicConfig,
    progress: bool = True,
) -> TrainedProtoSiamese:
    """Fit the idf on `windows`, train the encoder episodically, freeze prototypes from every window.

    `labels` index `class_names`; every class needs at least one window (its prototype).
    """
    idf = fit_idf(windows)
    ids, counts = (torch.from_numpy(a) for a in pad_windows(windows))
    with torch.no_grad():
        features = TfidfFeaturizer(idf)(ids, counts)  # (N, V + 1)
    config = ProtoSiameseConfig(input_dim=idf.n_columns, margin=episodic.margin)
    torch.manual_seed(episodic.seed)
    encoder = Encoder(config)
    history = train_episodic(encoder, features, labels, episodic, progress=progress)
    classifier = build_classifier(idf, encoder, ids, counts, torch.from_numpy(labels), len(class_names))
    return TrainedProtoSiamese(classifier, tuple(class_names), idf, config, tuple(history))


@dataclass(frozen=True)
class BglTrainingResult:
    trained: TrainedProtoSiamese
    spec: WindowSpec
    templates_state: bytes  # the frozen miner, published as templates.json
    n_windows: int
    class_sizes: dict[str, int]
    files_sha256: dict[str, str]


def train_on_windows(
    windows: Sequence[Any], classes: list[str], episodic: EpisodicConfig, progress: bool, what: str
) -> tuple[TrainedProtoSiamese, dict[str, int]]:
    """`train_protosiamese` on the labelled windows of `classes` (others are left out), and the
    windows per class; `what` names the data in the log."""
    index = {c: i for i, c in enumerate(classes)}
    kept = [w for w in windows if w.label in index]
    targets = np.array([index[w.label] for w in kept], dtype=np.int64)
    trained = train_protosiamese([w.count_map() for w in kept], targets, classes, episodic, progress)
    sizes = {c: int(np.sum(targets == i)) for c, i in index.items()}
    log.info("protosiamese on %s: %d windows, classes %s", what, len(kept), sizes)
    return trained, sizes


def train_bgl(
    files: Sequence[Path], spec: WindowSpec, min_windows: int, episodic: EpisodicConfig, progress: bool = True
) -> BglTrainingResult:
    """Templates and windows from BGL files (`fewshot-bgl`'s data path), then `train_protosiamese`."""
    record_lists = [read_bgl(path) for path in files]
    templater, windows = learn_windows(record_lists, spec)
    classes = window_classes(windows, min_windows)
    if len(classes) < 2:
        raise DataError(
            f"train protosiamese: no anomaly class has {min_windows}+ windows in {[str(f) for f in files]}; "
            "add BGL files with alert lines or lower --min-train-windows"
        )
    trained, sizes = train_on_windows(windows, classes, episodic, progress, "BGL")
    return BglTrainingResult(
        trained=trained,
        spec=spec,
        templates_state=templater.save_state(),
        n_windows=sum(sizes.values()),
        class_sizes=sizes,
        files_sha256={Path(path).name: sha256_file(Path(path)) for path in files},
    )


def publish_bgl(
    repo: Path,
    result: BglTrainingResult,
    extra_metadata: dict[str, Any] | None = None,
    max_batch_size: int = 1024,
    layout: ServingLayout = PYTHON_CPU,
    log_format: str = BGL_FORMAT,
    name: str | None = None,
) -> PublishedVersion:
    """Publish `model_repo/protosiamese/<N+1>/` atomically, with the parser state and the window spec
    (`log_format`: the format the windows were parsed with; a profile's definition goes in
    `extra_metadata` as `format_profile`; `name`: the model's name in the repository, default
    `protosiamese`)."""
    trained = result.trained
    parser_metadata, files = parser_state(result.templates_state, log_format)
    digest = hashlib.sha256("".join(sorted(result.files_sha256.values())).encode()).hexdigest()
    metadata = {
        **trained.metadata(),
        **parser_metadata,
        "window": result.spec.to_json(),
        "class_sizes": result.class_sizes,
        "n_windows": result.n_windows,
        "training_files": result.files_sha256,
        "training_data_sha256": digest,
        **(extra_metadata or {}),
    }
    spec = model_spec(len(trained.class_names), max_batch_size)
    if name:
        spec = dataclasses.replace(spec, name=name)
    return publish_version(repo, spec, trained.scripted(), metadata, extra_files=files, layout=layout)
