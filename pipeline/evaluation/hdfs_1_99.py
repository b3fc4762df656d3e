"""`logad evaluate hdfs-1-99`: LAMA's Table 2, 1/99 row, on DeepLog's split of HDFS.

Train on `deeplog_train` (k chosen on a held-out 10% of it), test on all 16,838 abnormal sessions and
a normal sample; precision is extrapolated to the paper's 553,366 normal test sessions from the
sample's false-positive rate (see `next_event_metrics`). Reported with and without OOV sessions.

`--protocol paper` reproduces the papers' setting instead of ours: no end-of-session marker, the
papers' full windows (a session of at most l events is always anomalous, see `pipeline.windows`),
and every window weighted by its count (the every-window objective; `--no-dedupe` also takes one
optimiser sample per window). DeepLog's k stays g = 9 in both protocols.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.evaluation import feedback_loop
from pipeline.settings import Settings

log = logging.getLogger(__name__)

TRAIN_FILE = "hdfs/deeplog_train"
ABNORMAL_FILE = "hdfs/deeplog_test_abnormal"
NORMAL_SAMPLE_FILE = "hdfs/deeplog_test_normal_sample"
PROTOCOLS = ("ours", "paper")
PAPER_ROWS = {
    "deeplog": ((0.732, 0.830), (0.963, 0.980), (0.832, 0.900)),
    "lama": ((0.872, 0.917), (0.954, 0.976), (0.911, 0.946)),
}


def add_training_arguments(parser: Any, model: str | None = None) -> None:
    """Options shared by the next-event evaluations and `logad train` (model, sizes, optimisation);
    `parser` is a parser or an argument group.

    `model` None: a `--model` choice and every option; "lama" or "deeplog" (`logad train MODEL`,
    where the subcommand names the model): no `--model`, and only that model's options.
    """
    if model is None:
        parser.add_argument("--model", choices=("lama", "deeplog"), default="lama")
    parser.add_argument("--epochs", type=int, help="default: 5 for LAMA (paper), 20 for DeepLog")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--window-size", type=int, default=10)
    parser.add_argument("--layers", type=int, help="LAMA b (default 4) / DeepLog LSTM layers (default 2)")
    if model != "deeplog":
        parser.add_argument("--heads", type=int, help="LAMA h (default 8)")
    parser.add_argument(
        "--top-k", type=int, help="fix k (g for DeepLog) instead of choosing it on validation"
    )
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--no-dedupe", action="store_true", help="train on every window, not distinct pairs")
    parser.add_argument("--curves", type=Path, help="save the training curves PNG here")
    parser.add_argument(
        "--pair-weight", choices=("count", "sqrt", "one"), default="one", help="loss weight of distinct pairs"
    )
    parser.add_argument(
        "--no-session-end",
        action="store_true",
        help="do not learn where sessions end (LAMA's text as written)",
    )


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_training_arguments(parser)
    parser.add_argument("--train", default=TRAIN_FILE, help="normal training sessions (deeplog format)")
    parser.add_argument("--abnormal-test", default=ABNORMAL_FILE)
    parser.add_argument(
        "--normal-test",
        help=f"normal test sessions (default: {NORMAL_SAMPLE_FILE}; with --feedback-from, the half of "
        "that file the feedback never sees)",
    )
    parser.add_argument(
        "--normal-total",
        type=int,
        default=553_366,
        help="normal test size to extrapolate precision to (0: use the normal file as it is)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="ours",
        help="ours: end-of-session marker, distinct pairs; paper: LAMA/DeepLog windowing, no marker, "
        "every window weighted by count",
    )
    feedback_loop.add_arguments(parser)


def train_config_from_args(args: argparse.Namespace) -> Any:
    from pipeline.models.next_event import default_top_k
    from pipeline.training.next_event import DEFAULT_EPOCHS, TrainConfig

    if args.top_k is not None:
        candidates: tuple[int, ...] = (args.top_k,)
    else:
        candidates = (4, 5, 6) if args.model == "lama" else (default_top_k("deeplog"),)
    return TrainConfig(
        epochs=args.epochs or DEFAULT_EPOCHS[args.model],
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        dedupe=not args.no_dedupe,
        pair_weight=args.pair_weight,
        end_of_session=not args.no_session_end,
        validation_fraction=args.validation_fraction,
        top_k_candidates=candidates,
    )


def paper_protocol(config: Any) -> Any:
    """The papers' training and windowing on top of `config` (k, epochs and sizes are kept)."""
    return dataclasses.replace(config, end_of_session=False, full_windows=True, pair_weight="count")


def model_config_from_args(args: argparse.Namespace) -> Any:
    from pipeline.models.next_event import default_config

    if args.model == "lama":
        return default_config("lama", args.window_size, layers=args.layers, heads=args.heads)
    return default_config("deeplog", args.window_size, layers=args.layers)


