"""Per-stage CPU cost of the worker, old path against new, on the same lines in one run.

    python benchmarks/stages.py [--limit N] [--lines-per-message 500] [--repeat 5] [--json]

Parse stage (what agents/parse.py does per raw message, minus Kafka):
- old: `Parser.parse`, then the events grouped by `log-events` partition (`group_by_partition`) and
  each group encoded as `EventBatch(...).encode()` (`event-batch/1`);
- new: `ColumnarParser.parse`, then `EventColumns.by_partition` and `.encode()` (`event-batch/2`).
Detect stage (what agents/detect.py does per log-events message, minus Kafka and the model):
- old: `read_event_batch` of the `event-batch/1` message, `Detector.process` on its events, the
  partition's state delta (`checkpoint` + encode);
- new: `decode_batch` of the `event-batch/2` message, `ColumnarDetector.process_columns`, the delta;
once with one message per partition per raw message, once with the events of `--gather` raw messages
per message (how the parse agent sends a backlog: `LOGAD_PARSE_BATCH_MESSAGES`).
Both score through the same cached scorer (rows keyed by bytes in an LRU, as the Triton and
TorchScript scorers do; a miss asks a fake model that knows each event's six most common
followers), so the model's own cost is left out; the checked pass must give identical alerts.
Both get every line of HDFS_100k, cut into messages of `--lines-per-message` lines (as
`logad replay` and benchmarks/e2e.py send them), with parsers frozen on the same templates (learned
from every line first, as a deployed version is). Each side runs once to warm its caches, then the
sides alternate `--repeat` times (old, new, old, new, ...) on one pinned core; the table gives the
fastest and the median run of each in CPU µs per line (process time: the issue counts worker CPU
per line) and their ratio. The `cold` row is the first pass of fresh parsers (caches empty), which
is also the checked pass: every message both sides send is decoded and must hold identical events
per partition; `bytes_per_line` is the size of what each side sends. Results go to
benchmarks/results/stages.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: `common` sits next to it

import asyncio
from collections import Counter, defaultdict

import numpy as np
from common import RESULTS_DIR, machine_info, markdown_table, pin_one_core, print_result, write_results

from pipeline.columnar_detect import ColumnarDetector
from pipeline.columnar_parse import ColumnarParser
from pipeline.datasets import data_file
from pipeline.datasets.loghub import HDFS_RAW, read_lines
from pipeline.detection import DetectionResult, Detector
from pipeline.event_columns import EventColumns, decode_batch, read_event_batch
from pipeline.formats import HDFS
from pipeline.parsing import Parser
from pipeline.partitioning import group_by_partition
from pipeline.records import EventBatch, SourceOffset
from pipeline.scoring import FakeNextEventScorer, LruCache, NextEventBatch, NextEventScores
from pipeline.session_partitions import PartitionedSessionStore
from pipeline.session_state_log import PartitionSessions
from pipeline.settings import Settings
from pipeline.templates import TemplateMiner

SOURCE = "hdfs"
NOW_S = 1_700_000_000.0


def frozen_state(lines: list[str]) -> bytes:
    miner = TemplateMiner()
    for line in lines:
        miner.learn(HDFS.template_text(HDFS.parse_line(line)))
    miner.freeze()
    return miner.save_state()


def raw_of(offset: int) -> SourceOffset:
    return SourceOffset("raw-logs", 0, offset, timestamp=NOW_S + offset * 0.01)


def old_messages(parser: Parser, payloads: list[bytes], partitions: int) -> list[dict[int, bytes]]:
    """agents/parse.py's work per message: parse, group by partition, encode event-batch/1."""
    sent = []
    for offset, payload in enumerate(payloads):
        result = parser.parse(payload, SOURCE, raw_of(offset), NOW_S)
        keyed = [(e.session_key, e) for e in result.events]
        groups = group_by_partition(keyed, partitions)
        sent.append({p: EventBatch(tuple(events)).encode() for p, events in groups.items()})
    return sent


