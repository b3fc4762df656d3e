"""`logad feedback ALERT_ID --normal [--note TEXT]` and `logad feedback --records FILE`: operator
verdicts onto the compacted `log-feedback` topic, keyed by alert id (`pipeline.feedback`).

By id, the alert is looked up in `log-anomalies` and the record carries what the alert carried (model,
version, window and next event as template ids, session, source). `--records` sends records any
client wrote (a JSON array or JSON lines, the schema of `pipeline.feedback.FeedbackRecord`), each
validated first: nothing is sent when one is malformed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, DataError
from pipeline.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("feedback", help="mark an alert as normal (log-feedback topic)")
    parser.add_argument("alert_id", nargs="?", help="the alert's id (`logad tail --verbose` shows it)")
    parser.add_argument("--normal", action="store_true", help="the alert was a false positive")
    parser.add_argument("--note", default="", help="why it is normal (kept with the record)")
    parser.add_argument("--records", type=Path, help="send feedback records from a JSON file instead")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="bound on reading log-anomalies")
    parser.set_defaults(handler=_feedback)


def _feedback(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.adapters.kafka import send_keyed
    from pipeline.feedback import encode_feedback

    records = _records_from_file(args) if args.records else [_record_for_alert(args, settings)]
    send_keyed(settings, settings.feedback_topic, [(r.kafka_key(), encode_feedback(r)) for r in records])
    for record in records:
        what = f"{record.kind.value}, {record.model} v{record.model_version}"
        print(
            f"feedback: alert {record.alert_id} ({what}, {record.source}/{record.session_key}) "
            f"marked {record.verdict.value} on {settings.feedback_topic}"
        )
    return 0


def _records_from_file(args: argparse.Namespace) -> list[Any]:
    from pipeline.feedback_sources import read_feedback_file

    if args.alert_id:
        raise ConfigError("feedback: give an ALERT_ID or --records FILE, not both")
    return read_feedback_file(args.records)


def _record_for_alert(args: argparse.Namespace, settings: Settings) -> Any:
    from pipeline.adapters.kafka import read_to_end
    from pipeline.feedback import feedback_from_alert
    from pipeline.feedback_sources import find_alert, version_context

    if not args.alert_id:
        raise ConfigError("feedback: give the ALERT_ID to mark (or --records FILE)")
    if not args.normal:
        raise ConfigError("feedback: say what the alert was: --normal (the only verdict taught so far)")
    messages = read_to_end(settings, settings.anomalies_topic, timeout_s=args.timeout_s)
    alert = find_alert((m.value() for m in messages), args.alert_id)
    if alert is None:
        raise DataError(
            f"feedback: no alert with id {args.alert_id!r} among the {len(messages)} records of "
            f"{settings.anomalies_topic}; copy the id from `logad tail --from-beginning --verbose`"
        )
    context = version_context(Path(settings.model_repo), alert.model, alert.model_version)
    return feedback_from_alert(alert, context.window_size, context.template_set, args.note, time.time())
