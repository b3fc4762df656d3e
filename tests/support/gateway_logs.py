"""A log without session keys for the window path: a sensor gateway's lines, one minute normal, the
next holding disk failures, the next network failures (profile `gateway` in
`deploy/formats/example.toml`; anomalous lines labelled by line number)."""

from __future__ import annotations

import random

NORMAL = (
    "temperature {v}.5 C on sensor {n}",
    "heartbeat from sensor {n} ok",
    "uploaded batch {v} of readings",
)
ANOMALY = {"disk": "write failed on /dev/sd{c} after {v} retries", "net": "link down on eth{n} for {v} ms"}
KINDS = ("normal", "disk", "net")


def gateway_log(minutes: int, seed: int, hour: int = 10) -> tuple[list[str], dict[int, str], list[str]]:
    """(lines, {line number: class} of the anomalous lines, each minute's class)."""
    rng = random.Random(seed)
    lines: list[str] = []
    labels: dict[int, str] = {}
    kinds = []
    for minute in range(minutes):
        kind = KINDS[minute % 3]
        kinds.append(kind)
        for second in range(0, 60, 4):
            text = rng.choice(NORMAL)
            if kind != "normal" and second % 12 == 0:
                text = ANOMALY[kind]
            values = {"v": rng.randint(1, 99), "n": rng.randint(1, 9), "c": rng.choice("abc")}
            level = "INFO" if text in NORMAL else "ERROR"
            stamp = f"2026-03-01 {hour:02d}:{minute:02d}:{second:02d}"
            lines.append(f"{stamp} gw-{values['n']} {level} {text.format(**values)}")
            if text not in NORMAL:
                labels[len(lines)] = kind
    return lines, labels, kinds
