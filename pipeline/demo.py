"""`logad demo`: the whole pipeline on one machine, from nothing to a precision/recall table.

Servers up (Kafka with topics, Triton), a model trained and published if the repository has none,
a worker started, HDFS_100k (or the synthetic generator's output) replayed into `raw-logs`, alerts
shown as they arrive, and finally block-level precision, recall and F1 against the labels on the
blocks the model did not train on.

The figures are only printed for a whole run: the demo waits until the worker has handled every
replayed record and closed every session (`pipeline.progress`, read from the worker's `/progress`
page and the topics' end offsets), then reads `log-anomalies` up to its end offsets. It exits 1,
saying how far the run got, when that does not happen within the bound; and it exits 1 when the
streaming figures differ from offline detection with the same version on the same lines
(`pipeline.offline`), which is what streaming must reproduce.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from pipeline.errors import InfrastructureError
from pipeline.model_repository import newest_valid_version, read_metadata
from pipeline.progress import NotDrained
from pipeline.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    model: str = "lama"
    lines: int | None = None
    use_synthetic: bool = False
    as_json: bool = False
    retrain: bool = False
    synthetic_lines: int = 100_000
    # Sessions close after this much ingest time without a line. Offline detection closes them only
    # at the end, so the replay (in produce time) must fit inside it for the figures to agree.
    session_timeout_s: float = 20.0
    timeout_s: float = 900.0  # replay end to everything handled


@dataclass(frozen=True)
class DemoInput:
    name: str
    lines: list[str]
    anomalous_blocks: frozenset[str]


def load_input(settings: Settings, options: DemoOptions) -> DemoInput:
    from pipeline.datasets import loghub

    raw = Path(settings.data_dir) / loghub.HDFS_RAW
    if raw.is_file() and not options.use_synthetic:
        lines = loghub.hdfs_lines(settings.data_dir)
        labels = loghub.read_abnormal_blocks(Path(settings.data_dir) / loghub.HDFS_ABNORMAL)
        name = "HDFS_100k (loghub)"
    else:
        from pipeline.datasets.synthetic import SyntheticConfig, SyntheticHdfs

        if not options.use_synthetic:
            print(f"no {raw}: using the synthetic HDFS-like generator instead", file=sys.stderr)
        run = SyntheticHdfs(SyntheticConfig(lines=options.synthetic_lines, seed=7))
        lines = list(run)
        labels = frozenset(run.labels)
        name = f"synthetic HDFS-like ({options.synthetic_lines} lines)"
    if options.lines:
        lines = lines[: options.lines]
    return DemoInput(name, list(lines), frozenset(labels))


def ensure_model(settings: Settings, options: DemoOptions, data: DemoInput) -> tuple[int, list[str]]:
    """Train and publish when no valid version exists (or --retrain). Returns (version, test blocks)."""
    from pipeline.formats import HDFS
    from pipeline.training.next_event import TrainConfig
    from pipeline.training.raw_logs import (
        mine_sessions,
        publish_trained,
        sessions_digest,
        train_from_raw_lines,
    )

    repo = Path(settings.model_repo)
    version = newest_valid_version(repo, options.model)
    if version is not None and not options.retrain:
        metadata = read_metadata(repo, options.model, version)
        if metadata.get("templates_of") == data.name and metadata.get("test_blocks"):
            print(f"model: {options.model} version {version} already published in {repo}")
            return version, list(metadata["test_blocks"])
        mined = mine_sessions(data.lines, HDFS, progress=False)
        train = set(metadata.get("train_blocks") or ())
        print(f"model: {options.model} version {version} (trained elsewhere); testing on all blocks")
        return version, sorted(k for k in mined.sessions if k not in train)
    print(f"model: training {options.model} on 80% of the normal blocks of {data.name} (progress below)")
    trained, mined, train_keys, test_keys = train_from_raw_lines(
        options.model,
        data.lines,
        HDFS,
        data.anomalous_blocks,
        TrainConfig.for_model(options.model, seed=0),
    )
    published = publish_trained(
        repo,
        trained,
        mined.miner,
        "hdfs",
        {
            "templates_of": data.name,
            "train_blocks": train_keys,
            "train_blocks_sha256": sessions_digest(train_keys),
            "test_blocks": test_keys,
        },
    )
    print(f"model: published {options.model} version {published.version} (sha256 {published.sha256[:12]})")
    return published.version, test_keys


class AlertCollector(threading.Thread):
    """Reads `log-anomalies` from given offsets, keeps this run's alerts, prints one line each."""

    def __init__(self, settings: Settings, source: str, show: bool) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import TopicPartition

        from pipeline.adapters.kafka import consumer

        self.source, self.show = source, show
        self.reader = consumer(settings, f"logad-demo-{uuid.uuid4().hex[:8]}", [])
        metadata = self.reader.list_topics(settings.anomalies_topic, timeout=10).topics[
            settings.anomalies_topic
        ]
        starts = []
        for p in metadata.partitions:
            _, high = self.reader.get_watermark_offsets(
                TopicPartition(settings.anomalies_topic, p), timeout=10
            )
            starts.append(TopicPartition(settings.anomalies_topic, p, high))
        self.reader.assign(starts)
        self.alerts: list = []
        # Offset after the last record read, per partition (every record counts, any source's).
        self.positions: dict[int, int] = {tp.partition: tp.offset for tp in starts}
        self._halt = threading.Event()

    def run(self) -> None:
        from pipeline.alerts import decode_alert
        from pipeline.presentation import format_alert

        while not self._halt.is_set():
            message = self.reader.poll(0.2)
            if message is None or message.error():
                continue
            alert = decode_alert(message.value())
            if alert.source == self.source:
                self.alerts.append(alert)
                if self.show:
                    print(format_alert(alert), file=sys.stderr, flush=True)
            # After the alert is kept: a reader that sees this position has the alert too.
            self.positions[message.partition()] = message.offset() + 1

    def wait_through(self, ends: dict[int, int], timeout_s: float) -> None:
        """Until every alert written before `ends` was taken is read (not until alerts stop coming)."""
        from pipeline.adapters.worker_progress import wait_read_through

        wait_read_through(self.positions, ends, timeout_s, "log-anomalies", self.is_alive)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.reader.close()


