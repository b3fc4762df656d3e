"""`logad`'s parser: fast to build (no heavy imports), `--version`, help on every positional, per-model
options for `logad train`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from pipeline.cli import DISTRIBUTION, build_parser, main
from pipeline.commands.deferred import DeferredParser

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "numpy", "faust", "confluent_kafka", "tritonclient", "drain3", "matplotlib")

# Runs in a fresh interpreter: this test process has long imported torch through other tests.
_PROBE = """
import contextlib, io, json, sys
import pipeline.cli as cli

HEAVY = {heavy!r}
def loaded():
    return sorted(h for h in HEAVY if h in sys.modules)

seen = {{}}
parser = cli.build_parser()
seen["build_parser"] = loaded()
for argv in ([], ["--help"], ["--version"], ["train", "--help"], ["evaluate", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            cli.main(argv)
        except SystemExit:
            pass
    seen[" ".join(["logad", *argv])] = loaded()
print(json.dumps(seen))
"""


def test_building_the_parser_and_top_level_help_import_nothing_heavy() -> None:
    probe = _PROBE.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(seen) == {
        "build_parser", "logad", "logad --help", "logad --version", "logad train --help",
        "logad evaluate --help",
    }  # fmt: skip
    assert seen == {step: [] for step in seen}, f"heavy modules imported: {seen}"


def test_no_subcommand_help_imports_torch() -> None:
    """A subcommand's options may come from a module with numpy or drain3, never torch."""
    probe = (
        "import contextlib, io, sys\nimport pipeline.cli as cli\n"
        "from tests.unit.test_cli import every_parser\n"
        "for _, parser in every_parser(cli.build_parser()):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        parser.format_help()\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "False"


def every_parser(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("logad",)
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) for the parser and every subcommand below it, deferred options added."""
    if isinstance(parser, DeferredParser):
        parser.populate()
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_parser(sub, (*path, name))


def test_every_positional_and_every_subcommand_has_help() -> None:
    missing = []
    commands = 0
    for path, parser in every_parser(build_parser()):
        commands += 1
        for action in parser._actions:
            if not action.option_strings and not action.help:
                missing.append(f"{path}: {action.metavar or action.dest}")
            if isinstance(action, argparse._SubParsersAction):
                named = {choice.dest for choice in action._choices_actions if choice.help}
                missing += [f"{path} {name}" for name in action.choices if name not in named]
    assert commands > 20  # the walk reached the subcommands (train MODEL, evaluate NAME, ...)
    assert not missing, f"no help text: {missing}"


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"logad {version(DISTRIBUTION)}\n"


def _options(*argv: str) -> set[str]:
    parser = dict(every_parser(build_parser()))[" ".join(("logad", *argv))]
    return {option for action in parser._actions for option in action.option_strings}


def test_train_lists_only_the_chosen_models_options() -> None:
    lama, deeplog = _options("train", "lama"), _options("train", "deeplog")
    protosiamese, params = _options("train", "protosiamese"), _options("train", "deeplog_params")
    assert "--heads" in lama and "--heads" not in deeplog  # DeepLog has no attention heads
    assert {"--update", "--from-topic", "--sessions", "--top-k"} <= lama & deeplog
    assert not {"--update", "--from-topic", "--sessions", "--top-k"} & (protosiamese | params)
    assert {"--window-s", "--n-way", "--train-files"} <= protosiamese
    assert not {"--window-s", "--n-way"} & (lama | deeplog | params)
    assert {"--param-hidden", "--param-sigmas"} <= params
    assert not {"--param-hidden"} & (lama | deeplog | protosiamese)
    assert "--name" not in params  # publish_parameter_model always publishes `deeplog_params`
    assert "--model" not in lama | deeplog  # the subcommand names the model
    shared = {"--no-publish", "--no-load", "--max-batch-size", "--logs", "--format", "--labels", "--epochs"}
    for options in (lama, deeplog, protosiamese, params):
        assert shared <= options


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "deeplog", "--model", "lama"],  # parsed before, and trained LAMA
        ["train", "deeplog", "--heads", "4"],
        ["train", "lama", "--n-way", "3"],
        ["train", "protosiamese", "--update"],
        ["train", "deeplog_params", "--name", "x"],
        ["train"],
        ["train", "lamma"],
    ],
)
def test_train_refuses_options_of_other_models(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(argv)
    assert done.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_train_parses_each_models_options_into_the_namespace_its_code_reads() -> None:
    args = build_parser().parse_args(["train", "protosiamese", "--epochs", "3", "--n-way", "2", "--no-load"])
    assert (args.model, args.epochs, args.n_way, args.seed, args.no_load) == ("protosiamese", 3, 2, 0, True)
    args = build_parser().parse_args(["train", "deeplog", "--logs", "x.log", "--layers", "1"])
    assert (args.model, args.logs, args.layers, args.update) == ("deeplog", "x.log", 1, False)
    assert args.from_topic is None and args.templates_from is None
    args = build_parser().parse_args(["train", "deeplog_params", "--logs", "x.log", "--epochs", "2"])
    assert (args.model, args.epochs, args.param_hidden, args.curves) == ("deeplog_params", 2, 64, None)
    assert build_parser().parse_args(["evaluate", "hdfs-80-20", "--version", "1"]).version == 1
