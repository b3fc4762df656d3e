"""Inference speed of LAMA, DeepLog and ProtoSiamese: naive, batched TorchScript, Triton gRPC, cache.

    python benchmarks/inference.py [--quick] [--no-triton] [--json]

All paths run in one process on the same real inputs, side by side, so their ratios hold on a shared,
noisy machine. Models are freshly initialised at full size (untrained weights cost the same time).
- naive: one sequence per call, eager module and TorchScript module;
- batched: the TorchScript module on batches of 1 .. 4096 rows (and on CUDA when there is one);
- triton: a real `tritonserver` on free ports with a temporary repository (models published with
  `pipeline.model_repository.publish_version`), called with `AsyncTritonClient`, one request at a
  time per batch size, then several concurrent requests;
- cache: `TorchScriptNextEventScorer` (exact-reuse LRU) over every (window, next) row of DeepLog's
  HDFS sessions (deeplog_train + deeplog_test_abnormal), against plain batched calls on the same rows.
Inputs are real: next-event windows from those sessions, ProtoSiamese count vectors from the Hadoop
sessions. `torch.set_num_threads(2)` unless `--threads`. Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: `common` sits next to it

from common import (
    RESULTS_DIR,
    latency_stats,
    machine_info,
    markdown_table,
    print_result,
    time_calls,
    transformer_flops,
)

NEXT_EVENT_OUTPUTS = ("topk_ids", "topk_probs", "next_known", "anomalous")
CLASS_OUTPUTS = ("class_index", "distances")
# The benchmark's models are untrained and carry no parser state: published for timing only, never
# served by a worker (pipeline.version_checks).
BENCH_ONLY = "benchmark: untrained model without parser state"


@dataclass(frozen=True)
class Budget:
    """How long each measurement runs; `--quick` shrinks everything."""

    batch_sizes: tuple[int, ...]
    triton_batch_sizes: tuple[int, ...]
    naive_calls: int
    min_time_s: float
    min_calls: int
    concurrency: int
    concurrent_rounds: int
    cache_share: float  # share of the HDFS sessions replayed through the cache


FULL = Budget((1, 32, 256, 1024, 4096), (1, 32, 256, 1024), 100, 2.0, 3, 4, 6, 1.0)
QUICK = Budget((1, 256, 1024), (1, 256), 20, 0.5, 2, 4, 2, 0.1)


@dataclass
class Bench:
    """One model under test: eager and scripted modules, real input rows, Triton names."""

    name: str
    eager: Any
    scripted: Any
    inputs: tuple[np.ndarray, ...]  # real rows, cycled to fill a batch
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    spec: Any
    metadata: dict[str, Any]

    def batch(self, size: int, offset: int = 0) -> tuple[np.ndarray, ...]:
        n = len(self.inputs[0])
        index = (np.arange(size) + offset) % n
        return tuple(np.ascontiguousarray(a[index]) for a in self.inputs)


def build_benches(data_dir: Path) -> tuple[list[Bench], list[tuple[int, ...]]]:
    """LAMA and DeepLog over the HDFS windows, ProtoSiamese over the Hadoop sessions."""
    import torch

    from pipeline.datasets import data_file
    from pipeline.datasets.hadoop import HADOOP_TEST_FILES, HADOOP_TRAIN, load_hadoop
    from pipeline.datasets.sessions import read_session_file
    from pipeline.model_repository import ModelSpec, TensorSpec
    from pipeline.models import protosiamese as ps
    from pipeline.models.next_event import (
        NextEventDetector,
        build_network,
        default_config,
        default_top_k,
        io_spec,
        known_ids_of,
    )
    from pipeline.models.vocab import Vocabulary
    from pipeline.tfidf import fit_idf, pad_windows
    from pipeline.windows import SESSION_END_ID, next_event_windows

    torch.manual_seed(0)
    train = read_session_file(data_file(data_dir, "hdfs/deeplog_train"))
    abnormal = read_session_file(data_file(data_dir, "hdfs/deeplog_test_abnormal"))
    sessions = train + abnormal
    parts = [next_event_windows(s, 10, end_of_session=True) for s in sessions]
    windows = np.concatenate([p[0] for p in parts])
    nexts = np.concatenate([p[1] for p in parts])[:, None]
    order = np.random.default_rng(0).permutation(len(nexts))  # mixed sessions, as a live stream
    vocabulary = Vocabulary([*known_ids_of(train), SESSION_END_ID])
    benches = []
    for kind in ("lama", "deeplog"):
        top_k = default_top_k(kind)
        config = default_config(kind, window_size=10)
        eager = NextEventDetector(vocabulary, build_network(kind, config, vocabulary), top_k).eval()
        spec_io = io_spec(10, eager.top_k)
        spec = ModelSpec(
            name=kind,
            inputs=tuple(TensorSpec(*t) for t in spec_io["inputs"]),
            outputs=tuple(TensorSpec(*t) for t in spec_io["outputs"]),
            max_batch_size=4096,
        )
        metadata = {"kind": kind, "window_size": 10, "top_k": eager.top_k, "untrained": True}
        benches.append(
            Bench(
                kind,
                eager,
                torch.jit.script(eager),
                (windows[order], nexts[order]),
                ("window", "next_event"),
                NEXT_EVENT_OUTPUTS,
                spec,
                metadata,
            )
        )
    files = {"normal_train": HADOOP_TRAIN, **HADOOP_TEST_FILES}
    hadoop = [s for group in load_hadoop(data_dir, files).values() for s in group]
    counts = [s.count_map() for s in hadoop]
    names = sorted({s.label for s in hadoop})
    labels = torch.tensor([names.index(s.label) for s in hadoop])
    idf = fit_idf(counts)
    ids, cnt = pad_windows(counts)
    encoder = ps.Encoder(ps.ProtoSiameseConfig(input_dim=idf.n_columns))
    classifier = ps.build_classifier(
        idf, encoder, torch.from_numpy(ids), torch.from_numpy(cnt), labels, len(names)
    )
    spec = ps.model_spec(len(names), max_batch_size=4096)
    benches.append(
        Bench(
            "protosiamese",
            classifier,
            ps.script(classifier),
            (ids, cnt),
            ("template_ids", "counts"),
            CLASS_OUTPUTS,
            spec,
            {"class_names": names, "untrained_encoder": True},
        )
    )
    return benches, [tuple(s) for s in sessions]


def run_local(module: Any, arrays: tuple[np.ndarray, ...], device: str = "cpu") -> Any:
    import torch

    with torch.inference_mode():
        out = module(*(torch.from_numpy(a).to(device) for a in arrays))
        if device != "cpu":
            torch.cuda.synchronize()
    return out


def row(bench: str, path: str, batch: int, samples: list[float], concurrency: int = 1) -> dict[str, Any]:
    stats = latency_stats(samples)
    total_s = sum(samples)
    return {
        "model": bench,
        "path": path,
        "batch": batch,
        "concurrency": concurrency,
        "calls": len(samples),
        "seq_per_s": batch * len(samples) / total_s * concurrency if total_s else float("nan"),
        **stats,
    }


def bench_local(bench: Bench, budget: Budget, device: str) -> list[dict[str, Any]]:
    rows = []
    if device == "cpu":
        for label, module in (("naive eager", bench.eager), ("naive torchscript", bench.scripted)):
            offsets = itertools.count()
            for _ in range(3):  # warm-up: TorchScript's profiling executor specialises on early calls
                run_local(module, bench.batch(1, next(offsets)))
            samples = time_calls(
                lambda m=module, o=offsets: run_local(m, bench.batch(1, next(o))), budget.naive_calls, 0.0
            )
            rows.append(row(bench.name, label, 1, samples))
    module = bench.scripted if device == "cpu" else bench.scripted.to(device)
    for size in budget.batch_sizes:
        batches = [bench.batch(size, offset=i * size) for i in range(4)]
        for b in batches[:3]:
            run_local(module, b, device)
        cycle = itertools.cycle(batches)
        samples = time_calls(
            lambda c=cycle: run_local(module, next(c), device), budget.min_calls, budget.min_time_s
        )
        rows.append(row(bench.name, f"batched torchscript {device}", size, samples))
    if device != "cpu":
        bench.scripted.to("cpu")
    return rows


def bench_triton(benches: list[Bench], budget: Budget, threads: int) -> tuple[list[dict[str, Any]], str]:
    """Start a real Triton on free ports, publish every model, time single and concurrent requests."""
    from pipeline.adapters.triton import AsyncTritonClient, load_model
    from pipeline.infra.process import free_port
    from pipeline.infra.triton_local import LocalTriton
    from pipeline.model_repository import publish_version

    with tempfile.TemporaryDirectory(prefix="logad-bench-triton-") as tmp:
        repo = Path(tmp) / "repo"
        for bench in benches:
            publish_version(repo, bench.spec, bench.scripted, bench.metadata, unservable_reason=BENCH_ONLY)
        server = LocalTriton(
            model_repo=repo,
            state_dir=Path(tmp) / "state",
            http_port=free_port(),
            grpc_port=free_port(),
            metrics_port=free_port(),
            torch_threads=threads,
        )
        started = time.perf_counter()
        server.start(timeout_s=300)
        startup = f"Triton start-up with {len(benches)} models: {time.perf_counter() - started:.1f} s"
        try:
            for bench in benches:
                load_model(server.grpc_url, bench.name)
            return asyncio.run(_triton_rows(server.grpc_url, benches, budget, AsyncTritonClient)), startup
        finally:
            server.stop()


async def _triton_rows(
    url: str, benches: list[Bench], budget: Budget, client_class: Any
) -> list[dict[str, Any]]:
    client = client_class(url, timeout_s=300.0)
    rows: list[dict[str, Any]] = []
    try:
        for bench in benches:
            for size in budget.triton_batch_sizes:
                batches = [
                    dict(zip(bench.input_names, bench.batch(size, i * size), strict=True)) for i in range(4)
                ]
                for b in batches[:3]:  # warm-up, as in-process
                    await client.infer(bench.name, b, bench.output_names)
                samples: list[float] = []
                started = time.perf_counter()
                for b in itertools.cycle(batches):
                    if (
                        len(samples) >= budget.min_calls
                        and time.perf_counter() - started >= budget.min_time_s
                    ):
                        break
                    t0 = time.perf_counter()
                    await client.infer(bench.name, b, bench.output_names)
                    samples.append(time.perf_counter() - t0)
                rows.append(row(bench.name, "triton grpc", size, samples))
            rows.append(await _concurrent(client, bench, budget))
    finally:
        await client.close()
    return rows


async def _concurrent(client: Any, bench: Bench, budget: Budget) -> dict[str, Any]:
    size = 256
    batch = dict(zip(bench.input_names, bench.batch(size), strict=True))
    samples: list[float] = []

    async def worker() -> None:
        for _ in range(budget.concurrent_rounds):
            t0 = time.perf_counter()
            await client.infer(bench.name, batch, bench.output_names)
            samples.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(budget.concurrency)))
    wall = time.perf_counter() - started
    result = row(bench.name, "triton grpc concurrent", size, samples, budget.concurrency)
    result["seq_per_s"] = size * len(samples) / wall  # wall-clock throughput with requests overlapping
    return result


def bench_cache(
    bench: Bench, sessions: list[tuple[int, ...]], budget: Budget, plain_seq_per_s: float
) -> dict[str, Any]:
    """Distinct rows of the HDFS sessions and the effective rate of the exact-reuse cache on them."""
    from pipeline.model_repository import publish_version
    from pipeline.scoring import NextEventBatch, TorchScriptNextEventScorer, VersionFollower
    from pipeline.windows import count_pairs, next_event_windows

    chosen = sessions[: max(1, int(len(sessions) * budget.cache_share))]
    parts = [next_event_windows(s, 10, end_of_session=True) for s in chosen]
    windows = np.concatenate([p[0] for p in parts])
    nexts = np.concatenate([p[1] for p in parts])[:, None]
    distinct = len(count_pairs(chosen, 10, end_of_session=True)[1])
    order = np.random.default_rng(1).permutation(len(nexts))  # sessions interleave in a live stream
    windows, nexts = windows[order], nexts[order]
    with tempfile.TemporaryDirectory(prefix="logad-bench-cache-") as tmp:
        published = publish_version(
            Path(tmp), bench.spec, bench.scripted, bench.metadata, unservable_reason=BENCH_ONLY
        )
        # Pinned: a follower of the newest servable version would skip this benchmark-only one.
        follower = VersionFollower(
            Path(tmp), bench.name, time.monotonic, newest=lambda _repo, _name: published.version
        )
        scorer = TorchScriptNextEventScorer(follower, cache_size=100_000)

        async def replay() -> float:
            await scorer.score(NextEventBatch(windows[:1], nexts[:1]))  # load the version first
            scorer.cache.clear()
            scorer.cache.hits = scorer.cache.misses = 0
            started = time.perf_counter()
            for start in range(0, len(nexts), 1024):
                await scorer.score(NextEventBatch(windows[start : start + 1024], nexts[start : start + 1024]))
            return time.perf_counter() - started

        elapsed = asyncio.run(replay())
    rate = len(nexts) / elapsed
    return {
        "model": bench.name,
        "sessions": len(chosen),
        "rows": len(nexts),
        "distinct_rows": distinct,
        "distinct_share": distinct / len(nexts),
        "cache_hit_rate": scorer.cache.hits / max(1, scorer.cache.hits + scorer.cache.misses),
        "cached_seq_per_s": rate,
        "plain_batched_seq_per_s": plain_seq_per_s,
        "speedup": rate / plain_seq_per_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="shared data folder (env LOGAD_DATA_DIR)")
    parser.add_argument("--quick", action="store_true", help="about a minute: fewer sizes and calls")
    parser.add_argument("--no-triton", action="store_true", help="skip the Triton server measurements")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (also Triton's)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)

    import torch

    from pipeline.settings import Settings

    torch.set_num_threads(args.threads)
    settings = Settings.from_env(os.environ, data_dir=Path(args.data_dir) if args.data_dir else None)
    budget = QUICK if args.quick else FULL
    started = time.perf_counter()
    benches, sessions = build_benches(settings.data_dir)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows: list[dict[str, Any]] = []
    for bench in benches:
        for device in devices:
            print(f"[inference] {bench.name} on {device} ...", file=sys.stderr, flush=True)
            rows += bench_local(bench, budget, device)
    notes = []
    if not args.no_triton:
        print("[inference] triton ...", file=sys.stderr, flush=True)
        triton_rows, startup = bench_triton(benches, budget, args.threads)
        rows += triton_rows
        notes.append(startup)
    naive = {r["model"]: r["seq_per_s"] for r in rows if r["path"] == "naive torchscript"}
    for r in rows:
        r["x_naive"] = r["seq_per_s"] / naive[r["model"]]
    cache_rows = []
    for bench in benches[:2]:
        print(f"[inference] cache {bench.name} ...", file=sys.stderr, flush=True)
        plain = next(
            r["seq_per_s"]
            for r in rows
            if r["model"] == bench.name and r["path"] == "batched torchscript cpu" and r["batch"] == 1024
        )
        cache_rows.append(bench_cache(bench, sessions, budget, plain))

    lama = benches[0].eager
    lama_config = lama.network.config
    flops = transformer_flops(
        lama_config.window_size,
        lama_config.d_model,
        lama_config.feed_forward,
        lama_config.layers,
        lama.vocabulary.num_events,
    )
    best_cpu = max(
        r["seq_per_s"] for r in rows if r["model"] == "lama" and r["path"] == "batched torchscript cpu"
    )
    flop_rows = [
        {
            "model": "lama",
            "mflop_per_seq": flops / 1e6,
            "best_cpu_seq_per_s": best_cpu,
            "achieved_gflop_per_s": best_cpu * flops / 1e9,
        }
    ]
    columns = ["model", "path", "batch", "concurrency", "calls", "seq_per_s", "p50_ms", "p99_ms", "x_naive"]
    markdown = "\n\n".join(
        [
            "## Throughput and latency per call (p50/p99 of one call of `batch` rows)\n\n"
            + markdown_table(rows, columns),
            "## Exact-reuse cache on DeepLog's HDFS sessions (batches of 1024 rows)\n\n"
            + markdown_table(cache_rows),
            "## LAMA arithmetic (counted from the architecture)\n\n" + markdown_table(flop_rows),
            "\n".join(
                f"- {n}"
                for n in [*notes, f"torch threads: {args.threads}; run {time.perf_counter() - started:.0f} s"]
            ),
        ]
    )
    result = {
        "benchmark": "inference",
        "quick": args.quick,
        "machine": machine_info(),
        "rows": rows,
        "cache": cache_rows,
        "lama_flops": flop_rows[0],
        "notes": notes,
        "elapsed_s": time.perf_counter() - started,
    }
    command = (
        "python benchmarks/inference.py"
        + (" --quick" if args.quick else "")
        + (" --no-triton" if args.no_triton else "")
    )
    from common import write_results

    write_results("inference" + ("_quick" if args.quick else ""), result, markdown, command, args.results_dir)
    print_result(markdown, result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
