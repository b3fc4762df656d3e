"""`logad train MODEL`: train a model and publish it to the model repository.

MODEL is a subcommand with its own options (`logad train lama --help`), declared by `populate_*`
below only when that model is chosen (`pipeline.commands.deferred`), so that `logad --help` imports
no model code.

`lama` and `deeplog` (next-event models, here): sessions come from a deeplog_* file (`--sessions`),
from raw log lines through the parser (`--logs`, with `--format`; blocks listed in `--labels` are left
out as anomalous), or from the parsed events on Kafka (`--from-topic`, see
`pipeline.commands.train_topic`). The version written holds model.pt (TorchScript, vocabulary
inside), metadata.json and config.pbtxt. `protosiamese` is `pipeline.commands.train_protosiamese`,
`deeplog_params` (DeepLog's parameter value model, raw lines only) `pipeline.commands.train_parameters`.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import logging
import sys
from pathlib import Path
from typing import Any

from pipeline.commands import serving, train_parameters, train_update
from pipeline.commands.deferred import DeferredParser
from pipeline.errors import ConfigError
from pipeline.settings import Settings

log = logging.getLogger(__name__)

FORMAT_HELP = (
    "log format of --logs: built in (hdfs, bgl, generic), a profile in LOGAD_FORMATS, or "
    "FILE.toml:NAME (pipeline.format_profiles); the version stores the profile for the worker"
)
NAME_HELP = (
    "the model's name in the repository (default: its kind); e.g. one model per log source, served by "
    "setting {setting} to it"
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train LAMA, DeepLog, ProtoSiamese or DeepLog's parameter model; publish a version",
        description="Train a model and publish it as a new version in the model repository (and ask a "
        "running Triton to load it). Each MODEL has its own options: `logad train MODEL --help`.",
    )
    models = parser.add_subparsers(
        dest="model", metavar="MODEL", required=True, parser_class=DeferredParser, help="the model to train"
    )
    for model, populate, help_text in (
        ("lama", functools.partial(populate_next_event, model="lama"), "LAMA next-event model (attention)"),
        ("deeplog", functools.partial(populate_next_event, model="deeplog"), "DeepLog next-event LSTM"),
        (
            "protosiamese",
            populate_protosiamese,
            "ProtoSiamese few-shot classifier of time windows (BGL, or --logs with a format profile)",
        ),
        ("deeplog_params", populate_parameters, "DeepLog's parameter value model (raw lines only)"),
    ):
        models.add_parser(model, help=help_text, description=help_text, populate=populate)
    parser.set_defaults(handler=_train)


def populate_next_event(parser: argparse.ArgumentParser, model: str) -> None:
    """`logad train lama|deeplog` options."""
    from pipeline.commands import train_topic
    from pipeline.evaluation.hdfs_1_99 import add_training_arguments

    data = parser.add_argument_group("training data")
    source = data.add_mutually_exclusive_group()
    source.add_argument(
        "--sessions",
        help="normal sessions, deeplog_* format (e.g. hdfs/deeplog_train); no parser state, so with "
        "--no-publish only",
    )
    source.add_argument("--logs", help="raw log file (.gz ok), parsed and grouped into sessions")
    train_topic.add_arguments(data, source)
    data.add_argument("--format", default="hdfs", help=FORMAT_HELP)
    data.add_argument("--labels", help="anomalous session ids to leave out (e.g. hdfs/abnormal_blocks.csv)")
    add_training_arguments(parser.add_argument_group(f"{model} training"), model)
    train_update.add_arguments(parser.add_argument_group("online update (--update)"))
    _add_publishing_arguments(parser, gate=True, name_setting="LOGAD_DETECTION_MODEL")


def populate_protosiamese(parser: argparse.ArgumentParser) -> None:
    """`logad train protosiamese` options."""
    from pipeline.commands import train_protosiamese

    data = parser.add_argument_group("training data: BGL files (--train-files), or a log of one's own")
    data.add_argument(
        "--logs", help="raw log file (.gz ok) of a format profile with a timestamp rule, instead of BGL"
    )
    data.add_argument("--format", default="hdfs", help=FORMAT_HELP)
    data.add_argument(
        "--labels", help="with --logs: `<line number>,<class>` lines naming the anomalous lines"
    )
    train_protosiamese.add_arguments(parser)
    _add_publishing_arguments(parser, gate=False, name_setting="LOGAD_WINDOW_MODEL")


def populate_parameters(parser: argparse.ArgumentParser) -> None:
    """`logad train deeplog_params` options."""
    data = parser.add_argument_group("training data")
    data.add_argument("--logs", help="raw log file (.gz ok); required: values live in the lines")
    data.add_argument("--format", default="hdfs", help="built-in log format of --logs (hdfs, bgl, generic)")
    data.add_argument("--labels", help="anomalous session ids to leave out (e.g. hdfs/abnormal_blocks.csv)")
    train_parameters.add_arguments(parser)
    _add_publishing_arguments(parser, gate=True, name_setting=None)


def _add_publishing_arguments(parser: argparse.ArgumentParser, gate: bool, name_setting: str | None) -> None:
    publishing = parser.add_argument_group("publishing")
    if name_setting:
        publishing.add_argument("--name", help=NAME_HELP.format(setting=name_setting))
    publishing.add_argument("--no-publish", action="store_true", help="train and report only")
    if gate:
        add_publish_gate_arguments(publishing)
    serving.add_arguments(publishing)
    publishing.add_argument("--max-batch-size", type=int, default=4096, help="Triton max_batch_size")


def add_publish_gate_arguments(parser: Any) -> None:
    """`--publish-max-fpr` and `--force`; `parser` is a parser or an argument group."""
    parser.add_argument(
        "--publish-max-fpr",
        type=float,
        help="warn loudly when more than this share of validation sessions is flagged "
        "(default: LOGAD_PUBLISH_MAX_VALIDATION_FPR, 0.05)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="publish even when every validation session is flagged",
    )


def check_validation(model: str, figure: Any, args: argparse.Namespace, settings: Settings) -> None:
    """The publishing gate (`pipeline.version_checks.validation_gate`): print its warning to stderr,
    or let its ValidationRefused end the command before anything is published."""
    from pipeline.version_checks import validation_gate

    max_fpr = (
        args.publish_max_fpr if args.publish_max_fpr is not None else settings.publish_max_validation_fpr
    )
    warning = validation_gate(model, figure, max_fpr, args.force)
    if warning:
        print(warning, file=sys.stderr)


def load_training_sessions(
    args: argparse.Namespace, settings: Settings
) -> tuple[list[tuple[int, ...]], str, Any, Any]:
    """Training sessions, the sha256 of the input file, and the template miner and format profile
    (raw logs only; None for a sessions file)."""
    from pipeline.datasets import data_file
    from pipeline.datasets.sessions import read_block_labels, read_session_file
    from pipeline.model_repository import sha256_file

    if args.sessions:
        path = data_file(settings.data_dir, args.sessions)
        return read_session_file(path), sha256_file(path), None, None
    from pipeline.format_profiles import resolve_profile
    from pipeline.training.raw_logs import mine_sessions

    profile = resolve_profile(args.format, settings.formats or None)
    if not profile.has_sessions:
        raise ConfigError(
            f"train {args.model}: format {profile.name!r} has no session rule, so its lines form no "
            "sessions for a next-event model; add `session = {{ field = ... }}` or `{{ pattern = ... }}` "
            "to the profile, or cut the source into time windows (LOGAD_WINDOW_SOURCES) instead"
        )
    path = data_file(settings.data_dir, args.logs)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        lines = [line.rstrip("\n") for line in fh if line.strip()]
    mined = mine_sessions(lines, profile.log_format, config=profile.drain_config())
    if mined.unparsed:
        print(
            f"train: {mined.unparsed} of {mined.lines} lines of {path} fit no record of format "
            f"{profile.name!r} (left out); `logad formats check` shows which",
            file=sys.stderr,
        )
    skip = read_block_labels(data_file(settings.data_dir, args.labels)) if args.labels else frozenset()
    sessions = [tuple(ids) for key, ids in mined.sessions.items() if key not in skip]
    if not sessions:
        raise ConfigError(
            f"train: no sessions found in {path} with format {profile.name!r}; check --format with "
            f"`logad formats check {args.format} {args.logs}`"
        )
    return sessions, sha256_file(path), mined.miner, profile


def _train(args: argparse.Namespace, settings: Settings) -> int:
    settings.serving_layout()  # a bad LOGAD_TRITON_PLATFORM/DEVICE fails now, not after training
    if args.model == "protosiamese":
        from pipeline.commands import train_protosiamese

        return train_protosiamese.run(args, settings)
    if args.model == "deeplog_params":
        return train_parameters.run(args, settings)
    if args.update:
        return train_update.run(args, settings)
    if args.from_feedback is not None:
        raise ConfigError("train: --from-feedback applies only to --update")
    from_topic = getattr(args, "from_topic", None) is not None  # "" when given without a topic name
    if args.templates_from and not from_topic:
        raise ConfigError("train: --templates-from applies only to --from-topic")
    if not (args.sessions or args.logs or from_topic):
        raise ConfigError(
            f"train {args.model}: give the training data with --sessions, --logs or --from-topic"
        )
    if args.sessions and not args.no_publish:
        # Refused before training rather than after: publishing would refuse it anyway
        # (pipeline.version_checks), and the user should not wait for a model that cannot ship.
        raise ConfigError(
            f"train {args.model} --sessions: a sessions file holds template ids but no parser state "
            "(templates.json), so a worker could not serve the version and publishing is refused. Train "
            "from raw lines (--logs F [--labels F]) or from the parsed stream (--from-topic), or pass "
            "--no-publish to train and report only"
        )
    import torch

    from pipeline.commands import train_topic
    from pipeline.evaluation.hdfs_1_99 import model_config_from_args, train_config_from_args
    from pipeline.training.next_event import save_curves_png, train_next_event

    torch.set_num_threads(args.threads)
    if from_topic:
        topic = train_topic.load_topic_sessions(args, settings)
        sessions, miner, log_format = topic.sessions, topic.miner, topic.log_format
        extra: dict[str, Any] = topic.metadata
    else:
        sessions, digest, miner, profile = load_training_sessions(args, settings)
        log_format = profile.name if profile is not None else None
        extra = {"training_data_sha256": digest}
        if profile is not None and not profile.builtin:  # the worker rebuilds the format from it
            extra["format_profile"] = profile.to_json()
    trained = train_next_event(
        args.model, model_config_from_args(args), sessions, train_config_from_args(args)
    )
    curves = args.curves or Path(settings.state_dir) / "curves" / f"{args.model}.png"
    save_curves_png(trained.curves, curves, f"{args.model} training")
    print(f"trained {args.model}: k = {trained.top_k}, validation {trained.validation}; curves {curves}")
    if args.no_publish:
        return 0
    check_validation(args.model, trained.validation_fpr(), args, settings)
    from pipeline.training.raw_logs import publish_trained

    published = publish_trained(
        Path(settings.model_repo),
        trained,
        miner,
        log_format,
        {**extra, "curves": trained.curves},
        max_batch_size=args.max_batch_size,
        layout=settings.serving_layout(),
        name=args.name,
    )
    return serving.serve_published(published, args, settings)
