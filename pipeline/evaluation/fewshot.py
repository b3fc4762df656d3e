"""`fewshot-bgl` and `fewshot-hadoop`: LogAnMeta Table I, ProtoSiamese against its two baselines.

Data and splits (explicit and seeded):
- BGL: 5-minute tumbling windows (the paper's 5-minute sequences) over each file; label = normal or
  the window's dominant alert category. Train on BGL_2k/4k/6k/8k, test on BGL_10k; test lines that
  also occur verbatim in a training file are dropped. Templates are learned on the training lines
  only and test lines are matched against them. Only classes with `--min-train-windows` training
  windows and at least one test window are scored (a class never trained on cannot be named).
- Hadoop: counts of event numbers per unit. By default a unit is a job (`--unit application`: the
  containers of one application id merged), because failures are injected per job and most
  containers of a failed job are indistinguishable from normal ones; `--unit container` scores single
  containers. Containers: the support pool is hadoop_train (17 normal) plus `--shots` (default 10)
  per class drawn (seeded) from the four test files; the rest is the test set. Jobs: hadoop_train's
  containers belong to jobs of hadoop_test_normal, so they are merged into those jobs first; then
  `--shots` (default 3) jobs per class form the support pool and the other jobs the test set.

Training: the paper's encoder, losses, AdamW 1e-3, 500 epochs, milestones 150/450. Deviation: episodes
are 4-way (normal plus 3 anomaly types, as the paper mixes normal and anomalous examples in every
task) 2-shot with 4 queries, rather than 2-way 2-shot, because the test task names every class at
once; `--n-way 2 --q-query 2` is the paper's setting.

Metrics: per-class recall; macro accuracy = the mean of per-class recalls (each class weighs the
same, however rare); micro accuracy = share of test windows right. The binary baseline cannot name an
anomaly type, so to score it on the same C-class task a window it flags as anomalous is assigned the
most frequent anomaly type of the training set (`binary_baseline_accuracy`). The paper's Table I
instead reports its plain binary accuracy, an easier task; that is kept, per class, as
`binary_baseline_detection_accuracy` (a flagged anomaly of any type counts as right), for reference.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError
from pipeline.settings import Settings

log = logging.getLogger(__name__)

NORMAL = "normal"
BGL_TRAIN_DEFAULT = ("bgl/BGL_2k.log", "bgl/BGL_4k.log", "bgl/BGL_6k.log", "bgl/BGL_8k.log")
BGL_TEST_DEFAULT = ("bgl/BGL_10k.log",)
PROTOSIAMESE_EPOCHS = 500


@dataclass(frozen=True)
class FewShotData:
    """Windows as template-count maps with integer labels indexing `class_names` (0 = normal)."""

    class_names: tuple[str, ...]
    train_windows: tuple[dict[int, int], ...]
    train_labels: np.ndarray
    test_windows: tuple[dict[int, int], ...]
    test_labels: np.ndarray
    notes: str


def add_window_arguments(parser: Any) -> None:
    """BGL training data and its time windows (shared with `logad train protosiamese`).

    `parser` is an `argparse` parser or argument group.
    """
    parser.add_argument("--train-files", nargs="+", default=list(BGL_TRAIN_DEFAULT), help="BGL train logs")
    parser.add_argument("--window-s", type=float, default=300.0, help="window length (seconds)")
    parser.add_argument(
        "--step-s", type=float, default=300.0, help="window hop (seconds; = length: tumbling)"
    )
    parser.add_argument("--min-train-windows", type=int, default=2, help="fewer: class not learned")


def add_episodic_arguments(parser: Any, epochs: bool = True) -> None:
    """Episodic training options (shared with `logad train protosiamese`, which has its own --epochs)."""
    if epochs:
        parser.add_argument(
            "--epochs", type=int, default=PROTOSIAMESE_EPOCHS, help="episodic epochs (paper: 500)"
        )
    parser.add_argument("--episodes-per-epoch", type=int, default=10)
    parser.add_argument(
        "--milestones", type=int, nargs="*", default=[150, 450], help="lr x0.1 at these epochs"
    )
    parser.add_argument("--n-way", type=int, default=4, help="classes per episode (paper: 2)")
    parser.add_argument("--k-shot", type=int, default=2, help="support examples per class (paper: 2)")
    parser.add_argument("--q-query", type=int, default=4, help="query examples per class")


def episodic_config_from_args(args: argparse.Namespace, seed: int) -> Any:
    """The `EpisodicConfig` of the options above; normal (class 0) is in every episode."""
    from pipeline.training.episodic import EpisodicConfig

    return EpisodicConfig(
        n_way=args.n_way, k_shot=args.k_shot, q_query=args.q_query,
        epochs=args.epochs if args.epochs is not None else PROTOSIAMESE_EPOCHS,
        episodes_per_epoch=args.episodes_per_epoch, milestones=tuple(args.milestones),
        always_include=0, seed=seed,
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Options of both evaluations; `name` picks the data-specific ones."""
    if name == "fewshot-bgl":
        add_window_arguments(parser)
        parser.add_argument("--test-files", nargs="+", default=list(BGL_TEST_DEFAULT), help="BGL test logs")
    else:
        parser.add_argument(
            "--train-files",
            nargs="+",
            default=["normal=hadoop/hadoop_train"],
            help="LABEL=PATH support files (all sessions go to training)",
        )
        parser.add_argument(
            "--test-files",
            nargs="+",
            default=None,
            help="LABEL=PATH files (default: the four hadoop_test_* files)",
        )
        parser.add_argument(
            "--unit",
            choices=("application", "container"),
            default="application",
            help="classify whole jobs (a job's containers merged) or single containers",
        )
        parser.add_argument(
            "--shots",
            type=int,
            default=None,
            help="units per class moved to the support pool (default 3 / 10)",
        )
    parser.add_argument("--output-dir", type=Path, default=Path("var/eval"), help="confusion-matrix PNG here")
    parser.add_argument("--seed", type=int, default=0, help="first seed; repeat r uses seed + r")
    parser.add_argument(
        "--repeats", type=int, default=1 if name == "fewshot-bgl" else 5, help="seeded runs averaged"
    )
    add_episodic_arguments(parser)
    parser.add_argument("--baseline-epochs", type=int, default=100)
    parser.add_argument("--baseline-lr", type=float, default=1e-3, help="paper: 1e-6 (see baselines.py)")


