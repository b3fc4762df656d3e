"""`logad generate-synthetic`: write a seeded HDFS_v1-like log with labelled anomalies.

    logad generate-synthetic --lines 1000000 --anomaly-rate 0.03 --seed 7 \
        --out var/synthetic.log.gz --labels var/synthetic_abnormal.csv

The labels file has the shape of the shared `abnormal_blocks.csv` (`<block id>,<anomaly kind>`), so
every tool that reads HDFS labels reads it too. `--out -` writes the lines to stdout.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections import Counter
from pathlib import Path
from typing import IO, Any

from pipeline.settings import Settings


def register(subparsers: Any) -> None:
    from pipeline.datasets.hdfs_lifecycle import ALL_ANOMALY_KINDS, ANOMALY_KINDS

    parser = subparsers.add_parser(
        "generate-synthetic", help="write a synthetic HDFS-like log and its anomaly labels"
    )
    parser.add_argument("--lines", type=int, default=100_000, help="at most this many lines (whole blocks)")
    parser.add_argument("--anomaly-rate", type=float, default=0.03, help="share of anomalous blocks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output log (.gz compresses; - for stdout)")
    parser.add_argument("--labels", type=Path, help="anomalous blocks as '<block id>,<kind>' lines")
    parser.add_argument("--concurrent-blocks", type=int, default=64, help="blocks whose lines interleave")
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=list(ANOMALY_KINDS),
        choices=ALL_ANOMALY_KINDS,
        help="anomaly kinds (slow_write and abnormal_size: parameter anomalies, normal event sequence)",
    )
    parser.add_argument(
        "--fresh-block-ids", action="store_true", help="random block ids (replays never reuse a session)"
    )
    parser.add_argument("--block-id-salt", type=int, help="reproduce a --fresh-block-ids run")
    parser.set_defaults(handler=_generate)
    shop = subparsers.add_parser(
        "generate-shop",
        help="write a made-up order-service log (profile `shop` in deploy/formats/example.toml)",
    )
    shop.add_argument("--orders", type=int, default=400, help="orders (sessions) to write")
    shop.add_argument(
        "--declined-share", type=float, default=0.0, help="share of declined (anomalous) orders"
    )
    shop.add_argument("--first-order", type=int, default=0, help="number of the first order id")
    shop.add_argument("--seed", type=int, default=0)
    shop.add_argument("--out", required=True, help="output log (.gz compresses; - for stdout)")
    shop.add_argument("--labels", type=Path, help="declined order ids as '<order id>,declined' lines")
    shop.set_defaults(handler=_generate_shop)


def _open(out: str) -> IO[str]:
    if out == "-":
        return sys.stdout
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=6)
    return path.open("w", encoding="utf-8")


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.datasets.synthetic import SyntheticConfig, SyntheticHdfs, write_labels

    config = SyntheticConfig(
        lines=args.lines,
        anomaly_rate=args.anomaly_rate,
        seed=args.seed,
        concurrent_blocks=args.concurrent_blocks,
        anomaly_kinds=tuple(args.kinds),
        fresh_block_ids=args.fresh_block_ids,
        block_id_salt=args.block_id_salt,
    )
    run = SyntheticHdfs(config)
    handle = _open(args.out)
    try:
        for line in run:
            handle.write(line)
            handle.write("\n")
    finally:
        if handle is not sys.stdout:
            handle.close()
    if args.labels:
        args.labels.parent.mkdir(parents=True, exist_ok=True)
        write_labels(args.labels, run.labels)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(Counter(run.labels.values()).items()))
    print(
        f"wrote {run.lines_written} lines, {run.blocks} blocks, "
        f"{len(run.labels)} anomalous ({kinds or 'none'})"
        f"; block-id salt {run.block_id_salt}" + (f"; labels in {args.labels}" if args.labels else ""),
        file=sys.stderr if args.out == "-" else sys.stdout,
    )
    return 0


def _generate_shop(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.datasets.shop import shop_logs

    logs = shop_logs(args.orders, args.declined_share, args.seed, args.first_order)
    handle = _open(args.out)
    try:
        handle.write(logs.text())
    finally:
        if handle is not sys.stdout:
            handle.close()
    if args.labels:
        args.labels.parent.mkdir(parents=True, exist_ok=True)
        args.labels.write_text("".join(f"{order},declined\n" for order in sorted(logs.anomalous)))
    print(
        f"wrote {len(logs.records)} records of {args.orders} orders, {len(logs.anomalous)} declined"
        + (f"; labels in {args.labels}" if args.labels else ""),
        file=sys.stderr if args.out == "-" else sys.stdout,
    )
    return 0
