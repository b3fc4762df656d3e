"""`logad train deeplog_params`: train DeepLog's parameter value model and publish a model version.

Needs raw lines (`--logs`, `--format`): parameter values and timestamps live in the lines, not in
deeplog_* session files. Blocks listed in `--labels` are left out as anomalous; every other session
trains (a seeded share of them validates and sets the thresholds). The version written,
`<repo>/deeplog_params/<N+1>/`, holds model.pt (feature schema, normalisation and per-key thresholds
inside), the Triton runner, templates.json (the parser state) and metadata.json. A running worker
turns parameter detection on at start when a version exists.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipeline.commands.serving import serve_published
from pipeline.errors import ConfigError
from pipeline.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and training options of `logad train deeplog_params` (the same as
    `logad evaluate params-synthetic`'s), and where to save the training curves."""
    from pipeline.evaluation.parameters import add_model_arguments

    group = parser.add_argument_group("deeplog_params training", "parameter value model (one LSTM per key)")
    add_model_arguments(group, common=True)
    group.add_argument("--curves", type=Path, help="save the training curves PNG here")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from pipeline.datasets import data_file
    from pipeline.datasets.loghub import read_lines
    from pipeline.datasets.sessions import read_block_labels
    from pipeline.evaluation.parameters import configs_from_args
    from pipeline.formats import get_format
    from pipeline.model_repository import sha256_file
    from pipeline.training.next_event import save_curves_png
    from pipeline.training.parameters import MODEL_NAME, publish_parameter_model, train_parameters_from_lines

    if not args.logs:
        raise ConfigError(
            f"train {MODEL_NAME}: give raw log lines with --logs (and --format); session files hold no "
            "parameter values"
        )
    torch.set_num_threads(args.threads)
    path = data_file(settings.data_dir, args.logs)
    skip = read_block_labels(data_file(settings.data_dir, args.labels)) if args.labels else frozenset()
    model_config, train_config = configs_from_args(args)
    started = time.perf_counter()
    result = train_parameters_from_lines(
        list(read_lines(path)), get_format(args.format), skip, model_config, train_config
    )
    trained = result.trained
    curves = args.curves or Path(settings.state_dir) / "curves" / f"{MODEL_NAME}.png"
    save_curves_png(trained.curves, curves, f"{MODEL_NAME} training", loss="mean squared error")
    print(
        f"trained {MODEL_NAME} in {time.perf_counter() - started:.1f}s: {len(trained.schema.keys)} keys "
        f"modelled, threshold z = {trained.sigmas:g}, validation session FPR "
        f"{trained.validation[f'session_fpr_at_{trained.sigmas:g}_sigmas']:.4f}; curves {curves}"
    )
    if args.no_publish:
        return 0
    from pipeline.commands.train import check_validation

    check_validation(MODEL_NAME, trained.validation_fpr(), args, settings)
    published = publish_parameter_model(
        Path(settings.model_repo),
        trained,
        result.miner,
        args.format,
        {"training_data_sha256": sha256_file(path), "curves": trained.curves},
        max_batch_size=args.max_batch_size,
        layout=settings.serving_layout(),
    )
    return serve_published(published, args, settings)
