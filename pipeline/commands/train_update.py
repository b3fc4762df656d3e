"""`logad train lama|deeplog --update [--from-feedback [FILE]]`: the online update (DeepLog Sec. 3.3).

The newest servable version is fine-tuned on the (window, next event) pairs operators marked normal
(`log-feedback`, or a file of records) plus a replay of its training sessions, which come from the
same data options as training (`--logs F --labels F`, `--from-topic`); k is chosen again on the
same validation split; the result is published through the usual path (the version checks and the
validation gate apply) and loaded into Triton, whose serving version stays as it is when that
fails. The new version's metadata records the feedback it learnt (`feedback`: alert ids, counts,
the pairs it now predicts, which workers then retire from their allowlists).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, DataError
from pipeline.settings import Settings

NEXT_EVENT_KINDS = frozenset({"unexpected_next_event", "oov_event"})


def add_arguments(parser: Any) -> None:
    """The `--update` options of `logad train lama|deeplog`; `parser` is a parser or an argument group."""
    parser.add_argument(
        "--update",
        action="store_true",
        help="fine-tune the newest servable version on operator feedback and publish the next version",
    )
    parser.add_argument(
        "--from-feedback",
        nargs="?",
        const="",
        metavar="FILE",
        help="feedback records from FILE (JSON array or lines); without FILE, the log-feedback topic",
    )
    parser.add_argument("--update-epochs", type=int, default=2, help="fine-tuning epochs of --update")
    parser.add_argument("--update-learning-rate", type=float, default=3e-4)
    parser.add_argument("--marked-repeat", type=int, default=20, help="draws of each marked pair per epoch")


def read_records(args: argparse.Namespace, settings: Settings) -> tuple[list[Any], str, int]:
    """(records, where from, malformed records skipped) from a file or the feedback topic."""
    from pipeline.feedback import decode_feedback
    from pipeline.feedback_sources import read_feedback_file

    if args.from_feedback:
        return read_feedback_file(Path(args.from_feedback)), args.from_feedback, 0
    from pipeline.adapters.kafka import read_to_end

    latest: dict[bytes, Any] = {}
    bad = 0
    for message in read_to_end(settings, settings.feedback_topic):
        if message.value() is None:  # a tombstone withdraws the verdict on that alert
            latest.pop(message.key() or b"", None)
            continue
        try:
            latest[message.key() or b""] = decode_feedback(message.value())
        except DataError:
            bad += 1  # the worker dead-letters these; here they are only left out
    return list(latest.values()), settings.feedback_topic, bad


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from pipeline.commands import serving
    from pipeline.commands.train import check_validation, load_training_sessions
    from pipeline.feedback import Allowlist
    from pipeline.feedback_sources import version_context
    from pipeline.model_repository import load_version, newest_valid_version, read_version_file
    from pipeline.templates import TemplateMiner
    from pipeline.training.feedback_update import UpdateConfig, fine_tune, trained_from_version
    from pipeline.training.next_event import split_sessions
    from pipeline.training.raw_logs import publish_trained
    from pipeline.version_checks import TEMPLATES_FILE

    torch.set_num_threads(args.threads)
    repo = Path(settings.model_repo)
    version = newest_valid_version(repo, args.model)
    if version is None:
        raise ConfigError(f"train --update: no servable {args.model} version in {repo}; train one first")
    loaded = load_version(repo, args.model, version)
    trained = trained_from_version(args.model, loaded.module, loaded.metadata)
    context = version_context(repo, args.model, version)
    records, origin, bad = read_records(args, settings)
    mine = [
        r
        for r in records
        if r.model == args.model
        and r.template_set == context.template_set
        and r.kind.value in NEXT_EVENT_KINDS
    ]
    allowlist = Allowlist()
    for record in mine:
        allowlist.add(record)
    scope = allowlist.scope(args.model, context.template_set, context.window_size)
    print(
        f"update {args.model} version {version}: {len(records)} feedback records from {origin} "
        f"({bad} malformed skipped), {len(mine)} for this model and template set, {len(scope)} distinct pairs"
    )
    if not len(scope):
        print(f"train --update: nothing to learn; {args.model} version {version} keeps serving")
        return 0
    if args.from_topic is not None:
        from pipeline.commands import train_topic

        sessions = list(train_topic.load_topic_sessions(args, settings).sessions)
        digest = ""
    elif args.logs or args.sessions:
        sessions, digest, _, _ = load_training_sessions(args, settings)
    else:
        raise ConfigError(
            "train --update: give the version's training data for the replay (--logs F --labels F or "
            "--from-topic), so the update does not forget what the version knew"
        )
    expected = loaded.metadata.get("training_data_sha256")
    if digest and expected and digest != expected:
        print(
            f"train --update: warning: the training data differ from version {version}'s "
            f"({digest[:12]} vs {expected[:12]}); the replay and validation split are not the version's own",
            file=sys.stderr,
        )
    fit, held_out = split_sessions(
        sessions, trained.train_config.validation_fraction, trained.train_config.seed
    )
    update = UpdateConfig.from_options(args)
    result = fine_tune(trained, scope, fit, held_out, update)
    remaining = {(*map(int, w), int(n)) for w, n in zip(*scope.pairs(), strict=True)}
    learnt = sorted({(*r.window, r.next_event) for r in mine} - remaining)
    print(
        f"update: k {trained.top_k} -> {result.trained.top_k}; {result.learnable_pairs} pairs learnt, "
        f"{result.unlearnable_pairs} OOV pairs stay on the allowlist, {result.retired} now predicted"
    )
    if args.no_publish:
        return 0
    check_validation(args.model, result.trained.validation_fpr(), args, settings)
    miner = None
    if (repo / args.model / str(version) / TEMPLATES_FILE).exists():
        miner = TemplateMiner.load_state(read_version_file(repo, args.model, version, TEMPLATES_FILE))
    alert_ids = sorted(r.alert_id for r in mine)
    feedback = {
        "updated_from_version": version,
        "source": origin,
        "records": len(mine),
        "alert_ids_sha256": hashlib.sha256("\n".join(alert_ids).encode()).hexdigest(),
        "alert_ids": alert_ids[:1000],
        "learnt_pairs": result.learnable_pairs,
        "oov_pairs": result.unlearnable_pairs,
        "retired_pairs": [list(row) for row in learnt],
        "template_set": context.template_set,
    }
    # What the next version must carry over: its training data's identity and, for a format profile
    # source, the profile its parser is built with.
    kept = ("training_data_sha256", "train_blocks_sha256", "format_profile")
    extra = {k: v for k, v in loaded.metadata.items() if k in kept}
    published = publish_trained(
        repo,
        result.trained,
        miner,
        loaded.metadata.get("log_format"),
        {**extra, "feedback": feedback},
        max_batch_size=args.max_batch_size,
        layout=settings.serving_layout(),
    )
    return serving.serve_published(published, args, settings)
