"""`logad train lama|deeplog --from-topic [TOPIC]`: train on the sessions the parser wrote to Kafka.

The topic (default `log-events`) is read from its beginning to the end offsets present at start
(`pipeline.adapters.topic_snapshot`), events are grouped by session key in offset order, and sessions
listed by `--labels` are left out.

The published version must carry a parser (`templates.json`) that gives the same ids the model was
trained on. The events hold each template's id and text, but not the parser state that made them:
Drain's prefix tree and the templates no event used are gone. So there are two ways:
- `--templates-from MODEL[:VERSION]` (exact): ship the parser of the version that parsed the stream.
  Every template id the parser matched must be in it; the command fails and names the ones missing
  otherwise (events parsed by several versions).
- default (rebuilt): a parser whose templates are the texts of the events the parser matched
  (`TemplateMiner.from_templates`), checked to map each text to its own id. Templates the stream
  never used are dropped (their lines become OOV), and a line that fits two texts may pick another
  than before. Metadata records which way was taken.
In both cases a template the old parser did not know (an OOV event) keeps its id at serving: an OOV
line's id is the hash of its masked text, the same that the event carries.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, DataError
from pipeline.settings import Settings
from pipeline.templates import DrainConfig, TemplateMiner

log = logging.getLogger(__name__)


def add_arguments(parser: Any, source: Any) -> None:
    """`--from-topic` joins the mutually exclusive `source` group of `logad train`; `parser` is a parser
    or an argument group."""
    source.add_argument(
        "--from-topic",
        nargs="?",
        const="",
        metavar="TOPIC",
        help="train on the sessions in this log-events topic (default: LOGAD_LOG_EVENTS_TOPIC)",
    )
    parser.add_argument(
        "--templates-from",
        metavar="MODEL[:VERSION]",
        help="with --from-topic: ship this model version's parser (exact) instead of one rebuilt "
        "from the events' template texts (default: newest valid version of MODEL)",
    )


@dataclass(frozen=True)
class TopicTraining:
    """What `logad train` needs from a topic: sessions, the parser to publish and the metadata."""

    sessions: list[tuple[int, ...]]
    miner: TemplateMiner
    log_format: str
    metadata: dict[str, Any]


def load_topic_sessions(args: argparse.Namespace, settings: Settings) -> TopicTraining:
    from confluent_kafka import Message

    from pipeline.adapters.topic_snapshot import TopicSnapshot
    from pipeline.datasets import data_file
    from pipeline.datasets.sessions import read_block_labels
    from pipeline.event_columns import read_event_batch
    from pipeline.records import EventBatch
    from pipeline.training.event_sessions import group_event_sessions, training_sessions
    from pipeline.training.raw_logs import sessions_digest

    topic = args.from_topic or settings.log_events_topic
    undecodable: list[str] = []

    def batches(messages: Iterator[Message]) -> Iterator[EventBatch]:
        for msg in messages:
            try:
                yield read_event_batch(msg.value() or b"")
            except DataError as exc:
                # Bad records are data: counted and reported, the read goes on.
                undecodable.append(f"{msg.partition()}:{msg.offset()}")
                log.warning("train: skipped record %s:%d:%d: %s", topic, msg.partition(), msg.offset(), exc)

    with TopicSnapshot(settings, topic) as snapshot:
        grouped = group_event_sessions(batches(snapshot.messages(progress=True)))
        extent = snapshot.extent
    skip = read_block_labels(data_file(settings.data_dir, args.labels)) if args.labels else frozenset()
    chosen = training_sessions(grouped, skip)
    if not chosen.sessions:
        raise ConfigError(
            f"train --from-topic: no unlabelled session in {topic} ({extent.messages} records, "
            f"{grouped.events} events, {len(grouped.sessions)} sessions); check the topic and --labels"
        )
    templates = grouped.parser_templates()
    profile_json: dict[str, Any] | None = None  # a format profile the version must carry on
    if args.templates_from:
        miner, log_format, templates_source, profile_json = _version_parser(
            args.templates_from, templates, settings
        )
    else:
        from pipeline.format_profiles import resolve_profile

        profile = resolve_profile(args.format, settings.formats or None)
        miner, log_format, templates_source = _rebuilt_parser(templates, profile.name, profile.drain_config())
        profile_json = None if profile.builtin else profile.to_json()
    print(
        f"read {topic}: {extent.messages} records, {grouped.events} events, "
        f"{len(grouped.sessions)} sessions; training on {len(chosen.sessions)} "
        f"({chosen.left_out} labelled left out); "
        f"templates {templates_source}"
    )
    metadata = {
        "training_data_sha256": sessions_digest(chosen.keys),
        "training_source": {
            "topic": topic,
            "end_offsets": {str(p): o for p, o in extent.end_offsets.items()},
            "events": grouped.events,
            "sessions": len(grouped.sessions),
            "training_sessions": len(chosen.sessions),
            "labelled_left_out": chosen.left_out,
            "undecodable_records": len(undecodable),
            "templates": templates_source,
        },
    }
    if profile_json is not None:
        metadata["format_profile"] = profile_json
    return TopicTraining(list(chosen.sessions), miner, log_format, metadata)


def _rebuilt_parser(
    templates: dict[int, str], log_format: str, config: DrainConfig | None = None
) -> tuple[TemplateMiner, str, str]:
    miner = TemplateMiner.from_templates(templates.values(), config)
    unmatched = miner.unmatched(templates.values())
    if unmatched:
        raise DataError(
            f"train --from-topic: {len(unmatched)} of {len(templates)} template texts do not map back to "
            f"their own id in a parser rebuilt from them (e.g. {unmatched[0]!r}); ship the parser of the "
            "version that parsed the stream with --templates-from MODEL[:VERSION]"
        )
    return miner, log_format, f"rebuilt from {len(templates)} event template texts"


def _version_parser(
    spec: str, templates: dict[int, str], settings: Settings
) -> tuple[TemplateMiner, str, str, dict[str, Any] | None]:
    from pipeline.deployment import TEMPLATES_FILE
    from pipeline.errors import ModelError
    from pipeline.model_repository import newest_valid_version, read_metadata, read_version_file

    name, _, version_text = spec.partition(":")
    repo = Path(settings.model_repo)
    try:
        version = int(version_text) if version_text else newest_valid_version(repo, name)
    except ValueError as exc:
        raise ConfigError(f"train --templates-from: expected MODEL[:VERSION], got {spec!r}") from exc
    if version is None:
        raise ConfigError(f"train --templates-from: no valid version of {name!r} in {repo}")
    try:
        miner = TemplateMiner.load_state(read_version_file(repo, name, version, TEMPLATES_FILE))
        source_metadata = read_metadata(repo, name, version)
        log_format = str(source_metadata.get("log_format", "hdfs"))
    except ModelError as exc:
        raise ConfigError(f"train --templates-from {spec}: {exc}") from exc
    known = miner.templates()
    missing = sorted(set(templates) - set(known))
    if missing:
        raise ConfigError(
            f"train --templates-from {name}:{version}: {len(missing)} template ids of the events are not in "
            f"its parser (e.g. {missing[0]}: {templates[missing[0]]!r}); the stream was parsed by another "
            "version: name that one, or leave out --templates-from to rebuild the parser from the events"
        )
    return miner, log_format, f"{name} version {version} (exact)", source_metadata.get("format_profile")
