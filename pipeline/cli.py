"""`logad`: the command-line entry point. Subcommands live in `pipeline.commands.*`.

Each command module exposes `register(subparsers)`; a handler receives `(args, settings)` and
returns an exit code. Heavy imports (torch, Faust, Kafka) happen inside handlers, so `logad --help`
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logad",
        description="Streaming log anomaly detection on Kafka and Triton.",
    )
    parser.add_argument("--bootstrap-servers", help="Kafka brokers (env LOGAD_BOOTSTRAP_SERVERS)")
    parser.add_argument("--triton-url", dest="triton_grpc_url", help="Triton gRPC host:port")
    parser.add_argument("--data-dir", help="shared data folder (env LOGAD_DATA_DIR)")
    parser.add_argument("--model-repo", help="Triton model repository (env LOGAD_MODEL_REPO)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
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
