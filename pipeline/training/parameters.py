"""Training DeepLog's parameter value model from normal sessions: seeded, tqdm progress, CPU or CUDA.

Normal sessions are split (seeded, by session) into a fitting and a validation share. Each share's
events, in log order, give every key a series of parameter value vectors (`FeatureSchema.vector`,
elapsed time from the session's previous event); windows of h vectors predict the next. The
network learns on the fitting windows with the model's own error (MSE over the key's normalised
features) as the loss; each key's threshold is the Gaussian bound of its validation errors,
mean + z * std. Keys with too few windows in either share get no model, so they are never flagged.

z is chosen like the next-event models' k: the smallest of `threshold_sigmas` whose share of
flagged validation sessions stays within `max_validation_session_fpr`. It ends up far above the
textbook 3.09 (99.9%) because the errors are not Gaussian: most are near 0 with a long tail (the
LSTM predicts a block's size from its other replicas' lines, so the first line of an unusual block
is a surprise), and a session has many events. At z = 3.09, 13% of synthetic and 11% of HDFS_100k
validation sessions were flagged. The Gaussians are fitted on the same validation errors, so these
rates are in-sample; `logad evaluate params-synthetic` measures on test blocks.
Events and windows come from `pipeline.training.parameter_data`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.errors import ConfigError
from pipeline.formats import LogFormat
from pipeline.model_repository import ModelSpec, PublishedVersion
from pipeline.models.parameters import (
    ParameterModelConfig,
    ParameterValueModel,
    gaussian_bound,
    io_spec,
)
from pipeline.parameter_features import ELAPSED, FeatureSchema, ParameterEvent, learn_schema
from pipeline.records import LogEvent
from pipeline.templates import TemplateMiner
from pipeline.training.next_event import seed_everything
from pipeline.training.parameter_data import Windows, build_windows, parse_events, split_by_session
from pipeline.triton_config import PYTHON_CPU, ServingLayout
from pipeline.version_checks import ValidationFpr

log = logging.getLogger(__name__)

MODEL_NAME = "deeplog_params"


@dataclass(frozen=True)
class ParameterTrainConfig:
    """Optimisation and data-sufficiency settings."""

    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    validation_fraction: float = 0.2
    threshold_sigmas: tuple[float, ...] = (3.09, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)  # candidate z
    max_validation_session_fpr: float = 0.01
    min_windows: int = 50  # fitting windows a key needs to get a model
    min_validation_windows: int = 20  # validation errors a key needs for its Gaussian
    relative_std_floor: float = 1e-3  # a constant feature still normalises (std >= 1e-3 * max(|mean|, 1))


@dataclass(frozen=True)
class TrainedParameterModel:
    """The trained module (CPU, eval mode) with its schema, curves and validation figures."""

    config: ParameterModelConfig
    train_config: ParameterTrainConfig
    schema: FeatureSchema
    model: ParameterValueModel
    curves: dict[str, list[float]]
    validation: dict[str, float]
    sigmas: float  # z of every key's Gaussian threshold (mean + z * std of its validation errors)
    keys: list[dict[str, Any]] = field(default_factory=list)  # per modelled key: windows, threshold
    error_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) validation errors
    error_std: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,)

    def thresholds_at(self, sigmas: float) -> np.ndarray:
        """Every key's threshold `(K,)` at another z, from the same validation errors."""
        return gaussian_bound(self.error_mean, self.error_std, sigmas).astype(np.float32)

    def validation_fpr(self) -> ValidationFpr:
        """The share of validation sessions flagged at the chosen z (the publishing gate's figure)."""
        sessions = int(self.validation.get("sessions", 0))
        fpr = self.validation.get(f"session_fpr_at_{self.sigmas:g}_sigmas", float("nan"))
        return ValidationFpr(float(fpr), sessions, f"z = {self.sigmas:g}")

    def metadata(self) -> dict[str, Any]:
        """Everything a version carries besides its weights (the schema also lives in the buffers)."""
        return {
            "kind": MODEL_NAME,
            "window_size": self.config.window_size,
            "width": self.schema.width,
            "hyper_parameters": self.config.to_dict(),
            "training": asdict(self.train_config),
            "validation": self.validation,
            "threshold_sigmas": self.sigmas,
            "schema": self.schema.to_json(),
            "keys": self.keys,
        }

    def spec(self, max_batch_size: int = 4096) -> ModelSpec:
        return ModelSpec.from_io(
            MODEL_NAME, io_spec(self.config.window_size, self.schema.width), max_batch_size
        )


