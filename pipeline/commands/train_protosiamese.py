"""`logad train protosiamese`: train ProtoSiamese on BGL time windows and publish a model version.

With `--logs F --format PROFILE --labels F` the windows come from a log of one's own instead
(`pipeline.training.profile_windows`): any format profile with a timestamp rule, labelled by line.

Data, windows and training options are `fewshot-bgl`'s (same defaults, same code: BGL_2k..8k,
5-minute tumbling windows, 4-way 2-shot episodes, 500 epochs), except that no file is held out and
every anomaly class with `--min-train-windows` windows is learned. The version written,
`<repo>/protosiamese/<N+1>/`, holds model.pt (TF-IDF featurizer and prototypes inside), the Triton
runner, templates.json (the BGL parser state) and metadata.json (class names, window spec, sha256s).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.commands.serving import serve_published
from pipeline.errors import ConfigError
from pipeline.evaluation.fewshot import add_episodic_arguments, add_window_arguments
from pipeline.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The windows and episodic training options of `logad train protosiamese` (`fewshot-bgl`'s)."""
    windows = parser.add_argument_group("protosiamese windows", "BGL files and their time windows")
    add_window_arguments(windows)
    training = parser.add_argument_group("protosiamese training", "episodes and optimisation")
    add_episodic_arguments(training, epochs=True)
    training.add_argument("--seed", type=int, default=0, help="episodes and initial weights")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from pipeline.datasets import data_file
    from pipeline.evaluation.fewshot import episodic_config_from_args
    from pipeline.time_windows import WindowSpec
    from pipeline.training.protosiamese import BGL_FORMAT, publish_bgl, train_bgl

    # The net is tiny: with more than one thread, synchronisation costs more than the maths.
    torch.set_num_threads(1)
    started = time.perf_counter()
    episodic = episodic_config_from_args(args, args.seed)
    spec = WindowSpec(args.window_s, args.step_s)
    profile = None
    if args.logs:  # a format of one's own: `--logs F --format PROFILE --labels F`
        from pipeline.format_profiles import resolve_profile
        from pipeline.training.profile_windows import read_line_labels, train_profile_windows

        if not args.labels:
            raise ConfigError(
                "train protosiamese --logs: give --labels, a file of `<line number>,<class>` lines naming "
                "the anomalous lines (their classes are what the model learns to tell apart)"
            )
        profile = resolve_profile(args.format, settings.formats or None)
        labels = read_line_labels(data_file(settings.data_dir, args.labels))
        path = data_file(settings.data_dir, args.logs)
        result = train_profile_windows(path, profile, labels, spec, args.min_train_windows, episodic)
    else:
        files = [data_file(settings.data_dir, f) for f in args.train_files]
        result = train_bgl(files, spec, args.min_train_windows, episodic)
    last = result.trained.history[-1]
    print(
        f"trained protosiamese in {time.perf_counter() - started:.1f}s: {result.n_windows} windows of "
        f"{args.window_s:g}s (step {args.step_s:g}s), {len(result.class_sizes)} classes "
        f"{result.class_sizes}; {episodic.epochs} epochs, final episode loss {last.loss:.4f}, "
        f"query accuracy {last.query_accuracy:.3f}"
    )
    if args.no_publish:
        return 0
    extra: dict[str, Any] = {"seed": args.seed, "episodic": asdict(episodic)}
    if profile is not None and not profile.builtin:
        extra["format_profile"] = profile.to_json()
    published = publish_bgl(
        Path(settings.model_repo),
        result,
        extra,
        max_batch_size=args.max_batch_size,
        layout=settings.serving_layout(),
        log_format=profile.name if profile is not None else BGL_FORMAT,
        name=args.name,
    )
    return serve_published(published, args, settings)
