"""`logad evaluate parsing-loghub`: GA, PA and FGA of the parser on loghub-2k-style systems, with
plain Drain3 under the same settings beside it.

Each system's raw lines are split by its header format string (`LogFormat.from_header`); the content
is what both parsers see. Our miner runs in the chosen parser mode (default `logad`) with the
settings file's masks, similarity threshold and depth; plain Drain3 gets the same masks (replaced by
`<*>`, as in logparser), `sim_th = drain_st` and `depth = drain_depth`. As in loghub's evaluation,
each line gets its cluster's final template. Nothing else is set per system.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.datasets.loghub2k import SystemSettings

DEFAULT_SETTINGS = "settings.toml"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from pipeline.datasets.loghub2k import LOGHUB2K_DIR

    data_help = f"folder of <System>/ folders (default: data dir / {LOGHUB2K_DIR})"
    parser.add_argument("--data", type=Path, default=None, help=data_help)
    settings_help = f"settings TOML (default: the data folder's {DEFAULT_SETTINGS})"
    parser.add_argument("--settings", type=Path, default=None, help=settings_help)
    parser.add_argument(
        "--systems", nargs="+", default=None, help="systems to run (default: all in settings)"
    )
    parser.add_argument(
        "--parser-mode", default="logad", choices=("logad", "drain3"), help="our miner's mode (default logad)"
    )


@dataclass(frozen=True)
class ParsedLines:
    """One parser's answer on a system: per line a group label and a template text."""

    groups: tuple[int, ...]
    templates: tuple[str, ...]
    seconds: float


def split_contents(lines: tuple[str, ...], header: str, system: str) -> tuple[list[str], int]:
    """Each line's content by the header format; a line the header misses counts whole, as content."""
    from pipeline.errors import ParseError
    from pipeline.formats import LogFormat

    fmt = LogFormat.from_header(system, header, multiline=False)
    contents: list[str] = []
    misses = 0
    for line in lines:
        try:
            contents.append(fmt.parse_line(line).content.strip())
        except ParseError:
            misses += 1
            contents.append(line.strip())
    return contents, misses


def run_ours(
    contents: list[str], regex: tuple[str, ...], sim_th: float, depth: int, mode: str
) -> ParsedLines:
    """Our miner (learn mode) with the settings' masks, each named VAR."""
    from pipeline.templates import DrainConfig, MaskingConfig, MaskingRule, TemplateMiner

    masking = MaskingConfig(tuple(MaskingRule("VAR", r) for r in regex), token_local=False)
    miner = TemplateMiner(DrainConfig(depth=depth, sim_th=sim_th, masking=masking), parser_mode=mode)
    start = time.perf_counter()
    cluster_ids = [miner.learn(c).cluster_id for c in contents]
    seconds = time.perf_counter() - start
    final = {cid: miner.template_of_cluster(cid) for cid in set(cluster_ids)}
    templates = tuple(final[cid] for cid in cluster_ids)
    return ParsedLines(_labels(templates), templates, seconds)


def run_drain3(contents: list[str], regex: tuple[str, ...], sim_th: float, depth: int) -> ParsedLines:
    """The `drain3` package as shipped, with the settings' masks as `<*>`."""
    from drain3 import TemplateMiner as Drain3Miner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.drain_sim_th, config.drain_depth = sim_th, depth
    config.masking_instructions = [MaskingInstruction(r, "*") for r in regex]
    config.mask_prefix, config.mask_suffix = "<", ">"
    config.profiling_enabled = False
    miner = Drain3Miner(config=config)
    start = time.perf_counter()
    cluster_ids = [miner.add_log_message(c)["cluster_id"] for c in contents]
    seconds = time.perf_counter() - start
    final = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    templates = tuple(final[cid] for cid in cluster_ids)
    return ParsedLines(_labels(templates), templates, seconds)


def _labels(templates: tuple[str, ...]) -> tuple[int, ...]:
    """Lines share a group when they share the final template text (loghub's EventId is its hash)."""
    index: dict[str, int] = {}
    return tuple(index.setdefault(t, len(index)) for t in templates)


