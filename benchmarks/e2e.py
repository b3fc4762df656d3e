"""End to end: raw lines through Kafka, Faust workers, Triton and out on `log-anomalies`.

Two measurements per worker count, in one run (this machine is shared; compare within a run):
- sustained throughput: N lines replayed as fast as the producer goes; `lines_per_s` is N over the
  time from the first produced line until every line is parsed and every log-events batch scored
  (the workers' read positions at both topics' end offsets, `pipeline.progress`); the phase then
  waits for every session to close and reads the alerts to the topic's end offsets;
- detection latency at fixed offered loads: lines paced at each `--rates` value, and for every alert an
  event raised (an unexpected next event or an OOV event), the time from the raw message's production
  (its `produced_at` header) to the alert's arrival at a consumer. Alerts raised when a session
  times out are counted apart: their latency is the session timeout by design.
CPU seconds and peak resident memory of every process (workers, the Kafka broker, Triton with its
Python stubs, and this producer/consumer) are sampled while each phase runs; `worker_cpu_us_per_line`
and `broker_cpu_us_per_line` divide the workers' and the broker's CPU by the lines of the phase.
Messages hold `LOGAD_REPLAY_LINES_PER_MESSAGE` lines (default 500), as `logad replay` sends them.

    python benchmarks/e2e.py --lines 200000 --workers 1 2 --rates 20000 5000 --json

Input: HDFS_100k (`LOGAD_DATA_DIR`) repeated with fresh block ids, or `--synthetic` (the project's
generator, up to 10 M lines). Servers: the same local Kafka and Triton as `logad up` (started if
down); a DeepLog version is trained and published first when the repository has none.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: `common` sits next to it

from common import machine_info, markdown_table, print_result, write_results

from pipeline.settings import Settings


@dataclass(eq=False)  # a thread: identity, not value, equality
class ProcessSampler(threading.Thread):
    """Peak RSS and CPU seconds of named processes while a phase runs; with their children for the
    names in `trees` (Triton runs a Python stub per model), the process alone otherwise (this
    benchmark's children are the workers, reported on their own rows)."""

    pids: dict[str, int]
    trees: frozenset[str] = frozenset({"triton"})
    interval_s: float = 0.5
    peak_rss: dict[str, int] = field(default_factory=dict)
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)
        self._halt = threading.Event()
        for name in self.pids:
            self.cpu_start[name] = self._sample(name)[1]

    def _tree(self, name: str) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pids[name])
            return [root, *root.children(recursive=True)] if name in self.trees else [root]
        except psutil.NoSuchProcess:
            return []

    def _sample(self, name: str) -> tuple[int, float]:
        rss, cpu = 0, 0.0
        for proc in self._tree(name):
            try:
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return rss, cpu

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self._record()

    def _record(self) -> None:
        for name in self.pids:
            rss, cpu = self._sample(name)
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
            if cpu:
                self.cpu_s[name] = cpu - self.cpu_start[name]

    def stop(self) -> dict[str, dict[str, float]]:
        self._halt.set()
        self.join(timeout=5)
        self._record()
        return {
            name: {"cpu_s": round(self.cpu_s.get(name, 0.0), 2), "peak_rss_mb": round(rss / 2**20, 1)}
            for name, rss in self.peak_rss.items()
        }


