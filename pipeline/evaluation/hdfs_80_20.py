"""`logad evaluate hdfs-80-20`: LAMA's Table 2, 80/20 row, from raw HDFS lines through the parser.

All lines of HDFS_100k are parsed and their templates learnt (Drain3, learn mode: the template set
is a parsing artifact, not a label); lines are grouped into block sessions. 80% of the normal blocks
(seeded shuffle) train; the other 20% and every anomalous block (abnormal_blocks.csv) test. No
extrapolation: the normal test set is complete here.

With `--version N` nothing is trained: the published version N of `--model` (e.g. the one `logad
demo` trained and streamed with) is scored by offline detection (`pipeline.offline`: its own
parser, sessions, `Detector` and TorchScript file, as a worker) on the blocks it did not train on
(its metadata's `train_blocks`). Those are the figures the demo must reproduce through Kafka.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pipeline.evaluation.hdfs_1_99 import (
    add_training_arguments,
    model_config_from_args,
    score_trained,
    train_config_from_args,
)
from pipeline.settings import Settings

LOG_FILE = "hdfs/HDFS_100k.log.gz"
LABEL_FILE = "hdfs/abnormal_blocks.csv"
PAPER_ROWS = {
    "deeplog": ((0.971, 0.972), (0.977, 0.978), (0.974, 0.975)),
    "lama": ((0.976, 0.977), (0.995, 0.995), (0.985, 0.986)),
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_training_arguments(parser)
    parser.add_argument("--logs", default=LOG_FILE, help="raw HDFS log (.gz ok)")
    parser.add_argument("--labels", default=LABEL_FILE, help="anomalous block ids")
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument(
        "--version",
        type=int,
        help="score this published version of --model (offline detection) instead of training one",
    )


def run(args: argparse.Namespace, settings: Settings, name: str) -> dict[str, Any]:
    import torch

    from pipeline.datasets import data_file
    from pipeline.datasets.loghub import read_lines
    from pipeline.datasets.sessions import read_block_labels
    from pipeline.formats import get_format
    from pipeline.training.next_event import save_curves_png, train_next_event
    from pipeline.training.raw_logs import mine_sessions, split_normal_blocks

    torch.set_num_threads(args.threads)
    if args.version is not None:
        return run_published(args, settings)
    started = time.perf_counter()
    path = data_file(settings.data_dir, args.logs)
    blocks = mine_sessions(list(read_lines(path)), get_format("hdfs")).sessions
    parse_s = time.perf_counter() - started
    anomalous = read_block_labels(data_file(settings.data_dir, args.labels))
    train_keys, test_keys = split_normal_blocks(blocks, anomalous, args.train_fraction, args.seed)
    train = [tuple(blocks[k]) for k in train_keys]
    normal_test = [tuple(blocks[k]) for k in test_keys if k not in anomalous]
    abnormal = [tuple(ids) for k, ids in blocks.items() if k in anomalous]
    started = time.perf_counter()
    trained = train_next_event(args.model, model_config_from_args(args), train, train_config_from_args(args))
    train_s = time.perf_counter() - started
    if args.curves:
        save_curves_png(trained.curves, args.curves, f"{args.model} on 80% of HDFS_100k normal blocks")
    result = score_trained(trained, normal_test, abnormal, None)
    result.update(
        blocks=len(blocks),
        templates=len({t for ids in blocks.values() for t in ids}),
        train_sessions=len(train),
        parse_s=round(parse_s, 1),
        train_s=round(train_s, 1),
    )
    result["table"] = format_table(args.model, result)
    return result


def run_published(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Block figures of a published version on the blocks outside its `train_blocks`."""
    import asyncio

    from pipeline.datasets import data_file
    from pipeline.datasets.loghub import read_lines
    from pipeline.datasets.sessions import read_block_labels
    from pipeline.demo import block_metrics
    from pipeline.errors import ModelError
    from pipeline.model_repository import read_metadata, verify_version
    from pipeline.offline import detect_offline

    repo = Path(settings.model_repo)
    verify_version(repo, args.model, args.version)
    train = read_metadata(repo, args.model, args.version).get("train_blocks")
    if not train:
        raise ModelError(
            f"evaluate hdfs-80-20: {args.model} version {args.version} in {repo} has no train_blocks in "
            "its metadata, so its test blocks are unknown; use a version `logad demo` or "
            "`logad train --logs` published, or leave out --version to train one"
        )
    started = time.perf_counter()
    lines = list(read_lines(data_file(settings.data_dir, args.logs)))
    anomalous = read_block_labels(data_file(settings.data_dir, args.labels))
    found = asyncio.run(detect_offline(lines, repo, args.model, args.version, "hdfs"))
    trained = set(train)
    test = sorted(k for k in found.sessions if k not in trained)
    scores = block_metrics(set(found.flagged_sessions), anomalous, test)
    result: dict[str, Any] = {"model": args.model, "model_version": args.version, **scores}
    result.update(
        blocks=len(found.sessions),
        train_sessions=len(trained),
        test_blocks=len(test),
        abnormal_sessions=len(anomalous & set(test)),
        normal_sessions=len(set(test) - anomalous),
        detect_s=round(time.perf_counter() - started, 1),
    )
    result["table"] = (
        "Table 2 (80/20 splitting, HDFS_100k from raw lines), published version, with OOV\n"
        f"{args.model} v{args.version}: precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
        f"F1 {scores['f1']:.4f}  (TP {scores['tp']}, FP {scores['fp']}, FN {scores['fn']})\n"
        f"{len(test)} test blocks ({result['normal_sessions']} normal + {result['abnormal_sessions']} "
        f"abnormal), offline detection with the version's parser and TorchScript file"
    )
    return result


def format_table(model: str, result: dict[str, Any]) -> str:
    """Table 2's 80/20 row shape: without/with OOV for precision, recall and F1, next to the paper."""
    lines = [
        "Table 2 (80/20 splitting, HDFS_100k from raw lines), numbers are without OOV / with OOV",
        f"{'Model':<16}{'Precision':>16}{'Recall':>16}{'F1-measure':>16}",
    ]
    ours = [f"{result[m + '_without_oov']:.3f}/{result[m]:.3f}" for m in ("precision", "recall", "f1")]
    lines.append(f"{model + ' (ours)':<16}{ours[0]:>16}{ours[1]:>16}{ours[2]:>16}")
    paper = PAPER_ROWS.get(model)
    if paper:
        cells = [f"{a:.3f}/{b:.3f}" for a, b in paper]
        lines.append(f"{model + ' (paper)':<16}{cells[0]:>16}{cells[1]:>16}{cells[2]:>16}")
    lines.append(
        f"{result['blocks']} blocks, {result['templates']} templates; {result['train_sessions']} train, "
        f"{result['normal_sessions']} normal + {result['abnormal_sessions']} abnormal test; "
        f"k = {result['top_k']}"
    )
    return "\n".join(lines)
