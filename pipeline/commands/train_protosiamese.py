"""`logad train protosiamese`: train ProtoSiamese on BGL time windows and publish a model version.

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

from pipeline.commands.serving import serve_published
from pipeline.evaluation.fewshot import PROTOSIAMESE_EPOCHS, add_episodic_arguments, add_window_arguments
from pipeline.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ProtoSiamese options of `logad train` (its --epochs, --seed, --max-batch-size are shared)."""
    group = parser.add_argument_group(
        "protosiamese", f"BGL windows and episodes; --epochs defaults to {PROTOSIAMESE_EPOCHS} here"
    )
    add_window_arguments(group)
    add_episodic_arguments(group, epochs=False)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from pipeline.datasets import data_file
    from pipeline.evaluation.fewshot import episodic_config_from_args
    from pipeline.time_windows import WindowSpec
    from pipeline.training.protosiamese import publish_bgl, train_bgl

    # The net is tiny: with more than one thread, synchronisation costs more than the maths.
    torch.set_num_threads(1)
    started = time.perf_counter()
    files = [data_file(settings.data_dir, f) for f in args.train_files]
    episodic = episodic_config_from_args(args, args.seed)
    result = train_bgl(files, WindowSpec(args.window_s, args.step_s), args.min_train_windows, episodic)
    last = result.trained.history[-1]
    print(
        f"trained protosiamese in {time.perf_counter() - started:.1f}s: {result.n_windows} windows of "
        f"{args.window_s:g}s (step {args.step_s:g}s), {len(result.class_sizes)} classes "
        f"{result.class_sizes}; {episodic.epochs} epochs, final episode loss {last.loss:.4f}, "
        f"query accuracy {last.query_accuracy:.3f}"
    )
    if args.no_publish:
        return 0
    published = publish_bgl(
        Path(settings.model_repo),
        result,
        {"seed": args.seed, "episodic": asdict(episodic)},
        max_batch_size=args.max_batch_size,
        layout=settings.serving_layout(),
    )
    return serve_published(published, args, settings)
