"""The notify loop: commits only after delivery, retries while the receiver is down (a real HTTP
server on loopback that refuses, then accepts), and skips what it cannot read."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from pipeline.adapters.alert_http import AlertmanagerSink, WebhookSink
from pipeline.alert_routing import AlertFilter, RetryPolicy
from pipeline.alerts import Alert, AlertKind, encode_alert
from pipeline.notify import DeliveryError, Notifier, TopicRecord
from tests.unit.test_alerts import make_alert


@dataclass
class FakeRecords:
    """A topic partition with a committed offset; poll hands out what lies past the read position."""

    values: list[bytes]
    position: int = 0
    committed: int = 0
    commits: list[int] = field(default_factory=list)

    def poll(self, max_records: int, timeout_s: float) -> list[TopicRecord]:
        batch = [
            TopicRecord("log-anomalies", 0, offset, self.values[offset])
            for offset in range(self.position, min(self.position + max_records, len(self.values)))
        ]
        self.position += len(batch)
        return batch

    def commit(self, records: Sequence[TopicRecord]) -> None:
        self.committed = max(r.offset for r in records) + 1
        self.commits.append(self.committed)

    def restart(self) -> None:
        """A new notifier process: it reads from the committed offset."""
        self.position = self.committed


class Receiver(BaseHTTPRequestHandler):
    """Answers 503 while `down`, else 200, and keeps each accepted body."""

    server: Any

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.attempts += 1
            status = 503 if self.server.down else 200
            if status == 200:
                self.server.bodies.append((self.path, self.headers["Content-Type"], orjson.loads(body)))
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"unavailable" if status == 503 else b"")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.lock, server.attempts, server.down, server.bodies = threading.Lock(), 0, False, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _alerts(n: int) -> list[Alert]:
    return [make_alert(session=f"blk_{i}") for i in range(n)]


def test_retries_while_the_receiver_is_down_and_commits_only_after_delivery(receiver: Any) -> None:
    alerts = _alerts(5)
    records = FakeRecords([encode_alert(a) for a in alerts])
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    receiver.down = True
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        # While the receiver is down nothing may be committed; it comes back after the fourth try.
        assert records.committed == 0
        if len(waits) == 4:
            receiver.down = False
        return False

    policy = RetryPolicy(initial_delay_s=0.01, max_delay_s=0.04, jitter=0.5)
    sink = AlertmanagerSink(url)
    notifier = Notifier(records, sink, policy=policy, wait=wait, rng=random.Random(1), max_batch=3)
    assert notifier.step() and notifier.step()
    assert receiver.attempts == 4 + 1 + 1  # four refused, then the two batches
    assert records.commits == [3, 5]
    assert [w <= c for w, c in zip(waits, [0.01, 0.02, 0.04, 0.04], strict=True)] == [True] * 4
    posted = [alert for path, ctype, body in receiver.bodies for alert in body]
    assert {path for path, _, _ in receiver.bodies} == {"/api/v2/alerts"}
    assert [a["labels"]["alert_id"] for a in posted] == [a.alert_id for a in alerts]
    assert notifier.tally.delivered == 5 and notifier.tally.failed_posts == 4


def test_a_stop_during_retries_commits_nothing_and_a_restart_delivers(receiver: Any) -> None:
    alerts = _alerts(2)
    records = FakeRecords([encode_alert(a) for a in alerts])
    sink = WebhookSink(f"http://127.0.0.1:{receiver.server_address[1]}/hook")
    receiver.down = True
    stopped = Notifier(records, sink, wait=lambda _s: True)  # stop asked during the first backoff
    assert not stopped.step()
    assert records.commits == [] and receiver.bodies == []

    records.restart()
    receiver.down = False
    assert Notifier(records, sink).step()
    ((path, ctype, body),) = receiver.bodies
    assert (path, ctype, body["schema"]) == ("/hook", "application/json", "logad-webhook/1")
    assert [a["alert_id"] for a in body["alerts"]] == [a.alert_id for a in alerts]
    assert records.commits == [2]


def test_an_unreachable_receiver_is_a_delivery_error() -> None:
    from pipeline.infra.process import free_port

    sink = AlertmanagerSink(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    with pytest.raises(DeliveryError, match=r"POST http://127\.0\.0\.1:\d+/api/v2/alerts: .*refused"):
        sink.post(_alerts(1))


def test_a_refusing_receiver_keeps_its_status(receiver: Any) -> None:
    receiver.down = True
    with pytest.raises(DeliveryError, match="HTTP 503") as caught:
        WebhookSink(f"http://127.0.0.1:{receiver.server_address[1]}").post(_alerts(1))
    assert caught.value.status == 503


class ListSink:
    def __init__(self) -> None:
        self.posted: list[Alert] = []

    def describe(self) -> str:
        return "list"

    def post(self, alerts: Sequence[Alert]) -> None:
        self.posted.extend(alerts)


def test_filtered_and_unreadable_records_are_committed_past_without_a_post() -> None:
    oov = make_alert(AlertKind.OOV_EVENT)
    records = FakeRecords([encode_alert(make_alert()), b"{not json", encode_alert(oov), b'{"schema": 99}'])
    sink = ListSink()
    notifier = Notifier(records, sink, AlertFilter.parse(["oov_event"]))
    assert notifier.step()
    assert sink.posted == [oov]
    assert records.commits == [4]
    assert (notifier.tally.filtered_out, notifier.tally.unreadable) == (1, 2)
    records.values.append(encode_alert(make_alert()))
    assert notifier.step() and records.commits == [4, 5]  # nothing to post, still committed past
    assert sink.posted == [oov]


def test_the_routing_core_imports_no_client() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, pipeline.alert_routing, pipeline.notify, pipeline.topic_contracts; "
        "import pipeline.triton_config; "
        "print(sorted(m for m in ('torch', 'faust', 'confluent_kafka', 'aiokafka', 'tritonclient', "
        "'urllib.request') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"


def test_tail_json_prints_the_alert_as_the_topic_carries_it() -> None:
    from pipeline.alerts import decode_alert
    from pipeline.commands.online import alert_json

    alert = make_alert(AlertKind.PARAMETER_VALUE)
    line = alert_json(alert)
    assert "\n" not in line and orjson.loads(line)["schema"] == "log-anomaly/2"
    assert decode_alert(line.encode()) == alert