def run(args: argparse.Namespace, settings: Settings, name: str) -> dict[str, Any]:
    import torch

    from pipeline.datasets import data_file
    from pipeline.datasets.sessions import read_session_file
    from pipeline.training.next_event import save_curves_png, train_next_event

    torch.set_num_threads(args.threads)
    train = read_session_file(data_file(settings.data_dir, args.train))
    if args.feedback_from and args.protocol != "ours":
        raise ConfigError("evaluate hdfs-1-99: --feedback-from runs with --protocol ours only")
    train_config = train_config_from_args(args)
    if args.protocol == "paper":
        train_config = paper_protocol(train_config)
    started = time.perf_counter()
    trained = train_next_event(args.model, model_config_from_args(args), train, train_config)
    train_s = time.perf_counter() - started
    if args.curves:
        save_curves_png(trained.curves, args.curves, f"{args.model} on {args.train}")
    if args.feedback_from:
        result = feedback_loop.run(args, settings, trained, train)
        result.update(protocol=args.protocol, train_s=round(train_s, 1), train_sessions=len(train))
        result["table"] = feedback_loop.format_table(result)
        return result
    abnormal = read_session_file(data_file(settings.data_dir, args.abnormal_test))
    normal_test = args.normal_test or NORMAL_SAMPLE_FILE
    normal = read_session_file(data_file(settings.data_dir, normal_test))
    result = score_trained(trained, normal, abnormal, args.normal_total or None)
    result.update(
        protocol=args.protocol,
        train_s=round(train_s, 1),
        train_sessions=len(train),
        normal_file=str(normal_test),
    )
    result["table"] = format_table(args.model, result, args.normal_total or None)
    return result


def score_trained(
    trained: Any, normal: list[tuple[int, ...]], abnormal: list[tuple[int, ...]], normal_total: int | None
) -> dict[str, Any]:
    """Session scores of a trained model on normal and abnormal test sessions (flat result dict)."""
    from pipeline.evaluation.next_event_metrics import scores_dict, scores_with_and_without_oov
    from pipeline.training.next_event import session_worst_ranks

    started = time.perf_counter()
    window, end = trained.config.window_size, trained.train_config.end_of_session
    device, full = trained.train_config.device, trained.train_config.full_windows
    normal_worst = session_worst_ranks(
        trained.network, trained.vocabulary, normal, window, end, device, full_windows=full
    )
    abnormal_worst = session_worst_ranks(
        trained.network, trained.vocabulary, abnormal, window, end, device, full_windows=full
    )
    with_oov, without_oov = scores_with_and_without_oov(
        normal_worst, abnormal_worst, trained.top_k, normal_total
    )
    result: dict[str, Any] = {"model": trained.kind, "top_k": trained.top_k}
    result.update(scores_dict("", with_oov))
    result.update(scores_dict("_without_oov", without_oov))
    result.update(
        normal_sessions=len(normal),
        abnormal_sessions=len(abnormal),
        abnormal_oov_sessions=int((abnormal_worst < 0).sum()),
        normal_oov_sessions=int((normal_worst < 0).sum()),
        vocabulary_size=trained.vocabulary.num_events,
        validation_loss=round(float(trained.validation.get("loss", float("nan"))), 4),
        score_s=round(time.perf_counter() - started, 1),
    )
    return result


def format_table(model: str, result: dict[str, Any], normal_total: int | None) -> str:
    """Table 2's 1/99 row shape: without/with OOV for precision, recall and F1, next to the paper."""
    paper = PAPER_ROWS.get(model)
    lines = [
        "Table 2 (1/99 splitting), numbers are without OOV / with OOV",
        f"{'Model':<10}{'Precision':>16}{'Recall':>16}{'F1-measure':>16}",
    ]
    ours = [f"{result[m + '_without_oov']:.3f}/{result[m]:.3f}" for m in ("precision", "recall", "f1")]
    lines.append(f"{model + ' (ours)':<10}{ours[0]:>16}{ours[1]:>16}{ours[2]:>16}")
    if paper:
        cells = [f"{a:.3f}/{b:.3f}" for a, b in paper]
        lines.append(f"{model + ' (paper)':<10}{cells[0]:>16}{cells[1]:>16}{cells[2]:>16}")
    if normal_total:
        lines.append(
            f"precision extrapolated to {normal_total:,} normal sessions from FP rate "
            f"{result['fpr']:.4%} on {result['normal_sessions']} sampled normal sessions; "
            f"k = {result['top_k']}"
        )
    if "protocol" in result:
        lines.append(f"protocol: {result['protocol']}")
    return "\n".join(lines)