@dataclass(frozen=True)
class Predictions:
    """One seeded run: test labels and each model's predicted class per test window."""

    y: np.ndarray
    proto: np.ndarray
    multi: np.ndarray
    binary: np.ndarray
    detect: np.ndarray
    n_features: int
    final_loss: float


def run(args: argparse.Namespace, settings: Settings, name: str) -> dict[str, Any]:
    """Train ProtoSiamese and both baselines per seeded repeat, score the test windows, draw the matrix.

    Headline numbers are means over `--repeats` runs (seeds seed, seed + 1, ...): for Hadoop each
    repeat draws a new support/test split; for BGL the split is fixed and only training varies.
    """
    import torch

    # These nets are tiny: with more than one thread, synchronisation costs more than the maths.
    torch.set_num_threads(1)
    started = time.perf_counter()
    if args.repeats < 1:
        raise ConfigError(f"{name}: --repeats must be >= 1, got {args.repeats}")
    bgl = _bgl_data(args, settings) if name == "fewshot-bgl" else None
    runs: list[Predictions] = []
    for r in range(args.repeats):
        seed = args.seed + r
        data = bgl if bgl is not None else _hadoop_data(args, settings, seed)
        runs.append(_run_once(args, data, seed))
    n_classes = len(data.class_names)
    recalls = {
        key: np.array([per_class_recall(p.y, getattr(p, key), n_classes) for p in runs])
        for key in ("proto", "multi", "binary", "detect")
    }  # (repeats, C) each
    macro = {key: np.nanmean(rec, axis=1) for key, rec in recalls.items()}  # (repeats,)
    micro = {key: np.array([np.mean(getattr(p, key) == p.y) for p in runs]) for key in recalls}
    matrix = sum(confusion_matrix(p.y, p.proto, n_classes) for p in runs)
    png = plot_confusion(
        np.asarray(matrix), data.class_names, args.output_dir / f"{name}-protosiamese-confusion.png",
        f"{name}: ProtoSiamese, {args.repeats} run(s) summed (rows: true)",
    )  # fmt: skip
    result: dict[str, Any] = {
        "protosiamese_macro_accuracy": float(macro["proto"].mean()),
        "binary_baseline_accuracy": float(macro["binary"].mean()),
        "multiclass_baseline_accuracy": float(macro["multi"].mean()),
        "binary_baseline_detection_accuracy": float(macro["detect"].mean()),
        "protosiamese_macro_accuracy_std": float(macro["proto"].std()),
        "binary_baseline_accuracy_std": float(macro["binary"].std()),
        "multiclass_baseline_accuracy_std": float(macro["multi"].std()),
        "protosiamese_micro_accuracy": float(micro["proto"].mean()),
        "binary_baseline_micro_accuracy": float(micro["binary"].mean()),
        "multiclass_baseline_micro_accuracy": float(micro["multi"].mean()),
        "repeats": args.repeats,
        "n_classes": n_classes,
        "n_train": len(data.train_labels),
        "n_test": len(runs[-1].y),
        "n_features": runs[-1].n_features,
        "final_episode_loss": float(np.mean([p.final_loss for p in runs])),
        "confusion_png": str(png),
        "seconds": round(time.perf_counter() - started, 1),
    }
    mean_recall = {key: np.nanmean(rec, axis=0) for key, rec in recalls.items()}
    for i, cls in enumerate(data.class_names):
        result[f"recall_protosiamese_{cls}"] = float(mean_recall["proto"][i])
        result[f"recall_multiclass_{cls}"] = float(mean_recall["multi"][i])
        result[f"recall_binary_{cls}"] = float(mean_recall["binary"][i])
        result[f"recall_binary_detection_{cls}"] = float(mean_recall["detect"][i])
    result["table"] = _table(name, data, result, mean_recall)
    return result