def evaluate_system(folder: Path, system: SystemSettings, mode: str) -> dict[str, Any]:
    """Scores of our miner and of plain Drain3 on one system."""
    from pipeline.datasets.loghub2k import read_system
    from pipeline.evaluation.parsing_metrics import grouping_accuracy, grouping_f1, parsing_accuracy

    data = read_system(folder, system.name)
    contents, misses = split_contents(data.lines, system.log_format, system.name)
    ours = run_ours(contents, system.regex, system.drain_st, system.drain_depth, mode)
    drain3 = run_drain3(contents, system.regex, system.drain_st, system.drain_depth)
    truth = data.templates
    return {
        "ga": grouping_accuracy(ours.groups, truth),
        "pa": parsing_accuracy(ours.templates, truth),
        "fga": grouping_f1(ours.groups, truth),
        "templates": len(set(ours.groups)),
        "truth_templates": len(set(truth)),
        "lines": len(contents),
        "header_misses": misses,
        "lines_per_s": len(contents) / ours.seconds if ours.seconds > 0 else 0.0,
        "drain3_ga": grouping_accuracy(drain3.groups, truth),
        "drain3_pa": parsing_accuracy(drain3.templates, truth),
        "drain3_fga": grouping_f1(drain3.groups, truth),
        "drain3_templates": len(set(drain3.groups)),
        "drain3_lines_per_s": len(contents) / drain3.seconds if drain3.seconds > 0 else 0.0,
    }


def run(args: argparse.Namespace, settings: Settings, name: str) -> dict[str, Any]:
    from tqdm import tqdm

    from pipeline.datasets.loghub2k import LOGHUB2K_DIR, read_settings
    from pipeline.errors import ConfigError

    folder = args.data or Path(settings.data_dir) / LOGHUB2K_DIR
    systems = read_settings(args.settings or folder / DEFAULT_SETTINGS)
    names = args.systems or list(systems)
    unknown = [s for s in names if s not in systems]
    if unknown:
        raise ConfigError(
            f"evaluate {name}: systems {unknown} are not in the settings; choose from {list(systems)}"
        )
    results = {
        s: evaluate_system(folder, systems[s], args.parser_mode)
        for s in tqdm(names, desc=name, unit="system")
    }

    def mean(key: str) -> float:
        return sum(r[key] for r in results.values()) / len(results)

    summary: dict[str, Any] = {
        "evaluation": name,
        "parser_mode": args.parser_mode,
        "mean_ga": mean("ga"),
        "mean_pa": mean("pa"),
        "mean_fga": mean("fga"),
        "drain3_mean_ga": mean("drain3_ga"),
        "drain3_mean_pa": mean("drain3_pa"),
        "drain3_mean_fga": mean("drain3_fga"),
        "systems": results,
    }
    summary["table"] = _table(summary, args.parser_mode)
    return summary


def _table(summary: dict[str, Any], mode: str) -> str:
    header = (
        f"{'system':<12} {'GA':>6} {'PA':>6} {'FGA':>6} {'tmpl':>5} {'truth':>5} {'lines/s':>8}  "
        f"{'Drain3 GA':>9} {'PA':>6} {'FGA':>6} {'tmpl':>5} {'lines/s':>8}"
    )
    rows = [f"parser mode {mode} (left) vs plain drain3 (right), same settings", header]
    for system, r in summary["systems"].items():
        rows.append(
            f"{system:<12} {r['ga']:>6.3f} {r['pa']:>6.3f} {r['fga']:>6.3f} {r['templates']:>5} "
            f"{r['truth_templates']:>5} {r['lines_per_s']:>8.0f}  {r['drain3_ga']:>9.3f} "
            f"{r['drain3_pa']:>6.3f} {r['drain3_fga']:>6.3f} {r['drain3_templates']:>5} "
            f"{r['drain3_lines_per_s']:>8.0f}"
        )
    rows.append(
        f"{'mean':<12} {summary['mean_ga']:>6.3f} {summary['mean_pa']:>6.3f} {summary['mean_fga']:>6.3f} "
        f"{'':>5} {'':>5} {'':>8}  {summary['drain3_mean_ga']:>9.3f} {summary['drain3_mean_pa']:>6.3f} "
        f"{summary['drain3_mean_fga']:>6.3f}"
    )
    return "\n".join(rows)
