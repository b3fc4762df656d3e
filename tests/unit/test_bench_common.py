"""Pure helpers of the benchmark scripts: CPU model parsing, percentiles, tables, LAMA's FLOP count."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import orjson
import pytest

# benchmarks/ is a folder of scripts, not a package: load its helper module by path.
_SPEC = importlib.util.spec_from_file_location(
    "benchmarks_common", Path(__file__).resolve().parents[2] / "benchmarks" / "common.py"
)
assert _SPEC is not None and _SPEC.loader is not None
common = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(common)


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        (
            "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n",
            "Intel(R) Xeon(R) Processor",
        ),
        ("processor : 0\nModel : Raspberry Pi 4 Model B\n", "Raspberry Pi 4 Model B"),
    ],
)
def test_cpu_model_reads_cpuinfo(cpuinfo: str, expected: str) -> None:
    assert common.cpu_model(cpuinfo) == expected


def test_latency_stats_are_nearest_rank_percentiles_in_ms() -> None:
    samples = [i / 1000 for i in range(1, 101)]  # 1 .. 100 ms
    stats = common.latency_stats(samples)
    assert stats["p50_ms"] == pytest.approx(50.0)
    assert stats["p99_ms"] == pytest.approx(99.0)
    assert stats["mean_ms"] == pytest.approx(50.5)
    assert math.isnan(common.latency_stats([])["p50_ms"])


def test_lama_flops_match_the_paper_size() -> None:
    # d=256, f=1024, 4 layers, window 10: 4 x (8·10·256² + 4·10²·256 + 4·10·256·1024) + head.
    flops = common.transformer_flops(10, 256, 1024, 4, num_events=15)
    assert flops == 4 * (5_242_880 + 102_400 + 10_485_760) + 2 * 256 * 15
    assert 63e6 < flops < 64e6


def test_markdown_table_and_results_files(tmp_path: Path) -> None:
    table = common.markdown_table(
        [{"model": "lama", "seq_per_s": 1234.5}, {"model": "deeplog", "seq_per_s": 0.5}]
    )
    lines = table.splitlines()
    assert lines[0].split("|")[1].strip() == "model" and len(lines) == 4
    assert "1,234" in lines[2] and "0.5" in lines[3]
    result = {"machine": {"cpu_model": "x"}, "value": 1.5}
    json_path, md_path = common.write_results("demo", result, table, "python demo.py", tmp_path)
    assert orjson.loads(json_path.read_bytes()) == result
    assert "python demo.py" in md_path.read_text() and table in md_path.read_text()