def _run_once(args: argparse.Namespace, data: FewShotData, seed: int) -> Predictions:
    import torch

    from pipeline.models.baselines import BaselineConfig, predict, train_classifier
    from pipeline.tfidf import pad_windows, tfidf_matrix
    from pipeline.training.protosiamese import train_protosiamese

    n_classes = len(data.class_names)
    trained = train_protosiamese(
        data.train_windows, data.train_labels, data.class_names, episodic_config_from_args(args, seed)
    )
    idf, history = trained.idf, trained.history
    test_ids, test_counts = (torch.from_numpy(a) for a in pad_windows(data.test_windows))
    # Score through the TorchScript export: what is measured is what would be served.
    with torch.no_grad():
        proto_pred = trained.scripted()(test_ids, test_counts)[0].flatten().numpy()

    baseline = BaselineConfig(epochs=args.baseline_epochs, lr=args.baseline_lr, seed=seed)
    x_tr, x_te = tfidf_matrix(data.train_windows, idf), tfidf_matrix(data.test_windows, idf)
    multi_model, _ = train_classifier(x_tr, data.train_labels, n_classes, baseline)
    binary_model, _ = train_classifier(x_tr, (data.train_labels != 0).astype(np.int64), 2, baseline)
    binary_anomalous = predict(binary_model, x_te) == 1
    # Binary scoring (module docstring): a flagged window gets the most frequent training anomaly type;
    # for the detection score, a flagged anomaly is credited with its true type.
    anomaly_counts = np.bincount(data.train_labels, minlength=n_classes)[1:]
    prior_type = 1 + int(np.argmax(anomaly_counts)) if n_classes > 1 else 0
    y = data.test_labels
    return Predictions(
        y=y,
        proto=proto_pred,
        multi=predict(multi_model, x_te),
        binary=np.where(binary_anomalous, prior_type, 0),
        detect=np.where(binary_anomalous, np.where(y != 0, y, -1), 0),
        n_features=idf.n_columns,
        final_loss=history[-1].loss,
    )


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class 0..n_classes-1 (NaN for a class absent from `y_true`)."""
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        mask = y_true == c
        if mask.any():
            out[c] = float(np.mean(y_pred[mask] == c))
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts, rows true class, columns predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def plot_confusion(matrix: np.ndarray, class_names: tuple[str, ...], path: Path, title: str) -> Path:
    """Save a labelled confusion matrix as PNG (matplotlib Agg) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    size = 2.5 + 0.6 * len(class_names)
    fig, ax = plt.subplots(figsize=(size, size))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    for i in ticks:
        for j in ticks:
            if matrix[i, j]:
                colour = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _table(name: str, data: FewShotData, result: dict[str, Any], recall: dict[str, np.ndarray]) -> str:
    r = result
    rows = [
        ("Baseline binary classifier", r["binary_baseline_accuracy"], r["binary_baseline_micro_accuracy"]),
        ("Baseline binary, detection only *", r["binary_baseline_detection_accuracy"], float("nan")),
        (
            "Baseline multi-class classifier",
            r["multiclass_baseline_accuracy"],
            r["multiclass_baseline_micro_accuracy"],
        ),
        ("Our hybrid protoSiamese", r["protosiamese_macro_accuracy"], r["protosiamese_micro_accuracy"]),
    ]
    std = {
        "Baseline binary classifier": r["binary_baseline_accuracy_std"],
        "Baseline multi-class classifier": r["multiclass_baseline_accuracy_std"],
        "Our hybrid protoSiamese": r["protosiamese_macro_accuracy_std"],
    }
    lines = [
        f"LogAnMeta Table I on {name} ({data.notes}); mean of {r['repeats']} seeded run(s)",
        f"{'Model':<36}{'Macro acc.':>12}{'(std)':>8}{'Micro acc.':>12}",
        *(
            f"{label:<36}{macro:>12.2%}{_pct(std.get(label, float('nan'))):>8}{_pct(micro):>12}"
            for label, macro, micro in rows
        ),
        "Macro accuracy = mean over classes of per-class recall. The binary baseline cannot name a type:",
        "a window it flags gets the most frequent training anomaly type. * Easier task, not comparable:",
        "a flagged anomaly of any type counts as right (the paper's binary accuracy, per class).",
        "",
        f"{'class (recall)':<24}{'train':>7}{'test':>7}{'proto':>8}{'multi':>8}{'binary':>8}{'detect*':>8}",
    ]
    for i, cls in enumerate(data.class_names):
        n_train = int(np.sum(data.train_labels == i))
        n_test = int(np.sum(data.test_labels == i))
        values = "".join(f"{recall[k][i]:>8.2f}" for k in ("proto", "multi", "binary", "detect"))
        lines.append(f"{cls:<24}{n_train:>7}{n_test:>7}{values}")
    lines.append(f"confusion matrix: {result['confusion_png']}")
    return "\n".join(lines)


