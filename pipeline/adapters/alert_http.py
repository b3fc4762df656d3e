"""HTTP receivers of `logad notify`: Alertmanager's v2 API and a generic JSON webhook (stdlib urllib).

Every failure becomes a `DeliveryError` carrying the HTTP status when there was one, so the retry loop
(`pipeline.notify`) can tell a receiver that is down from one that refuses the request.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import orjson

from pipeline.alert_routing import alertmanager_payload, webhook_payload
from pipeline.alerts import Alert
from pipeline.notify import DeliveryError

ALERTMANAGER_ALERTS_PATH = "/api/v2/alerts"


def post_json(url: str, body: Any, timeout_s: float, headers: dict[str, str] | None = None) -> None:
    """POST `body` as JSON; returns on a 2xx answer, raises DeliveryError otherwise."""
    request = urllib.request.Request(
        url,
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        raise DeliveryError(f"POST {url}: HTTP {exc.code} {exc.reason}: {detail}", exc.code) from exc
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout, reset
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DeliveryError(f"POST {url}: {reason}") from exc


class AlertmanagerSink:
    """Posts to `<base_url>/api/v2/alerts` (base URL as Alertmanager serves it, e.g. `http://am:9093`)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0, generator_url: str = "") -> None:
        self.url = base_url.rstrip("/") + ALERTMANAGER_ALERTS_PATH
        self.timeout_s = timeout_s
        self.generator_url = generator_url

    def describe(self) -> str:
        return f"Alertmanager {self.url}"

    def post(self, alerts: Sequence[Alert]) -> None:
        post_json(self.url, alertmanager_payload(alerts, self.generator_url), self.timeout_s)


class WebhookSink:
    """Posts `{"schema": "logad-webhook/1", "alerts": [...]}` to any URL."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def describe(self) -> str:
        return f"webhook {self.url}"

    def post(self, alerts: Sequence[Alert]) -> None:
        post_json(self.url, webhook_payload(alerts), self.timeout_s)
