"""`logad`: the command-line entry point. Subcommands live in `pipeline.commands.*`.

Each command module exposes `register(subparsers)`; a handler receives `(args, settings)` and
returns an exit code. Heavy imports (torch, numpy, Faust, Kafka, tritonclient) happen inside handlers,
or when one subcommand's options are declared next to heavy code, when that subcommand is chosen
(`pipeline.commands.deferred`): building the parser imports none of them, so `logad --help` stays
fast (tests/unit/test_cli.py checks it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pipeline.errors import LogadError
from pipeline.settings import Settings

COMMAND_MODULES = (
    "pipeline.commands.infra",
    "pipeline.commands.train",
    "pipeline.commands.evaluate",
    "pipeline.commands.online",
    "pipeline.commands.dead_letters",
    "pipeline.commands.notify",
    "pipeline.commands.feedback",
    "pipeline.commands.synthetic",
    "pipeline.commands.formats",
)


DISTRIBUTION = "log-anomaly-pipeline"  # the name in pyproject.toml, under which pip installed `logad`


def installed_version() -> str:
    """The installed distribution's version, from its package metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed: `pip install -e .` in the checkout)"


class _VersionAction(argparse.Action):
    """`--version`, reading the package metadata only when asked (argparse's own action takes the
    string up front, which would cost every `logad` call the metadata lookup)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        suppress = argparse.SUPPRESS  # no attribute on the namespace: the action exits
        super().__init__(option_strings, dest=suppress, default=suppress, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {installed_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logad",
        description="Streaming log anomaly detection on Kafka and Triton.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the installed version and exit")
    parser.add_argument("--bootstrap-servers", help="Kafka brokers (env LOGAD_BOOTSTRAP_SERVERS)")
    parser.add_argument("--triton-url", dest="triton_grpc_url", help="Triton gRPC host:port")
    parser.add_argument("--data-dir", help="shared data folder (env LOGAD_DATA_DIR)")
    parser.add_argument("--model-repo", help="Triton model repository (env LOGAD_MODEL_REPO)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="`logad COMMAND --help` for its options"
    )
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    from pathlib import Path

    overrides = {
        "bootstrap_servers": args.bootstrap_servers,
        "triton_grpc_url": args.triton_grpc_url,
        "data_dir": Path(args.data_dir) if args.data_dir else None,
        "model_repo": Path(args.model_repo) if args.model_repo else None,
    }
    return Settings.from_env(os.environ, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args, settings_from_args(args)) or 0)
    except LogadError as exc:
        print(f"logad {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