def _bgl_data(args: argparse.Namespace, settings: Settings) -> FewShotData:
    from pipeline.datasets import data_file
    from pipeline.datasets.bgl import bgl_events, learn_windows, read_bgl, window_classes
    from pipeline.time_windows import WindowSpec, time_windows

    spec = WindowSpec(size_s=args.window_s, step_s=args.step_s)
    train_records = [[*read_bgl(data_file(settings.data_dir, f))] for f in args.train_files]
    seen = {r.raw for records in train_records for r in records}
    test_records = [
        [r for r in read_bgl(data_file(settings.data_dir, f)) if r.raw not in seen] for f in args.test_files
    ]
    templater, train = learn_windows(train_records, spec)
    test = [w for records in test_records for w in time_windows(bgl_events(records, templater), spec)]
    classes = window_classes(train, args.min_train_windows, required={w.label for w in test})
    index = {c: i for i, c in enumerate(classes)}
    train = [w for w in train if w.label in index]
    dropped = sum(1 for w in test if w.label not in index)
    test = [w for w in test if w.label in index]
    log.info(
        "fewshot-bgl: %d classes scored, %d test windows of unscored classes left out", len(classes), dropped
    )
    return FewShotData(
        class_names=classes,
        train_windows=tuple(w.count_map() for w in train),
        train_labels=np.array([index[w.label] for w in train], dtype=np.int64),
        test_windows=tuple(w.count_map() for w in test),
        test_labels=np.array([index[w.label] for w in test], dtype=np.int64),
        notes=f"{args.window_s:g}s windows, step {args.step_s:g}s; train {len(args.train_files)} files, "
        f"test {len(args.test_files)}; {dropped} test windows of unscored classes left out",
    )