def wait_ready(port: int, worker: subprocess.Popen, timeout_s: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise InfrastructureError(f"the worker exited with code {worker.returncode}; see {log_file}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise InfrastructureError(f"the worker was not ready after {timeout_s:.0f}s; see {log_file}")


def worker_counter(port: int, name: str) -> float:
    """Sum of a Prometheus counter (all label sets) on the worker's /metrics page; 0 if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in {" ", "{"}:
            total += float(line.rsplit(" ", 1)[1])
    return total


def block_metrics(alerted: set[str], anomalous: frozenset[str], test_blocks: list[str]) -> dict[str, float]:
    test = set(test_blocks)
    flagged = alerted & test
    truth = anomalous & test
    tp = len(flagged & truth)
    fp = len(flagged - truth)
    fn = len(truth - flagged)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def run_demo(settings: Settings, options: DemoOptions) -> int:
    from tqdm import tqdm

    from pipeline.adapters import kafka
    from pipeline.adapters.faust_config import worker_command
    from pipeline.adapters.triton import load_model
    from pipeline.adapters.worker_progress import RunOffsets, wait_drained
    from pipeline.commands.infra import kafka_up, local_triton
    from pipeline.infra.process import free_port

    started = time.monotonic()
    kafka_up(settings)
    triton = local_triton(settings)
    print(triton.start())
    data = load_input(settings, options)
    version, test_blocks = ensure_model(settings, options, data)
    serving = load_model(settings.triton_grpc_url, options.model)
    print(f"triton: serving {options.model} version {serving}")
    if serving != version:
        print(
            f"demo: Triton serves {options.model} version {serving}, not the demo's version {version}: "
            f"its figures would not be this version's. Publish or remove versions in {settings.model_repo} "
            "so the newest valid one is the one to demonstrate (or use --retrain)",
            file=sys.stderr,
        )
        return 1

    run_id = uuid.uuid4().hex[:8]
    source = f"hdfs-demo-{run_id}"
    web_port = free_port()
    worker_settings = settings.replace(
        detection_model=options.model,
        inference_backend="triton",
        web_port=web_port,
        # A fresh group and session table per run: nothing to recover, no earlier replays to re-read.
        app_id=f"logad-demo-{run_id}",
        consumer_offset_reset="latest",
        session_timeout_s=options.session_timeout_s,
    )
    logs = Path(settings.state_dir) / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    worker_log_file = logs / "worker.log"
    with worker_log_file.open("ab") as worker_log:
        worker = subprocess.Popen(
            worker_command(sys.executable),
            env=worker_settings.to_env(os.environ),
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )

    def worker_died() -> str | None:
        code = worker.poll()
        return None if code is None else f"the worker exited with code {code} (see {worker_log_file})"

    collector = None
    replay_s = drain_s = 0.0
    try:
        wait_ready(web_port, worker, 120, worker_log_file)
        print(f"worker: ready (web http://127.0.0.1:{web_port}/progress), log {worker_log_file}")
        collector = AlertCollector(settings, source, show=not options.as_json)
        collector.start()
        with RunOffsets(settings) as offsets:
            raw_starts = offsets.ends(settings.raw_logs_topic)
        replay_started = time.monotonic()
        with tqdm(total=len(data.lines), unit=" lines", desc="replay", file=sys.stderr) as bar:
            sent = kafka.replay_lines(
                settings,
                (line.encode() for line in data.lines),
                settings.raw_logs_topic,
                source,
                lines_per_message=settings.replay_lines_per_message,
                on_sent=bar.update,
            )
        replay_s = time.monotonic() - replay_started
        try:
            drained = wait_drained(
                settings, [web_port], sent, raw_starts, options.timeout_s, problem=worker_died
            )
        except NotDrained as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
        drain_s = time.monotonic() - replay_started - replay_s
        print(f"worker: {drained.describe()} {drain_s:.1f}s after the replay", file=sys.stderr)
        with RunOffsets(settings) as offsets:
            alert_ends = offsets.ends(settings.anomalies_topic)
        collector.wait_through(alert_ends, timeout_s=120)
    finally:
        if collector is not None:
            collector.stop()
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    alerts = collector.alerts if collector else []
    streaming = block_metrics({a.session_key for a in alerts}, data.anomalous_blocks, test_blocks)
    print(f"offline: detecting with {options.model} v{version} in-process (TorchScript) on the same lines")
    offline = offline_figures(settings, options.model, version, data, source, test_blocks)
    same = all(streaming[k] == offline[k] for k in ("tp", "fp", "fn"))
    summary = {
        "input": data.name,
        "lines": sent,
        "alerts": len(alerts),
        "model": options.model,
        "model_version": version,
        "test_blocks": len(test_blocks),
        **streaming,
        "streaming": streaming,
        "offline": offline,
        "streaming_equals_offline": same,
        "replay_s": round(replay_s, 1),
        "drain_s": round(drain_s, 1),  # replay end to every record handled and session closed
        "session_timeout_s": options.session_timeout_s,
        "seconds": round(time.monotonic() - started, 1),
        "alerts_topic": settings.anomalies_topic,
    }
    print(
        f"\n{data.name}: {sent} lines replayed, {len(alerts)} alerts from {options.model} v{version}\n"
        f"block-level on {len(test_blocks)} blocks the model did not train on:\n"
        f"  streaming  {format_figures(streaming)}\n"
        f"  offline    {format_figures(offline)}  (same version, same lines, in-process)\n"
        f"alerts: Kafka topic {settings.anomalies_topic} on {settings.bootstrap_servers} "
        f"(`logad tail --from-beginning`); worker log {worker_log_file}"
    )
    if options.as_json:
        print(orjson.dumps(summary).decode())
    if not same:
        print(
            f"demo: the streaming figures differ from offline detection with the same version "
            f"({format_figures(streaming)} vs {format_figures(offline)}): the stream lost, repeated or "
            f"split something. The replay took {replay_s:.1f}s of produce time against a session timeout "
            f"of {options.session_timeout_s:.0f}s (a longer replay splits sessions); otherwise see "
            f"{worker_log_file}",
            file=sys.stderr,
        )
        return 1
    return 0


def format_figures(scores: dict[str, float]) -> str:
    return (
        f"precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  F1 {scores['f1']:.4f}"
        f"  (TP {scores['tp']}, FP {scores['fp']}, FN {scores['fn']})"
    )


def offline_figures(
    settings: Settings, model: str, version: int, data: DemoInput, source: str, test_blocks: list[str]
) -> dict[str, float]:
    """Block figures of offline detection (`pipeline.offline`) with `version` on the demo's lines."""
    import asyncio

    from pipeline.offline import detect_offline

    found = asyncio.run(detect_offline(data.lines, Path(settings.model_repo), model, version, source))
    return block_metrics(set(found.flagged_sessions), data.anomalous_blocks, test_blocks)