def new_messages(parser: ColumnarParser, payloads: list[bytes], partitions: int) -> list[dict[int, bytes]]:
    """The same with the columnar parser and event-batch/2."""
    sent = []
    for offset, payload in enumerate(payloads):
        result = parser.parse(payload, SOURCE, raw_of(offset), NOW_S)
        sent.append({p: part.encode() for p, part in result.batch.by_partition(partitions).items()})
    return sent


def gathered(
    sent: list[dict[int, bytes]], group: int, columnar: bool, partitions: int
) -> list[dict[int, bytes]]:
    """The same events as the parse agent sends them under a backlog: the events of `group` raw
    messages at a time as one message per partition (`ParseStage.flush`)."""
    out = []
    for start in range(0, len(sent), group):
        if columnar:
            parts = [
                EventColumns.decode(d) for message in sent[start : start + group] for d in message.values()
            ]
            joined = EventColumns.concat(parts)
            out.append({p: part.encode() for p, part in joined.by_partition(partitions).items()})
        else:
            events = [
                e
                for message in sent[start : start + group]
                for d in message.values()
                for e in EventBatch.decode(d).events
            ]
            groups = group_by_partition([(e.session_key, e) for e in events], partitions)
            out.append({p: EventBatch(tuple(evs)).encode() for p, evs in groups.items()})
    return out


def check_identical(old: list[dict[int, bytes]], new: list[dict[int, bytes]]) -> int:
    """Events per message and partition, decoded from what each side sends; returns the event count."""
    events = 0
    for index, (old_sent, new_sent) in enumerate(zip(old, new, strict=True)):
        if list(old_sent) != list(new_sent):
            raise SystemExit(f"message {index}: partitions {list(old_sent)} (old) vs {list(new_sent)} (new)")
        for partition, data in old_sent.items():
            expected = list(EventBatch.decode(data).events)
            if EventColumns.decode(new_sent[partition]).to_events() != expected:
                raise SystemExit(f"message {index}, partition {partition}: events differ")
            events += len(expected)
    return events