def _hadoop_data(args: argparse.Namespace, settings: Settings, seed: int) -> FewShotData:
    from pipeline.datasets import data_file
    from pipeline.datasets.hadoop import HADOOP_TEST_FILES, read_sessions

    def label_paths(items: list[str]) -> list[tuple[str, str]]:
        pairs = [item.split("=", 1) for item in items]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError(f"fewshot-hadoop: files must be given as LABEL=PATH, got {items}")
        return [(p[0], p[1]) for p in pairs]

    test_items = args.test_files or [f"{k}={v}" for k, v in HADOOP_TEST_FILES.items()]
    by_job = args.unit == "application"
    shots = args.shots if args.shots is not None else (3 if by_job else 10)
    support = [
        s
        for lbl, p in label_paths(args.train_files)
        for s in read_sessions(data_file(settings.data_dir, p), lbl)
    ]
    pools = {lbl: read_sessions(data_file(settings.data_dir, p), lbl) for lbl, p in label_paths(test_items)}
    if by_job:
        # hadoop_train's containers all belong to jobs of hadoop_test_normal: they join their jobs in
        # the pools, so a job is in the support pool or the test set whole, never in both.
        for s in support:
            pools.setdefault(s.label, []).append(s)
        support = []
        pools = {lbl: merge_by_application(sessions) for lbl, sessions in pools.items()}
    rng = np.random.default_rng(seed)
    test = []
    for label in sorted(pools):
        order = rng.permutation(len(pools[label]))
        support += [pools[label][i] for i in order[:shots]]
        test += [pools[label][i] for i in order[shots:]]
    classes = (NORMAL, *sorted({s.label for s in support + test} - {NORMAL}))
    index = {c: i for i, c in enumerate(classes)}
    return FewShotData(
        class_names=classes,
        train_windows=tuple(s.count_map() for s in support),
        train_labels=np.array([index[s.label] for s in support], dtype=np.int64),
        test_windows=tuple(s.count_map() for s in test),
        test_labels=np.array([index[s.label] for s in test], dtype=np.int64),
        notes=f"unit: {args.unit}; support: train files + {shots} per class; test: rest",
    )


def _pct(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.2%}"


def merge_by_application(sessions: list[Any]) -> list[Any]:
    """One unit per job: the containers of an application id concatenated (labels come from the file).

    The failure types are injected per job and most containers of a failed job look normal, so a
    container's own counts rarely show its job's failure; the job's merged counts do.
    """
    from pipeline.datasets.hadoop import HadoopSession

    jobs: dict[tuple[str, str], list[int]] = {}
    for s in sessions:
        jobs.setdefault((s.session_id.split("/", 1)[0], s.label), []).extend(s.events)
    return [HadoopSession(job, tuple(events), label) for (job, label), events in jobs.items()]
