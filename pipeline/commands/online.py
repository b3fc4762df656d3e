"""`logad worker`, `logad replay`, `logad tail`, `logad demo`: the online pipeline from the shell."""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.settings import Settings


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    if args.backend:
        settings = settings.replace(inference_backend=args.backend)
    if args.model:
        settings = settings.replace(detection_model=args.model)
    from pipeline.adapters.faust_config import worker_command

    os.execvpe(sys.executable, worker_command(sys.executable, args.log_level), settings.to_env(os.environ))
    return 0  # not reached: the worker replaces this process


def read_lines(path: Path) -> Iterator[bytes]:
    """Lines as bytes, undecoded: invalid UTF-8 must reach the parser (and its dead letters) as it is."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        yield from fh


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from itertools import chain

    from tqdm import tqdm

    from pipeline.adapters.kafka import replay_lines
    from pipeline.datasets import data_file
    from pipeline.replay_check import run_check, take_sample

    path = data_file(settings.data_dir, args.file)
    lines: Iterator[bytes] = read_lines(path)
    if not args.no_check:
        # The worker would turn lines of the wrong format into dead letters one by one, silently:
        # say so before producing anything.
        read, sample = take_sample(lines)
        lines = chain(read, lines)
        check, message = run_check(settings, args.source, sample)
        if message:
            print(f"logad replay: {'warning: ' if check else ''}{message}", file=sys.stderr, flush=True)
        if check is not None and check.mostly_fails and args.strict:
            print(
                "logad replay: nothing produced (--strict); fix --source or pass --no-check", file=sys.stderr
            )
            return 1
    with tqdm(unit=" lines", desc=f"replay {path.name}", file=sys.stderr) as bar:
        sent = replay_lines(
            settings,
            lines,
            settings.raw_logs_topic,
            args.source,
            lines_per_message=(
                settings.replay_lines_per_message
                if args.lines_per_message is None
                else args.lines_per_message
            ),
            lines_per_s=args.rate,
            on_sent=bar.update,
        )
    print(f"replayed {sent} lines of {path} to {settings.raw_logs_topic} (source {args.source})")
    return 0


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.adapters.kafka import consumer
    from pipeline.alert_routing import AlertFilter
    from pipeline.alerts import decode_alert
    from pipeline.errors import DataError
    from pipeline.presentation import format_alert

    route = AlertFilter.parse(args.kind or (), args.source or ())
    reader = consumer(
        settings,
        args.group or f"logad-tail-{os.getpid()}",
        [settings.anomalies_topic],
        **{"auto.offset.reset": "earliest" if args.from_beginning else "latest"},
    )
    try:
        while True:
            message = reader.poll(1.0)
            if message is None or message.error():
                continue
            try:
                alert = decode_alert(message.value())
            except DataError as exc:
                print(f"(unreadable alert at offset {message.offset()}: {exc})", file=sys.stderr, flush=True)
                continue
            if route.matches(alert):
                text = alert_json(alert) if args.json else format_alert(alert, verbose=args.verbose)
                print(text, flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        reader.close()


def alert_json(alert: Any) -> str:
    """One line of `logad tail --json`: the alert as `log-anomalies` carries it (older schemas upgraded)."""
    from pipeline.alerts import encode_alert

    return encode_alert(alert).decode("utf-8")


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.demo import DemoOptions, run_demo

    options = DemoOptions(
        model=args.model or settings.detection_model,
        lines=args.lines,
        use_synthetic=args.synthetic,
        as_json=args.json,
        retrain=args.retrain,
        timeout_s=args.timeout,
    )
    return run_demo(settings, options)


def register(subparsers: Any) -> None:
    worker = subparsers.add_parser("worker", help="run the Faust worker (same as faust -A agents.app worker)")
    worker.add_argument("--backend", choices=["triton", "torchscript"], help="inference backend")
    worker.add_argument("--model", choices=["lama", "deeplog"], help="next-event model to follow")
    worker.add_argument("--log-level", default="info", choices=["crit", "error", "warn", "info", "debug"])
    worker.set_defaults(handler=_worker)

    replay = subparsers.add_parser(
        "replay",
        help="produce a log file's lines to raw-logs",
        description=(
            "Produce a log file's lines to the raw-logs topic (LOGAD_RAW_LOGS_TOPIC). First the file's "
            "first 200 non-empty lines are checked against the log format the worker parses --source "
            "with (the deployed model's, see LOGAD_WINDOW_SOURCES): when more than half lack its header, "
            "a warning names the share and the format that fits best."
        ),
    )
    replay.add_argument("file", help="log file (.log or .log.gz), absolute or under the data dir")
    replay.add_argument(
        "--source",
        default="hdfs",
        help="source name (message key and header); picks the worker's parser (default: %(default)s)",
    )
    replay.add_argument(
        "--lines-per-message",
        type=int,
        help="lines batched per Kafka message (default: LOGAD_REPLAY_LINES_PER_MESSAGE, 500)",
    )
    replay.add_argument("--rate", type=float, help="offered load in lines/s (default: as fast as possible)")
    replay.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 without producing when most sampled lines do not fit the format (default: warn only)",
    )
    replay.add_argument("--no-check", action="store_true", help="skip the format check of the file's start")
    replay.set_defaults(handler=_replay)

    tail = subparsers.add_parser("tail", help="print alerts from log-anomalies for humans")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    tail.add_argument("--group", help="consumer group (default: a fresh one)")
    tail.add_argument("--verbose", action="store_true", help="show the window and the expected events")
    tail.add_argument(
        "--json", action="store_true", help="one alert per line as JSON (schemas/log-anomalies.schema.json)"
    )
    tail.add_argument("--kind", action="append", metavar="K", help="only this alert kind (repeatable)")
    tail.add_argument("--source", action="append", metavar="S", help="only this source (repeatable)")
    tail.set_defaults(handler=_tail)

    demo = subparsers.add_parser(
        "demo", help="the main job: servers up, models trained if missing, HDFS replayed, alerts shown"
    )
    demo.add_argument("--model", choices=["lama", "deeplog"], help="next-event model (default: settings)")
    demo.add_argument("--lines", type=int, help="replay only the first N lines")
    demo.add_argument("--synthetic", action="store_true", help="use the synthetic generator, not HDFS_100k")
    demo.add_argument("--retrain", action="store_true", help="train and publish a new version first")
    demo.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds from the replay's end for the worker to handle everything (else exit 1, no figures)",
    )
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON line last")
    demo.set_defaults(handler=_demo)