class CachedScorer:
    """Rows cached by their bytes, misses answered by a fake model: the scorers' cache path without
    the model (`TorchScriptNextEventScorer`, `TritonNextEventScorer` key and cache rows the same)."""

    def __init__(self, model: FakeNextEventScorer) -> None:
        self.model = model
        self.cache: LruCache[bytes, tuple[np.ndarray, np.ndarray, bool, bool]] = LruCache(100_000)

    async def score(self, batch: NextEventBatch) -> NextEventScores:
        keys = [row.tobytes() for row in np.concatenate([batch.window, batch.next_event], axis=1)]
        rows = [self.cache.get(key) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            got = await self.model.score(NextEventBatch(batch.window[missing], batch.next_event[missing]))
            for j, i in enumerate(missing):
                row = (
                    got.topk_ids[j],
                    got.topk_probs[j],
                    bool(got.next_known[j, 0]),
                    bool(got.anomalous[j, 0]),
                )
                self.cache.put(keys[i], row)
                rows[i] = row
        full = [r for r in rows if r is not None]
        return NextEventScores(
            np.stack([r[0] for r in full]),
            np.stack([r[1] for r in full]),
            np.asarray([[r[2]] for r in full], bool),
            np.asarray([[r[3]] for r in full], bool),
            self.model.model,
            self.model.version,
        )


def learned_model(sent: list[dict[int, bytes]], k: int = 6) -> FakeNextEventScorer:
    """The `k` most common followers of each event in the whole stream: alerts as rare as a trained
    model's on HDFS (about one per thousand lines), so the benchmark measures the normal flow."""
    followers: defaultdict[int, Counter[int]] = defaultdict(Counter)
    last: dict[str, int] = {}
    for message in sent:
        for data in message.values():
            for event in EventColumns.decode(data).to_events():
                followers[last.get(event.session_key, 0)][event.template_id] += 1
                last[event.session_key] = event.template_id
    return FakeNextEventScorer({a: [b for b, _ in c.most_common(k)] for a, c in followers.items()}, k=k)


def detect_messages(
    sent: list[dict[int, bytes]], model: FakeNextEventScorer, columnar: bool, window_size: int
) -> list[DetectionResult]:
    """agents/detect.py's work per log-events message: decode, detect, the state delta encoded."""
    store = PartitionedSessionStore(window_size)
    scorer = CachedScorer(model)
    detector: Detector = (ColumnarDetector if columnar else Detector)(scorer, lambda tid: f"t{tid}", store)
    results: list[DetectionResult] = []

    async def run() -> None:
        for offset, message in enumerate(sent):
            for partition, data in message.items():
                if not store.holds(partition):
                    store.adopt(PartitionSessions(partition))
                store.use(partition)
                now = NOW_S + offset
                if columnar:
                    assert isinstance(detector, ColumnarDetector)
                    result = await detector.process_columns(decode_batch(data), now)
                else:
                    result = await detector.process(read_event_batch(data).events, now)
                results.append(result)
                delta = store.checkpoint(offset)
                if delta is not None:
                    delta.encode()

    asyncio.run(run())
    return results


def alternate(sides: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """CPU times of each side (this process's: other jobs on a shared machine count less), run in
    turn `repeat` times after one warm-up run each."""
    for job in sides.values():
        job()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeat):
        for name, job in sides.items():
            start = time.process_time()
            job()
            times[name].append(time.process_time() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="shared data folder (env LOGAD_DATA_DIR)")
    parser.add_argument("--limit", type=int, default=0, help="first N lines only (0: all)")
    parser.add_argument("--lines-per-message", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=0, help="log-events partitions (0: the setting)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side, alternating")
    parser.add_argument(
        "--gather", type=int, default=32, help="raw messages per log-events batch in the batched detect rows"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    settings = Settings.from_env(os.environ, data_dir=Path(args.data_dir) if args.data_dir else None)
    partitions = args.partitions or settings.topic_partitions

    cpu = pin_one_core()
    lines = list(read_lines(data_file(settings.data_dir, HDFS_RAW)))
    if args.limit:
        lines = lines[: args.limit]
    size = args.lines_per_message
    payloads = ["\n".join(lines[i : i + size]).encode() for i in range(0, len(lines), size)]
    state = frozen_state(lines)
    old_parser = Parser(HDFS, TemplateMiner.load_state(state))
    new_parser = ColumnarParser(HDFS, TemplateMiner.load_state(state))

    # The first pass of fresh parsers (cold caches), kept for the identity check.
    start = time.process_time()
    old_sent = old_messages(old_parser, payloads, partitions)
    cold_old = time.process_time() - start
    start = time.process_time()
    new_sent = new_messages(new_parser, payloads, partitions)
    cold_new = time.process_time() - start
    events = check_identical(old_sent, new_sent)
    old_bytes = sum(len(d) for sent in old_sent for d in sent.values())
    new_bytes = sum(len(d) for sent in new_sent for d in sent.values())

    model = learned_model(new_sent)
    window_size = settings.window_size
    start = time.process_time()
    old_results = detect_messages(old_sent, model, False, window_size)
    cold_old_detect = time.process_time() - start
    start = time.process_time()
    new_results = detect_messages(new_sent, model, True, window_size)
    cold_new_detect = time.process_time() - start
    if old_results != new_results:
        raise SystemExit("detect: the columnar detector's results differ from Detector.process")
    alerts = sum(len(r.alerts) for r in new_results)
    # The events in the parse agent's batches under a backlog (LOGAD_PARSE_BATCH_MESSAGES raw messages).
    old_batched = gathered(old_sent, args.gather, False, partitions)
    new_batched = gathered(new_sent, args.gather, True, partitions)
    batched_old = detect_messages(old_batched, model, False, window_size)
    if batched_old != detect_messages(new_batched, model, True, window_size):
        raise SystemExit("detect (batched): the columnar detector's results differ from Detector.process")

    # Parse alone (no grouping, no encoding), then the whole stage, old and new alternating.
    times = alternate(
        {
            "old_parse": lambda: [
                old_parser.parse(p, SOURCE, raw_of(i), NOW_S) for i, p in enumerate(payloads)
            ],
            "new_parse": lambda: [
                new_parser.parse(p, SOURCE, raw_of(i), NOW_S) for i, p in enumerate(payloads)
            ],
            "old_stage": lambda: old_messages(old_parser, payloads, partitions),
            "new_stage": lambda: new_messages(new_parser, payloads, partitions),
            "old_detect": lambda: detect_messages(old_sent, model, False, window_size),
            "new_detect": lambda: detect_messages(new_sent, model, True, window_size),
            "old_detect_batched": lambda: detect_messages(old_batched, model, False, window_size),
            "new_detect_batched": lambda: detect_messages(new_batched, model, True, window_size),
        },
        args.repeat,
    )
    times["old_cold"], times["new_cold"] = [cold_old], [cold_new]
    times["old_cold_detect"], times["new_cold_detect"] = [cold_old_detect], [cold_new_detect]
    per_line = {name: [t / len(lines) * 1e6 for t in runs] for name, runs in times.items()}

    def row(stage: str, what: str, old: str, new: str, old_b: float | None, new_b: float | None) -> dict:
        best_old, best_new = min(per_line[old]), min(per_line[new])
        return {
            "stage": stage,
            "what": what,
            "old_us_per_line": best_old,
            "new_us_per_line": best_new,
            "old_median": statistics.median(per_line[old]),
            "new_median": statistics.median(per_line[new]),
            "speedup": best_old / best_new,
            "old_bytes_per_line": old_b if old_b is not None else "",
            "new_bytes_per_line": new_b if new_b is not None else "",
        }

    rows = [
        row("parse", "parse only", "old_parse", "new_parse", None, None),
        row(
            "parse",
            "parse + group + encode",
            "old_stage",
            "new_stage",
            old_bytes / len(lines),
            new_bytes / len(lines),
        ),
        row("parse", "cold: first pass, stage", "old_cold", "new_cold", None, None),
    ]
    detect_rows = [
        row("detect", "decode + sessions + score + delta", "old_detect", "new_detect", None, None),
        row(
            "detect",
            f"the same, {args.gather} raw messages a batch",
            "old_detect_batched",
            "new_detect_batched",
            None,
            None,
        ),
        row("detect", "cold: first pass (checked)", "old_cold_detect", "new_cold_detect", None, None),
    ]
    fast_share = new_parser.fast_messages / max(1, new_parser.fast_messages + new_parser.exact_messages)
    markdown = "\n\n".join(
        [
            "## Parse stage on HDFS_100k (CPU µs per line: fastest run; medians beside)\n\n"
            + markdown_table(rows),
            "## Detect stage on the same events (CPU µs per line; scoring through a row cache, no model)\n\n"
            + markdown_table(detect_rows),
            f"- {len(lines):,} lines, {len(payloads)} messages of {size} lines, {events:,} events, "
            f"{partitions} log-events partitions; identical events: yes, identical alerts ({alerts}): yes "
            f"(checked pass); "
            f"columnar fast path: {fast_share:.0%} of messages; pinned to cpu {cpu}",
        ]
    )
    result = {
        "benchmark": "stages",
        "machine": machine_info(),
        "lines": len(lines),
        "messages": len(payloads),
        "lines_per_message": size,
        "partitions": partitions,
        "events": events,
        "identical_events": True,
        "fast_path_share": fast_share,
        "parse": rows,
        "detect": detect_rows,
        "alerts": alerts,
        "identical_alerts": True,
        "runs_us_per_line": per_line,
        "cpu": cpu,
    }
    options = f"--lines-per-message {size} --repeat {args.repeat} --gather {args.gather}"
    command = f"python benchmarks/stages.py {options}"
    write_results("stages", result, markdown, command, args.results_dir)
    print_result(markdown, result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
