"""Training time per epoch of LAMA, DeepLog (on DeepLog's HDFS training split) and ProtoSiamese (Hadoop).

    python benchmarks/training.py [--epochs 1] [--proto-epochs 50] [--json]

Uses the project's own training functions with their defaults (`pipeline.training.next_event`:
distinct (window, next) pairs weighted by their counts, batch 128, Adam; `pipeline.training.episodic`:
the few-shot evaluation's episodes, 4-way 2-shot 4-query, 10 episodes per epoch). A next-event epoch
is measured as (time of a run with E epochs - time of a run with 0 epochs) / E, so the fixed costs
(pair building, top-k choice on the validation split) are reported apart as `setup_s`; an epoch
includes its validation-loss pass. Runs on CPU, and also on CUDA when available (next-event models;
the episodic trainer keeps its tensors on the CPU). All models are timed in one run, side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: `common` sits next to it

from common import RESULTS_DIR, machine_info, markdown_table, print_result, write_results


def time_next_event(kind: str, sessions: list[tuple[int, ...]], epochs: int, device: str) -> dict[str, Any]:
    from pipeline.models.next_event import default_config
    from pipeline.training.next_event import TrainConfig, split_sessions, train_next_event
    from pipeline.windows import count_pairs

    config = default_config(kind, window_size=10)
    runs = {}
    for n in (0, epochs):
        train_config = TrainConfig(epochs=n, device=device)
        started = time.perf_counter()
        trained = train_next_event(kind, config, sessions, train_config, progress=False)
        if device == "cuda":
            import torch

            torch.cuda.synchronize()
        runs[n] = (time.perf_counter() - started, trained)
    setup_s = runs[0][0]
    total_s, trained = runs[epochs]
    epoch_s = (total_s - setup_s) / epochs
    fit, _ = split_sessions(sessions, train_config.validation_fraction, train_config.seed)
    _, nexts, counts = count_pairs(fit, config.window_size, train_config.end_of_session)
    steps = len(trained.curves["step_loss"]) // epochs
    return {
        "model": kind,
        "device": device,
        "epochs": epochs,
        "distinct_pairs": len(nexts),
        "windows_covered": int(counts.sum()),
        "steps_per_epoch": steps,
        "epoch_s": epoch_s,
        "setup_s": setup_s,
        "steps_per_s": steps / epoch_s,
        "pairs_per_s": len(nexts) / epoch_s,
        "final_loss": trained.curves["epoch_loss"][-1],
    }


def time_protosiamese(data_dir: Path, epochs: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from pipeline.datasets.hadoop import HADOOP_TEST_FILES, HADOOP_TRAIN, load_hadoop
    from pipeline.models.protosiamese import Encoder, ProtoSiameseConfig
    from pipeline.tfidf import TfidfFeaturizer, fit_idf, pad_windows
    from pipeline.training.episodic import EpisodicConfig, train_episodic

    files = {"normal_train": HADOOP_TRAIN, **HADOOP_TEST_FILES}
    sessions = [s for group in load_hadoop(data_dir, files).values() for s in group]
    names = sorted({s.label for s in sessions})
    labels = np.asarray([names.index(s.label) for s in sessions])
    counts = [s.count_map() for s in sessions]
    idf = fit_idf(counts)
    ids, cnt = pad_windows(counts)
    with torch.no_grad():
        features = TfidfFeaturizer(idf)(torch.from_numpy(ids), torch.from_numpy(cnt))
    config = EpisodicConfig(n_way=4, k_shot=2, q_query=4, epochs=epochs, episodes_per_epoch=10)
    encoder = Encoder(ProtoSiameseConfig(input_dim=idf.n_columns))
    started = time.perf_counter()
    history = train_episodic(encoder, features, labels, config, progress=False)
    elapsed = time.perf_counter() - started
    return {
        "model": "protosiamese",
        "device": "cpu",
        "epochs": epochs,
        "windows": len(sessions),
        "episodes_per_epoch": config.episodes_per_epoch,
        "epoch_s": elapsed / epochs,
        "episodes_per_s": epochs * config.episodes_per_epoch / elapsed,
        "paper_500_epochs_s": elapsed / epochs * 500,
        "final_loss": history[-1].loss,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="shared data folder (env LOGAD_DATA_DIR)")
    parser.add_argument("--epochs", type=int, default=1, help="next-event epochs timed (after a 0-epoch run)")
    parser.add_argument("--proto-epochs", type=int, default=50, help="episodic epochs timed (each is short)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)

    import torch

    from pipeline.datasets import data_file
    from pipeline.datasets.sessions import read_session_file
    from pipeline.settings import Settings

    torch.set_num_threads(args.threads)
    settings = Settings.from_env(os.environ, data_dir=Path(args.data_dir) if args.data_dir else None)
    started = time.perf_counter()
    sessions = read_session_file(data_file(settings.data_dir, "hdfs/deeplog_train"))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    next_rows = []
    for kind in ("lama", "deeplog"):
        for device in devices:
            print(f"[training] {kind} on {device} ...", file=sys.stderr, flush=True)
            next_rows.append(time_next_event(kind, sessions, args.epochs, device))
    deeplog_cpu = next(r["epoch_s"] for r in next_rows if r["model"] == "deeplog" and r["device"] == "cpu")
    for r in next_rows:
        r["x_deeplog_cpu_time"] = r["epoch_s"] / deeplog_cpu
    print("[training] protosiamese on cpu ...", file=sys.stderr, flush=True)
    proto = time_protosiamese(settings.data_dir, args.proto_epochs)
    markdown = "\n\n".join(
        [
            "## Next-event models on deeplog_train (4,855 sessions; 90% fit, 10% validation)\n\n"
            + markdown_table(next_rows),
            "## ProtoSiamese episodic training on the Hadoop sessions\n\n" + markdown_table([proto]),
            f"- torch threads: {args.threads}; run {time.perf_counter() - started:.0f} s",
        ]
    )
    result = {
        "benchmark": "training",
        "machine": machine_info(),
        "next_event": next_rows,
        "protosiamese": proto,
        "elapsed_s": time.perf_counter() - started,
    }
    command = f"python benchmarks/training.py --epochs {args.epochs} --proto-epochs {args.proto_epochs}"
    write_results("training", result, markdown, command, args.results_dir)
    print_result(markdown, result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
