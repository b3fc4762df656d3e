"""Shared helpers of the benchmark scripts: machine description, timing statistics, tables, results.

Every script prints a Markdown table, with `--json` one JSON object as its last line, and writes
`benchmarks/results/<name>.json` and `<name>.md` (machine info included, so numbers carry their
context). Numbers are what the run measured; nothing here is hard-coded.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo (or the text given), else what `platform` knows."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def pin_one_core() -> str:
    """Pin this process to one CPU, so CPU-time comparisons are not spread over cores; its number."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return str(cpu)
    return "not pinned"


def machine_info() -> dict[str, Any]:
    """Platform, CPU, cores usable by this process, Python, and torch (with CUDA device) if installed."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": sys.version.split()[0],
        # The machine may be shared: the load at measurement time says how much to trust the numbers.
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    try:
        import torch
    except ImportError:
        return info
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return info


def latency_stats(samples_s: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / mean of per-call latencies, in milliseconds (nearest-rank percentiles)."""
    if not samples_s:
        return {"p50_ms": math.nan, "p99_ms": math.nan, "mean_ms": math.nan}
    ordered = sorted(samples_s)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000.0

    return {"p50_ms": rank(0.50), "p99_ms": rank(0.99), "mean_ms": statistics.fmean(ordered) * 1000.0}


def time_calls(
    call: Callable[[], Any], min_calls: int, min_time_s: float, max_calls: int = 1_000_000
) -> list[float]:
    """Per-call wall times of `call`, at least `min_calls` calls and `min_time_s` seconds in total."""
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < max_calls and (
        len(samples) < min_calls or time.perf_counter() - started < min_time_s
    ):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return samples


def format_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of `rows` (dicts); columns default to the keys of the first row, in order."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[format_value(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join(lines)


def write_results(
    name: str, result: dict[str, Any], markdown: str, command: str, results_dir: Path = RESULTS_DIR
) -> tuple[Path, Path]:
    """Write `<name>.json` (the result, machine info included) and `<name>.md` (the tables)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results_dir / f"{name}.json", results_dir / f"{name}.md"
    json_path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    machine = result.get("machine", {})
    md_path.write_text(
        f"# {name}\n\n`{command}`\n\n"
        + "Machine: "
        + ", ".join(f"{k} {v}" for k, v in machine.items())
        + "\n\n"
        + markdown
        + "\n",
        encoding="utf-8",
    )
    return json_path, md_path


def print_result(markdown: str, result: dict[str, Any], as_json: bool) -> None:
    """The tables; with `as_json`, the whole result as one JSON line last."""
    print(markdown)
    if as_json:
        print(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode())


def transformer_flops(window: int, d_model: int, feed_forward: int, layers: int, num_events: int) -> int:
    """Multiply-adds x 2 of one LAMA forward on one window (encoder layers plus the prediction layer).

    Per layer: Q, K, V and output projections (4 x 2·L·d²), attention scores and weighted values
    (2 x 2·L²·d), the feed-forward pair (2 x 2·L·d·f). Embedding lookups, softmax and layer norms are
    left out (memory-bound, a few thousand operations). The head reads only the last position.
    """
    per_layer = 8 * window * d_model**2 + 4 * window**2 * d_model + 4 * window * d_model * feed_forward
    return layers * per_layer + 2 * d_model * num_events