def train_parameter_model(
    events: Sequence[ParameterEvent],
    config: ParameterModelConfig,
    train_config: ParameterTrainConfig,
    progress: bool = True,
) -> TrainedParameterModel:
    """Train on the events of normal sessions (log order) and set every key's threshold on validation."""
    seed_everything(train_config.seed)
    fit_events, held_events = split_by_session(events, train_config.validation_fraction, train_config.seed)
    h = config.window_size
    candidate = learn_schema(fit_events, min_events=train_config.min_windows + h)
    all_rows = {tid: i for i, tid in enumerate(sorted(candidate.keys))}
    fit_all = build_windows(fit_events, candidate, all_rows, h)
    held_all = build_windows(held_events, candidate, all_rows, h)
    fit_counts = np.bincount(fit_all.rows, minlength=len(all_rows))
    held_counts = np.bincount(held_all.rows, minlength=len(all_rows))
    kept = [
        tid
        for tid, row in all_rows.items()
        if fit_counts[row] >= train_config.min_windows
        and held_counts[row] >= train_config.min_validation_windows
    ]
    if not kept:
        raise ConfigError(
            f"parameter training: no log key has {train_config.min_windows} fitting and "
            f"{train_config.min_validation_windows} validation windows of numeric values "
            f"({len(candidate.keys)} keys had features); give more normal sessions or lower the minimums"
        )
    schema = candidate.restricted(kept)
    rows = {tid: i for i, tid in enumerate(sorted(kept))}
    fit = build_windows(fit_events, schema, rows, h)
    held = build_windows(held_events, schema, rows, h)
    model = ParameterValueModel(config, schema)
    model.set_normalisation(*_feature_stats(model, fit, schema, train_config.relative_std_floor))
    device = torch.device(train_config.device)
    model.to(device)
    log.info("parameter model: %d keys, %d fitting and %d validation windows", len(rows), len(fit), len(held))
    curves = _fit(model, fit, held, train_config, device, progress)
    model.cpu().eval()
    errors = window_errors(model, held).astype(np.float64)
    error_mean = np.asarray([errors[held.rows == row].mean() for row in range(len(rows))])
    error_std = np.asarray([errors[held.rows == row].std() for row in range(len(rows))])
    sigmas, validation = _choose_sigmas(errors, held, error_mean, error_std, train_config)
    thresholds = gaussian_bound(error_mean, error_std, sigmas).astype(np.float32)
    model.set_thresholds(thresholds)
    validation["loss"] = curves["validation_loss"][-1] if curves["validation_loss"] else float("nan")
    names = {tid: list(schema.keys[tid].names) for tid in rows}
    keys = [
        {
            "template_id": tid,
            "features": names[tid],
            "fit_windows": int((fit.rows == row).sum()),
            "validation_windows": int((held.rows == row).sum()),
            "threshold": float(thresholds[row]),
            "error_mean": float(error_mean[row]),
            "error_std": float(error_std[row]),
        }
        for tid, row in rows.items()
    ]
    return TrainedParameterModel(
        config, train_config, schema, model, curves, validation, sigmas, keys, error_mean, error_std
    )


def _choose_sigmas(
    errors: np.ndarray,
    held: Windows,
    error_mean: np.ndarray,
    error_std: np.ndarray,
    train_config: ParameterTrainConfig,
) -> tuple[float, dict[str, float]]:
    """The smallest z whose flagged share of validation sessions is within the target (else the
    largest), and the validation rates at every candidate."""
    levels = sorted(train_config.threshold_sigmas)
    if not levels:
        raise ConfigError("parameter training: threshold_sigmas is empty; give at least one z")
    sessions = max(len(np.unique(held.owner)), 1)
    # Sessions with at least one scored vector: the others cannot be flagged at any z.
    validation: dict[str, float] = {"windows": float(len(held)), "sessions": float(sessions)}
    chosen = levels[-1]
    for level in reversed(levels):
        flagged = errors > gaussian_bound(error_mean, error_std, level)[held.rows]
        fpr = len(np.unique(held.owner[flagged])) / sessions
        validation[f"session_fpr_at_{level:g}_sigmas"] = fpr
        validation[f"event_fpr_at_{level:g}_sigmas"] = float(flagged.mean()) if len(held) else 0.0
        if fpr <= train_config.max_validation_session_fpr:
            chosen = level
    validation["sigmas"] = chosen
    return chosen, validation


