"""`logad evaluate NAME`: paper-style evaluations. Each NAME maps to a module in `pipeline.evaluation`.

An evaluation module provides `add_arguments(parser, name)` and `run(args, settings, name) -> dict`;
the dict is printed as a table, and with `--json` as one JSON line last. A module is imported only
when its evaluation is chosen (`pipeline.commands.deferred`), so `logad --help` imports none.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
from typing import Any

import orjson

from pipeline.commands.deferred import DeferredParser
from pipeline.settings import Settings

EVALUATIONS: dict[str, tuple[str, str]] = {
    "parsing-hdfs": ("pipeline.evaluation.parsing", "Drain3 grouping accuracy on loghub HDFS_100k"),
    "parsing-loghub": (
        "pipeline.evaluation.parsing_loghub",
        "GA, PA, FGA of the parser vs plain Drain3 on loghub-2k-style systems",
    ),
    "hdfs-1-99": ("pipeline.evaluation.hdfs_1_99", "LAMA Table 2, 1/99 row (DeepLog's split)"),
    "hdfs-80-20": ("pipeline.evaluation.hdfs_80_20", "LAMA Table 2, 80/20 row, from raw lines"),
    "ablation": ("pipeline.evaluation.ablation", "LAMA Table 3: layers b x heads h on the 1/99 data"),
    "fewshot-bgl": ("pipeline.evaluation.fewshot", "ProtoSiamese vs baselines on BGL windows"),
    "fewshot-hadoop": ("pipeline.evaluation.fewshot", "ProtoSiamese vs baselines on Hadoop failures"),
    "params-synthetic": (
        "pipeline.evaluation.parameters",
        "DeepLog parameter model: P/R/F1 on synthetic value anomalies, false alarms on HDFS_100k",
    ),
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("evaluate", help="paper-style evaluations (tables, --json)")
    names = parser.add_subparsers(
        dest="evaluation", metavar="NAME", parser_class=DeferredParser, help="the evaluation to run"
    )
    for name, (module_name, help_text) in EVALUATIONS.items():
        # find_spec imports the package (pipeline.evaluation), not the module: an evaluation whose
        # module this installation lacks is left out, as before, at no import cost.
        if importlib.util.find_spec(module_name) is None:
            continue
        populate = functools.partial(_populate, module_name=module_name, name=name)
        names.add_parser(name, help=help_text, description=help_text, populate=populate)


def _populate(parser: argparse.ArgumentParser, module_name: str, name: str) -> None:
    module = importlib.import_module(module_name)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    module.add_arguments(parser, name)
    parser.set_defaults(handler=_runner(module, name))


def _runner(module: Any, name: str) -> Any:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        result: dict[str, Any] = module.run(args, settings, name)
        print_result(result, as_json=args.json)
        return 0

    return handler


def print_result(result: dict[str, Any], as_json: bool) -> None:
    """Print a flat table of scalar results; with `as_json`, end with the whole result as JSON."""
    table = result.get("table")
    if isinstance(table, str):
        print(table)
    else:
        width = max((len(k) for k in result), default=0)
        for key, value in result.items():
            if isinstance(value, float):
                value = f"{value:.4f}"
            if not isinstance(value, dict | list):
                print(f"{key:<{width}}  {value}")
    if as_json:
        print(orjson.dumps({k: v for k, v in result.items() if k != "table"}, default=str).decode())
