"""`logad notify`: `log-anomalies` to Alertmanager (v2 API) or a webhook, at least once."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.notify import AlertSink

log = logging.getLogger(__name__)


def make_sink(alertmanager_url: str, webhook_url: str, timeout_s: float) -> AlertSink:
    """The one receiver configured; both or neither is a ConfigError that names the settings."""
    from pipeline.adapters.alert_http import AlertmanagerSink, WebhookSink

    if bool(alertmanager_url) == bool(webhook_url):
        raise ConfigError(
            "notify: give exactly one receiver: --alertmanager URL (LOGAD_ALERTMANAGER_URL) or "
            "--webhook URL (LOGAD_NOTIFY_WEBHOOK_URL)" + (", not both" if alertmanager_url else "")
        )
    if alertmanager_url:
        return AlertmanagerSink(alertmanager_url, timeout_s)
    return WebhookSink(webhook_url, timeout_s)


def _notify(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.adapters.kafka import CommittingReader
    from pipeline.alert_routing import AlertFilter, RetryPolicy
    from pipeline.notify import Notifier

    sink = make_sink(
        args.alertmanager or settings.alertmanager_url,
        args.webhook or settings.notify_webhook_url,
        args.timeout,
    )
    route = AlertFilter.parse(args.kind or (), args.source or ())
    policy = RetryPolicy(max_delay_s=args.max_backoff)
    group = args.group or settings.notify_group
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    reader = CommittingReader(settings, group, [settings.anomalies_topic], args.from_beginning)
    notifier = Notifier(reader, sink, route, policy, wait=stop.wait)
    log.info(
        "notify: %s -> %s (group %s%s)", settings.anomalies_topic, sink.describe(), group,
        f", kinds {sorted(k.value for k in route.kinds)}" if route.kinds else "",
    )  # fmt: skip
    try:
        tally = notifier.run(stop.is_set)
    finally:
        reader.close()
    print(
        f"logad notify: {tally.delivered} alerts delivered in {tally.batches} batches, "
        f"{tally.filtered_out} filtered out, {tally.unreadable} unreadable, "
        f"{tally.failed_posts} failed posts",
        file=sys.stderr,
    )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "notify",
        help="deliver alerts from log-anomalies to Alertmanager or a webhook (at least once)",
        description=(
            "Read log-anomalies under a consumer group (LOGAD_NOTIFY_GROUP) and POST each batch to "
            "Alertmanager's /api/v2/alerts (alert id as a label, so repeats deduplicate) or to a webhook "
            "as JSON. A failed POST is retried with capped exponential backoff and jitter; offsets are "
            "committed only after the POST succeeded, so a stop or crash re-reads what was not delivered."
        ),
    )
    parser.add_argument("--alertmanager", metavar="URL", help="Alertmanager base URL, e.g. http://am:9093")
    parser.add_argument("--webhook", metavar="URL", help="any URL taking a JSON POST")
    parser.add_argument("--group", help="consumer group (default: LOGAD_NOTIFY_GROUP, logad-notify)")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="a group without commits starts at the oldest alert (default: at the newest)",
    )
    parser.add_argument("--kind", action="append", metavar="K", help="only this kind (repeatable)")
    parser.add_argument("--source", action="append", metavar="S", help="only this source (repeatable)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per POST (default: %(default)s)")
    parser.add_argument(
        "--max-backoff",
        type=float,
        default=30.0,
        help="longest wait between retries in seconds (default: %(default)s)",
    )
    parser.set_defaults(handler=_notify)
