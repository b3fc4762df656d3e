"""Data for DeepLog's parameter value model: raw lines to events, sessions split, windows per key.

Parsing runs through `pipeline.parsing.Parser` with the frozen template set, so training sees the
ids, parameters and timestamps the streaming parser produces; vectors come from
`FeatureSchema.vector` with `with_elapsed`, as the online detector builds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.formats import LogFormat
from pipeline.parameter_features import FeatureSchema, ParameterEvent, with_elapsed
from pipeline.parsing import Parser
from pipeline.records import LogEvent
from pipeline.templates import TemplateMiner

PAYLOAD_BYTES = 512 << 10  # under the parser's 1 MiB payload limit


@dataclass(frozen=True)
class Windows:
    """Windows of one share: key row `(N,)`, history `(N, h, D)`, target `(N, D)`, owning session `(N,)`."""

    rows: np.ndarray
    history: np.ndarray
    target: np.ndarray
    owner: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])


def parse_events(lines: Iterable[str], fmt: LogFormat, miner: TemplateMiner, source: str) -> list[LogEvent]:
    """Every event of `lines` as the streaming parser makes them (frozen `miner`: match mode)."""
    parser = Parser(fmt, miner)
    events: list[LogEvent] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        chunk.append(line)
        size += len(line) + 1
        if size >= PAYLOAD_BYTES:
            events.extend(parser.parse("\n".join(chunk).encode("utf-8"), source).events)
            chunk, size = [], 0
    if chunk:
        events.extend(parser.parse("\n".join(chunk).encode("utf-8"), source).events)
    return events


def build_windows(
    events: Iterable[ParameterEvent], schema: FeatureSchema, rows: dict[int, int], window_size: int
) -> Windows:
    """Each key's vectors in log order, cut into (last h vectors -> next vector) windows.

    `rows` maps template ids to the model's key rows; other keys are skipped. Owners number the
    sessions in order of first appearance.
    """
    series: dict[int, list[tuple[float, ...]]] = {}
    owners_of: dict[int, list[int]] = {}
    sessions: dict[tuple[str, str], int] = {}
    for event, elapsed in with_elapsed(events):
        tid = int(event.template_id)
        if tid not in rows:
            continue
        vector = schema.vector(tid, event.params, elapsed)
        if vector is None:
            continue
        owner = sessions.setdefault((event.source, event.session_key), len(sessions))
        series.setdefault(tid, []).append(schema.padded(vector))
        owners_of.setdefault(tid, []).append(owner)
    width = schema.width
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for tid, vectors in series.items():
        values = np.asarray(vectors, dtype=np.float32)  # (n, D)
        n = len(values) - window_size
        if n <= 0:
            continue
        index = np.arange(n)[:, None] + np.arange(window_size)[None, :]  # (n, h)
        owner = np.asarray(owners_of[tid][window_size:], dtype=np.int64)
        parts.append((np.full(n, rows[tid], np.int64), values[index], values[window_size:], owner))
    if not parts:
        empty = np.zeros((0, window_size, width), np.float32)
        return Windows(np.zeros(0, np.int64), empty, np.zeros((0, width), np.float32), np.zeros(0, np.int64))
    return Windows(*(np.concatenate([p[i] for p in parts]) for i in range(4)))


def split_by_session(
    events: Sequence[ParameterEvent], fraction: float, seed: int
) -> tuple[list[ParameterEvent], list[ParameterEvent]]:
    """(fit, validation) events: a seeded share of the sessions validates; log order is kept."""
    keys = list(dict.fromkeys((e.source, e.session_key) for e in events))
    order = np.random.default_rng(seed).permutation(len(keys))
    held = {keys[i] for i in order[: round(len(keys) * fraction)]}
    fit = [e for e in events if (e.source, e.session_key) not in held]
    return fit, [e for e in events if (e.source, e.session_key) in held]