class AlertTimes(threading.Thread):
    """Arrival time of every alert on the run's anomalies topic."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        from pipeline.adapters.kafka import consumer

        self.reader = consumer(settings, f"bench-alerts-{uuid.uuid4().hex[:8]}", [settings.anomalies_topic])
        self.arrivals: list[tuple[float, bytes]] = []
        self.positions: dict[int, int] = {}  # offset after the last alert read, per partition
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            message = self.reader.poll(0.1)
            if message is not None and not message.error():
                self.arrivals.append((time.time(), message.value()))
                self.positions[message.partition()] = message.offset() + 1

    def wait_through(self, settings: Settings, timeout_s: float = 120.0) -> None:
        """Until every alert on the topic now is read (the run is drained: no more will come)."""
        from pipeline.adapters.worker_progress import RunOffsets, wait_read_through

        with RunOffsets(settings) as offsets:
            ends = offsets.ends(settings.anomalies_topic)
        wait_read_through(self.positions, ends, timeout_s, "log-anomalies", self.is_alive)

    def stop(self) -> list[tuple[float, bytes]]:
        self._halt.set()
        self.join(timeout=5)
        self.reader.close()
        return self.arrivals


def input_lines(settings: Settings, lines: int, synthetic: bool) -> list[bytes]:
    """`lines` raw lines: HDFS_100k repeated with fresh block ids, or the synthetic generator.

    Made before the clock starts: rewriting block ids costs the producer more CPU than sending, and
    on a 2-core machine that CPU would be taken from the pipeline under test.
    """
    from pipeline.datasets import loghub
    from pipeline.datasets.synthetic import SyntheticConfig, SyntheticHdfs, repeat_with_fresh_blocks

    raw = Path(settings.data_dir) / loghub.HDFS_RAW
    if synthetic or not raw.is_file():
        source: Iterator[str] = iter(SyntheticHdfs(SyntheticConfig(lines=lines, seed=11)))
    else:
        base = loghub.hdfs_lines(settings.data_dir)
        source, _ = repeat_with_fresh_blocks(base, repetitions=lines // len(base) + 1, seed=3)
    return [line.encode() for line in itertools.islice(source, lines)]


def produce_by_session(settings: Settings, payloads: list[bytes], rate: float | None) -> int:
    """Produce the lines in messages of `settings.replay_lines_per_message` lines (as `logad replay`),
    each raw-logs partition getting the lines of its blocks (crc32 of the first block id), so parsing
    spreads over workers while every block's lines stay in order. Paced at `rate` lines/s when given."""
    import re
    import zlib

    from pipeline.adapters.kafka import producer
    from pipeline.topic_contracts import raw_message_headers

    block = re.compile(rb"blk_-?\d+")
    partitions = settings.topic_partitions
    out = producer(settings)
    chunks: list[list[bytes]] = [[] for _ in range(partitions)]
    started = time.monotonic()

    def send(partition: int) -> None:
        headers = raw_message_headers("hdfs-bench", time.time())
        value = b"\n".join(chunks[partition])
        while True:
            try:
                out.produce(settings.raw_logs_topic, value, b"hdfs-bench", partition, headers=headers)
                break
            except BufferError:
                out.poll(0.05)
        out.poll(0)
        chunks[partition] = []

    for sent, line in enumerate(payloads, 1):
        found = block.search(line)
        partition = zlib.crc32(found.group()) % partitions if found else 0
        chunks[partition].append(line)
        if len(chunks[partition]) >= settings.replay_lines_per_message:
            send(partition)
        if rate and sent % 1000 == 0:
            # Paced: nothing waits more than 1,000 lines' time for its message to fill.
            for waiting in range(partitions):
                if chunks[waiting]:
                    send(waiting)
            if (ahead := sent / rate - (time.monotonic() - started)) > 0:
                time.sleep(ahead)
    for partition in range(partitions):
        if chunks[partition]:
            send(partition)
    if out.flush(60) != 0:
        raise RuntimeError("e2e: messages still unsent after 60 s")
    return len(payloads)