def window_errors(model: ParameterValueModel, windows: Windows, batch_size: int = 4096) -> np.ndarray:
    """The model's error for every window `(N,)`, in inference mode on the model's device."""
    device = model.key_ids.device
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            part = slice(start, start + batch_size)
            tids = model.key_ids[torch.as_tensor(windows.rows[part], device=device)].unsqueeze(1)
            history = torch.as_tensor(windows.history[part], device=device)
            target = torch.as_tensor(windows.target[part], device=device)
            out.append(model(tids, history, target)[0][:, 0].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _feature_stats(
    model: ParameterValueModel, fit: Windows, schema: FeatureSchema, relative_floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per key and feature: mean and std of the fitting targets on the model's scale `(K, D)`.

    A std is never below `relative_floor` of the mean (so a constant feature still normalises), and
    an elapsed-time std never below the clock's resolution (the smallest positive elapsed time seen):
    HDFS stamps whole seconds, and a key whose gaps are nearly always 0 s would otherwise see a
    one-tick jitter as several standard deviations. Padding columns get mean 0 and std 1.
    """
    ids = sorted(schema.keys)
    elapsed = np.asarray([schema.padded_sources(tid) for tid in ids]) == ELAPSED  # (K, D)
    gaps = fit.target[elapsed[fit.rows] & (fit.target > 0)]
    tick = float(gaps.min()) if gaps.size else 0.0
    every_row = torch.arange(len(ids))
    with torch.inference_mode():
        scaled = model.transform(torch.as_tensor(fit.rows), torch.as_tensor(fit.target)).numpy()
        tick_scaled = model.transform(every_row, torch.full((len(ids), schema.width), tick)).numpy()
    mean = np.zeros((len(ids), schema.width), np.float32)
    std = np.ones((len(ids), schema.width), np.float32)
    for row, tid in enumerate(ids):
        used = len(schema.keys[tid].sources)
        values = scaled[fit.rows == row, :used].astype(np.float64)
        mean[row, :used] = values.mean(axis=0)
        floor = relative_floor * np.maximum(np.abs(values.mean(axis=0)), 1.0)
        floor = np.where(elapsed[row, :used], np.maximum(floor, tick_scaled[row, :used]), floor)
        std[row, :used] = np.maximum(values.std(axis=0), floor)
    return mean, std


def _fit(
    model: ParameterValueModel,
    fit: Windows,
    held: Windows,
    train_config: ParameterTrainConfig,
    device: torch.device,
    progress: bool,
) -> dict[str, list[float]]:
    tids = model.key_ids[torch.as_tensor(fit.rows, device=device)].unsqueeze(1)  # (N, 1)
    history = torch.as_tensor(fit.history, device=device)  # (N, h, D)
    target = torch.as_tensor(fit.target, device=device)  # (N, D)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.learning_rate)
    generator = torch.Generator().manual_seed(train_config.seed)
    curves: dict[str, list[float]] = {"step_loss": [], "epoch_loss": [], "validation_loss": []}
    size = train_config.batch_size
    steps = (len(fit) + size - 1) // size
    for epoch in range(train_config.epochs):
        model.train()
        order = torch.randperm(len(fit), generator=generator).to(device)
        total = 0.0
        bar = tqdm(
            range(steps), desc=f"{MODEL_NAME} epoch {epoch + 1}/{train_config.epochs}", disable=not progress
        )
        for step in bar:
            batch = order[step * size : (step + 1) * size]
            loss = model(tids[batch], history[batch], target[batch])[0].mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value = loss.item()
            curves["step_loss"].append(value)
            total += value * len(batch)
            bar.set_postfix(loss=f"{value:.4f}")
        curves["epoch_loss"].append(total / max(len(fit), 1))
        model.eval()
        held_errors = window_errors(model, held)
        curves["validation_loss"].append(float(held_errors.mean()) if len(held_errors) else float("nan"))
    return curves


def publish_parameter_model(
    repo: Path,
    trained: TrainedParameterModel,
    miner: TemplateMiner | None,
    log_format: str | None,
    extra_metadata: dict[str, Any],
    max_batch_size: int = 4096,
    layout: ServingLayout = PYTHON_CPU,
) -> PublishedVersion:
    """Script the model and publish it as `deeplog_params`, with the parser state it was trained with."""
    from pipeline.training.raw_logs import publish_with_parser

    scripted = torch.jit.script(trained.model.cpu().eval())
    metadata = {**trained.metadata(), **extra_metadata}
    spec = trained.spec(max_batch_size)
    return publish_with_parser(repo, spec, scripted, metadata, miner, log_format, layout=layout)


@dataclass(frozen=True)
class RawLogTraining:
    """A parameter model trained from raw lines, with what evaluation and publishing need."""

    trained: TrainedParameterModel
    miner: TemplateMiner
    events: list[LogEvent]  # every event of the lines, log order
    train_keys: list[str]
    test_keys: list[str]


def train_parameters_from_lines(
    lines: Sequence[str],
    fmt: LogFormat,
    anomalous_blocks: Iterable[str],
    config: ParameterModelConfig,
    train_config: ParameterTrainConfig,
    train_fraction: float = 1.0,
    progress: bool = True,
) -> RawLogTraining:
    """Mine templates, split the normal sessions (`split_normal_blocks`), train on the training share."""
    from pipeline.training.raw_logs import mine_sessions, split_normal_blocks

    mined = mine_sessions(lines, fmt, progress)
    train_keys, test_keys = split_normal_blocks(
        mined.sessions, anomalous_blocks, train_fraction, train_config.seed
    )
    events = parse_events(lines, fmt, mined.miner, fmt.name)
    train_set = set(train_keys)
    trained = train_parameter_model(
        [e for e in events if e.session_key in train_set], config, train_config, progress
    )
    return RawLogTraining(trained, mined.miner, events, train_keys, test_keys)
