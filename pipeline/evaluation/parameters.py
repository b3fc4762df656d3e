"""`logad evaluate params-synthetic`: DeepLog's parameter value model, recall and false alarms.

1. Synthetic HDFS-like log (`pipeline.datasets.synthetic`) whose anomalous blocks keep a normal event
   sequence but carry abnormal values (`slow_write`: the write 50x slower; `abnormal_size`: 4-64x the
   block size). 80% of the normal blocks (seeded) train; the other normal blocks and every anomalous
   one test. A block is flagged when any of its events is: precision, recall and F1 over test blocks.
2. HDFS_100k (`data_dir/hdfs`), the same split of its normal blocks: the share of normal test blocks
   flagged is the false-positive rate. Its labelled anomalies are sequence anomalies; how many of
   them the parameter model flags is shown for information only.

Test events run through the online path (`ParameterDetector` with the scripted module, batches of
`--batch-events`, one key history across the test stream). The headline numbers use the thresholds
training chose (its z picked on validation sessions); `--sweep` adds rows at fixed z, thresholds
from the same validation errors (`thresholds_at`), to show the trade-off.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pipeline.settings import Settings

LOG_FILE = "hdfs/HDFS_100k.log.gz"
LABEL_FILE = "hdfs/abnormal_blocks.csv"


def add_model_arguments(parser: Any, common: bool = True) -> None:
    """Parameter-model options; `common` adds the ones `logad train` already shares across models."""
    if common:
        parser.add_argument("--epochs", type=int, help="default 5")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="cpu", help="cpu or cuda")
        parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
        parser.add_argument("--window-size", type=int, default=10, help="h: previous vectors of the key")
        parser.add_argument("--layers", type=int, help="LSTM layers (default 2)")
        parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--param-hidden", type=int, default=64, help="LSTM units")
    parser.add_argument("--param-batch-size", type=int, default=1024)
    parser.add_argument(
        "--param-sigmas", type=float, help="fix z of the Gaussian threshold (default: chosen on validation)"
    )
    parser.add_argument(
        "--param-max-session-fpr",
        type=float,
        default=0.01,
        help="validation sessions the chosen level may flag",
    )
    parser.add_argument("--param-log-elapsed", action="store_true", help="elapsed time on a log scale")
    parser.add_argument("--param-min-windows", type=int, default=50, help="fitting windows a key needs")


def configs_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    """(ParameterModelConfig, ParameterTrainConfig) from the options of `add_model_arguments`."""
    from pipeline.models.parameters import ParameterModelConfig
    from pipeline.training.parameters import ParameterTrainConfig

    model = ParameterModelConfig(
        window_size=args.window_size,
        hidden=args.param_hidden,
        layers=args.layers or 2,
        log_elapsed=args.param_log_elapsed,
    )
    train = ParameterTrainConfig(
        epochs=args.epochs or 5,
        batch_size=args.param_batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        min_windows=args.param_min_windows,
        max_validation_session_fpr=args.param_max_session_fpr,
    )
    if args.param_sigmas is not None:
        train = dataclasses.replace(train, threshold_sigmas=(args.param_sigmas,))
    return model, train


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_model_arguments(parser)
    parser.add_argument("--lines", type=int, default=100_000, help="synthetic lines (whole blocks)")
    parser.add_argument("--anomaly-rate", type=float, default=0.05, help="share of synthetic blocks")
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument("--batch-events", type=int, default=1024, help="events per online batch")
    parser.add_argument(
        "--sweep", type=float, nargs="*", default=[3.09, 4.0, 6.0, 8.0, 10.0], help="more fixed z to report"
    )
    parser.add_argument("--logs", default=LOG_FILE, help="real HDFS log for the false-positive rate")
    parser.add_argument("--labels", default=LABEL_FILE)
    parser.add_argument("--no-hdfs", action="store_true", help="skip the HDFS_100k false-positive run")


def run(args: argparse.Namespace, settings: Settings, name: str) -> dict[str, Any]:
    import torch

    from pipeline.datasets import data_file
    from pipeline.datasets.hdfs_lifecycle import PARAMETER_ANOMALY_KINDS
    from pipeline.datasets.loghub import read_lines
    from pipeline.datasets.sessions import read_block_labels
    from pipeline.datasets.synthetic import SyntheticConfig, SyntheticHdfs

    torch.set_num_threads(args.threads)
    levels = sorted(set(args.sweep))
    synthetic = SyntheticHdfs(
        SyntheticConfig(
            lines=args.lines,
            anomaly_rate=args.anomaly_rate,
            seed=args.seed,
            anomaly_kinds=PARAMETER_ANOMALY_KINDS,
        )
    )
    lines = list(synthetic)
    result: dict[str, Any] = {}
    syn = measure(args, lines, dict(synthetic.labels), levels)
    main = syn["levels"]["chosen"]
    result.update(precision=main["precision"], recall=main["recall"], f1=main["f1"], synthetic=syn)
    if not args.no_hdfs:
        hdfs_lines = list(read_lines(data_file(settings.data_dir, args.logs)))
        labels = dict.fromkeys(read_block_labels(data_file(settings.data_dir, args.labels)), "labelled")
        hdfs = measure(args, hdfs_lines, labels, levels)
        result.update(hdfs_fpr=hdfs["levels"]["chosen"]["fpr"], hdfs=hdfs)
    result["table"] = format_table(result)
    return result


def measure(
    args: argparse.Namespace, lines: Sequence[str], labels: dict[str, str], levels: Sequence[float]
) -> dict[str, Any]:
    """Train on the training share of normal blocks, then flag test blocks at the chosen z and each
    of `levels`."""
    import torch

    from pipeline.formats import get_format
    from pipeline.training.parameters import train_parameters_from_lines

    model_config, train_config = configs_from_args(args)
    started = time.perf_counter()
    run = train_parameters_from_lines(
        lines, get_format("hdfs"), labels, model_config, train_config, args.train_fraction
    )
    train_s = time.perf_counter() - started
    test = set(run.test_keys)
    test_events = [e for e in run.events if e.session_key in test]
    anomalous = {k for k in run.test_keys if k in labels}
    normal = test - anomalous
    by_level: dict[str, dict[str, Any]] = {}
    for level in [None, *levels]:
        model = copy.deepcopy(run.trained.model)
        if level is not None:
            model.set_thresholds(run.trained.thresholds_at(level))
        flagged = flag_blocks(torch.jit.script(model), test_events, args.batch_events)
        tp, fp = len(flagged & anomalous), len(flagged & normal)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / len(anomalous) if anomalous else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        kinds = Counter(labels[k] for k in anomalous)
        caught = Counter(labels[k] for k in flagged & anomalous)
        by_level["chosen" if level is None else str(level)] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "fpr": fp / len(normal) if normal else 0.0,
            "flagged_normal": fp,
            "flagged_anomalous": tp,
            "recall_by_kind": {k: caught[k] / n for k, n in sorted(kinds.items())},
        }
    return {
        "levels": by_level,
        "blocks": len(run.train_keys) + len(run.test_keys),
        "train_blocks": len(run.train_keys),
        "test_normal_blocks": len(normal),
        "test_anomalous_blocks": len(anomalous),
        "test_events": len(test_events),
        "sigmas": run.trained.sigmas,
        "keys_modelled": len(run.trained.schema.keys),
        "features": {str(k["template_id"]): k["features"] for k in run.trained.keys},
        "validation": run.trained.validation,
        "train_s": round(train_s, 1),
        "epoch_loss": run.trained.curves["epoch_loss"],
    }


def flag_blocks(module: Any, events: Sequence[Any], batch_events: int) -> set[str]:
    """Sessions with at least one anomalous event, through `ParameterDetector` in batches."""
    from pipeline.parameter_detection import ParameterDetector
    from pipeline.parameter_features import with_previous_ts
    from pipeline.parameter_scoring import FixedVersion, TorchScriptParameterScorer
    from pipeline.training.parameters import MODEL_NAME

    detector = ParameterDetector(TorchScriptParameterScorer(FixedVersion(MODEL_NAME, module)))
    pairs = list(with_previous_ts(events))

    async def flag() -> set[str]:
        flagged: set[str] = set()
        for start in range(0, len(pairs), batch_events):
            chunk = pairs[start : start + batch_events]
            found = await detector.check([e for e, _ in chunk], [p for _, p in chunk])
            flagged.update(chunk[a.index][0].session_key for a in found)
        return flagged

    return asyncio.run(flag())


def format_table(result: dict[str, Any]) -> str:
    syn, hdfs = result["synthetic"], result.get("hdfs")
    lines = [
        "DeepLog parameter value model (a block is flagged when any of its events is)",
        f"{'z (sigmas)':>16}  {'P (syn)':>8}  {'R (syn)':>8}  {'F1 (syn)':>8}  {'FPR (syn)':>9}  "
        f"{'FPR (HDFS_100k)':>15}",
    ]
    for level, row in syn["levels"].items():
        real = f"{hdfs['levels'][level]['fpr']:.4f}" if hdfs else "-"
        name = level
        if level == "chosen":
            chosen = [f"{syn['sigmas']:g}"] + ([f"{hdfs['sigmas']:g}"] if hdfs else [])
            name = f"chosen {'/'.join(chosen)}"
        lines.append(
            f"{name:>16}  {row['precision']:>8.4f}  {row['recall']:>8.4f}  {row['f1']:>8.4f}  "
            f"{row['fpr']:>9.4f}  {real:>15}"
        )
    main = syn["levels"]["chosen"]
    lines.append(f"synthetic recall by kind (chosen level): {main['recall_by_kind']}")
    lines.append(
        f"synthetic: {syn['test_normal_blocks']} normal + {syn['test_anomalous_blocks']} anomalous test "
        f"blocks, {syn['train_blocks']} train, {syn['keys_modelled']} keys modelled, trained in "
        f"{syn['train_s']}s"
    )
    if hdfs:
        row = hdfs["levels"]["chosen"]
        lines.append(
            f"HDFS_100k: {row['flagged_normal']} of {hdfs['test_normal_blocks']} normal test blocks flagged; "
            f"{row['flagged_anomalous']} of {hdfs['test_anomalous_blocks']} labelled (sequence) anomalies; "
            f"{hdfs['keys_modelled']} keys modelled, trained in {hdfs['train_s']}s"
        )
    return "\n".join(lines)