def start_workers(settings: Settings, count: int, log_dir: Path) -> list[tuple[subprocess.Popen, int]]:
    from pipeline.adapters.faust_config import worker_command
    from pipeline.demo import wait_ready
    from pipeline.infra.process import free_port

    workers = []
    for index in range(count):
        port = free_port()
        with (log_dir / f"worker-{index}.log").open("ab") as out:
            proc = subprocess.Popen(
                worker_command(sys.executable, "warn"),
                env=settings.replace(web_port=port).to_env(os.environ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        workers.append((proc, port))
    for index, (proc, port) in enumerate(workers):
        wait_ready(port, proc, 180, log_dir / f"worker-{index}.log")
    return workers


def stop_workers(workers: list[tuple[subprocess.Popen, int]]) -> None:
    for proc, _ in workers:
        proc.terminate()
    for proc, _ in workers:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_drained(
    settings: Settings, workers: list[tuple[subprocess.Popen, int]], lines: int, timeout_s: float
) -> float:
    """The time at which every line was parsed and every log-events batch scored (the throughput
    clock stops there); returns once every session is closed too, so all alerts are out."""
    from pipeline.adapters.worker_progress import wait_drained as drain
    from pipeline.progress import DrainCheck, Stage

    scored_at: list[float] = []

    def on_poll(check: DrainCheck) -> None:
        if not scored_at and check.stage in (Stage.CLOSING, Stage.DRAINED):
            scored_at.append(time.monotonic())

    def died() -> str | None:
        codes = [proc.returncode for proc, _ in workers if proc.poll() is not None]
        return f"e2e: a worker exited with code {codes[0]}" if codes else None

    drain(
        settings,
        [port for _, port in workers],
        lines,
        timeout_s=timeout_s,
        poll_s=0.25,
        problem=died,
        on_poll=on_poll,
    )
    return scored_at[0]


def produced_at(settings: Settings) -> dict[tuple[int, int], float]:
    """(partition, offset) of every raw-logs message of the run -> its `produced_at` header."""
    from pipeline.adapters.kafka import read_to_end

    stamps = {}
    for message in read_to_end(settings, settings.raw_logs_topic):
        header = dict(message.headers() or ()).get("produced_at")
        if header is not None:
            stamps[(message.partition(), message.offset())] = float(header)
    return stamps


def latencies(settings: Settings, arrivals: list[tuple[float, bytes]]) -> tuple[list[float], int]:
    """Per event-raised alert: arrival minus production of its raw record; and the count of the rest."""
    from pipeline.alerts import decode_alert

    stamps = produced_at(settings)
    samples, at_session_end = [], 0
    for arrived, value in arrivals:
        alert = decode_alert(value)
        stamp = stamps.get((alert.raw.partition, alert.raw.offset))
        if alert.raw.offset < 0 or stamp is None:
            at_session_end += 1
            continue
        samples.append(arrived - stamp)
    return samples, at_session_end


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def run_phase(
    base: Settings,
    workers_count: int,
    lines: int,
    rate: float | None,
    synthetic: bool,
    server_pids: dict[str, int],
    log_dir: Path,
) -> dict[str, object]:
    from pipeline.adapters.kafka import create_topics, pipeline_topics

    run = uuid.uuid4().hex[:8]
    settings = base.isolated_run("bench", run)
    create_topics(settings, pipeline_topics(settings))
    payloads = input_lines(settings, lines, synthetic)
    workers: list[tuple[subprocess.Popen, int]] = []
    alerts = AlertTimes(settings)
    alerts.start()
    sampler = None
    try:
        workers = start_workers(settings, workers_count, log_dir)
        pids = {**server_pids, "bench (producer)": os.getpid()}
        pids.update({f"worker {i}": proc.pid for i, (proc, _) in enumerate(workers)})
        sampler = ProcessSampler(pids)
        sampler.start()
        started = time.monotonic()
        sent = produce_by_session(settings, payloads, rate)
        produced_s = time.monotonic() - started
        drained = wait_drained(settings, workers, sent, timeout_s=max(600.0, sent / 1000))
        elapsed = drained - started
        processes = sampler.stop()
        alerts.wait_through(settings)
    finally:
        stop_workers(workers)
        arrivals = alerts.stop()
        if sampler is not None and sampler.is_alive():
            sampler.stop()
    samples, at_session_end = latencies(settings, arrivals)
    row: dict[str, object] = {
        "workers": workers_count,
        "lines": sent,
        "offered_lines_per_s": rate or round(sent / produced_s),
        "lines_per_s": round(sent / elapsed),
        "elapsed_s": round(elapsed, 2),
        "alerts": len(arrivals),
        "event_alerts": len(samples),
        "session_end_alerts": at_session_end,
        "p50_latency_s": round(percentile(samples, 0.50), 3),
        "p99_latency_s": round(percentile(samples, 0.99), 3),
        # CPU per line: what one line costs each side, whatever the machine's load did to the rate.
        "worker_cpu_us_per_line": _us_per_line(
            sum(usage["cpu_s"] for name, usage in processes.items() if name.startswith("worker")), sent
        ),
        "broker_cpu_us_per_line": _us_per_line(processes.get("kafka", {}).get("cpu_s", 0.0), sent),
        "processes": processes,
    }
    return row


def _us_per_line(cpu_s: float, lines: int) -> float:
    return round(cpu_s * 1e6 / lines, 1) if lines else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=200_000, help="lines per throughput phase")
    parser.add_argument("--latency-lines", type=int, default=100_000, help="lines per fixed-load phase")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[20_000, 5_000],
        help="offered lines/s of the latency phases",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--model", default="deeplog", choices=("deeplog", "lama"))
    parser.add_argument("--backend", default="triton", choices=("triton", "torchscript"))
    parser.add_argument("--synthetic", action="store_true", help="the synthetic generator, not HDFS_100k")
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    args = parser.parse_args(argv)

    from pipeline.adapters.triton import load_model
    from pipeline.commands.infra import kafka_up, local_kafka, local_triton
    from pipeline.demo import DemoOptions, ensure_model, load_input

    settings = Settings.from_env(os.environ).replace(
        detection_model=args.model,
        inference_backend=args.backend,
        consumer_offset_reset="earliest",
        session_timeout_s=5.0,
    )
    kafka_up(settings)
    triton = local_triton(settings)
    print(triton.start(), file=sys.stderr)
    demo = DemoOptions(model=args.model, use_synthetic=args.synthetic)
    version, _ = ensure_model(settings, demo, load_input(settings, demo))
    load_model(settings.triton_grpc_url, args.model)
    server_pids = {
        name: pid
        for name, pid in (("kafka", local_kafka(settings).process.pid()), ("triton", triton.process.pid()))
        if pid is not None
    }
    log_dir = Path(settings.state_dir) / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    for count in args.workers:
        print(f"e2e: throughput, {count} worker(s), {args.lines} lines", file=sys.stderr)
        rows.append(
            {"phase": "throughput"}
            | run_phase(settings, count, args.lines, None, args.synthetic, server_pids, log_dir)
        )
        for rate in args.rates:
            print(
                f"e2e: latency, {count} worker(s), {args.latency_lines} lines at {rate:.0f}/s",
                file=sys.stderr,
            )
            rows.append(
                {"phase": "latency"}
                | run_phase(settings, count, args.latency_lines, rate, args.synthetic, server_pids, log_dir)
            )

    columns = [
        "phase", "workers", "lines", "offered_lines_per_s", "lines_per_s", "elapsed_s",
        "alerts", "event_alerts", "p50_latency_s", "p99_latency_s",
        "worker_cpu_us_per_line", "broker_cpu_us_per_line",
    ]  # fmt: skip
    cost_rows = [
        {"phase": r["phase"], "workers": r["workers"], "process": name, **usage}
        for r in rows
        for name, usage in r["processes"].items()  # type: ignore[attr-defined]
    ]
    markdown = (
        f"model {args.model} v{version}, backend {args.backend}, "
        f"{settings.replay_lines_per_message} lines per message (LOGAD_REPLAY_LINES_PER_MESSAGE)\n\n"
        + markdown_table(rows, columns)
        + "\n\nCPU and peak memory per process:\n\n"
        + markdown_table(cost_rows)
    )
    throughput = [r for r in rows if r["phase"] == "throughput"]
    result = {
        "benchmark": "e2e",
        "machine": machine_info(),
        "model": args.model,
        "model_version": version,
        "backend": args.backend,
        "lines_per_message": settings.replay_lines_per_message,
        "rows": rows,
        # Headline fields: the best sustained rate, and latency at the first offered load, one worker.
        "lines_per_s": max(r["lines_per_s"] for r in rows if r["phase"] == "throughput"),
        "offered_lines_per_s": args.rates[0],
        "p50_latency_s": next(r["p50_latency_s"] for r in rows if r["phase"] == "latency"),
        "p99_latency_s": next(r["p99_latency_s"] for r in rows if r["phase"] == "latency"),
        # Of the first throughput phase (the first worker count given).
        "worker_cpu_us_per_line": throughput[0]["worker_cpu_us_per_line"],
        "broker_cpu_us_per_line": throughput[0]["broker_cpu_us_per_line"],
    }
    command = "python benchmarks/e2e.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_results("e2e", result, markdown, command.strip())
    print_result(markdown, result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
