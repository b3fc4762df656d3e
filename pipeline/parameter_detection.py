"""Online parameter value detection (DeepLog): each event's vector against its key's recent vectors.

DeepLog reads a log key's parameter value vectors as one time series across all sessions, so the
history here is per key, not per session: the last h vectors of each key this worker has seen, in
arrival order. `ParameterDetector.check` turns a batch of events into vectors (`FeatureSchema` of the
deployed version, elapsed time from the session's previous timestamp), pairs each with its key's
history, scores them all in one `ParameterScorer` call and returns the anomalous ones; `Detector`
(`pipeline.detection`) makes at most one `PARAMETER_VALUE` alert per session of them
(`parameter_alert`).

The history lives only in the worker's memory, bounded to `max_keys` keys (least recently seen
dropped first). After a restart, or when a new model version arrives, it is empty and rebuilds from
the stream: a key is scored again once h of its vectors have arrived. With several workers, each
holds the series of the events its partitions carry.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.alerts import Alert, AlertKind, RawCoordinates, alert_id
from pipeline.errors import InferenceError
from pipeline.parameter_features import Vector, elapsed_s
from pipeline.parameter_scoring import ParameterBatch, ParameterScorer
from pipeline.sessions import NextEventQuery, SessionEvent
from pipeline.windows import PAD_ID

log = logging.getLogger(__name__)


class KeyHistory:
    """The last `window_size` vectors of each key, for at most `max_keys` keys (LRU)."""

    def __init__(self, window_size: int, max_keys: int = 10_000) -> None:
        self.window_size = window_size
        self.max_keys = max_keys
        self._series: OrderedDict[int, deque[Vector]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._series)

    def window(self, key: int) -> tuple[Vector, ...] | None:
        """The key's last h vectors, oldest first; None until h have arrived."""
        series = self._series.get(key)
        if series is None or len(series) < self.window_size:
            return None
        return tuple(series)

    def push(self, key: int, vector: Vector) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = deque(maxlen=self.window_size)
        self._series.move_to_end(key)
        series.append(vector)
        while len(self._series) > self.max_keys:
            self._series.popitem(last=False)


@dataclass(frozen=True)
class ParameterAnomaly:
    """An event whose parameter value vector is abnormal for its key."""

    index: int  # position of the event in the checked batch
    template_id: int
    names: tuple[str, ...]  # feature names (`elapsed_s`, `param_<i>`)
    observed: Vector
    expected_low: Vector
    expected_high: Vector
    error: float
    threshold: float
    model: str
    version: int

    @property
    def score(self) -> float:
        """0 at the threshold, towards 1 as the error grows past it: 1 - threshold / error."""
        return 1.0 if self.threshold <= 0 else max(0.0, min(1.0, 1.0 - self.threshold / self.error))

    def explanation(self) -> str:
        """`name=value (expected low..high)` per feature, the most deviating first."""

        def outside(i: int) -> float:
            width = max(self.expected_high[i] - self.expected_low[i], 1e-12)
            below, above = self.expected_low[i] - self.observed[i], self.observed[i] - self.expected_high[i]
            return max(below, above) / width

        order = sorted(range(len(self.names)), key=lambda i: -outside(i))
        return ", ".join(
            f"{self.names[i]}={self.observed[i]:.6g} (expected {self.expected_low[i]:.6g}.."
            f"{self.expected_high[i]:.6g})"
            for i in order
        )


class ParameterDetector:
    """Events -> vectors -> one scorer call -> the anomalous events (see the module docstring)."""

    def __init__(self, scorer: ParameterScorer, max_keys: int = 10_000) -> None:
        self.scorer = scorer
        self.max_keys = max_keys
        self.history = KeyHistory(1, max_keys)
        self._version: int | None = None
        self.unfit = 0  # events of a modelled key whose parameters did not fit it (count, non-number)

    async def check(
        self, events: Sequence[SessionEvent], previous_ts: Sequence[float | None]
    ) -> list[ParameterAnomaly]:
        """The anomalous events of a batch, in order; `previous_ts[i]` is the last timestamp of event
        i's session before it (`NextEventQuery.previous_ts`)."""
        info = await self.scorer.current()
        if info.version != self._version:
            self._reset(info.version, info.window_size)
        schema = info.schema
        picked: list[int] = []
        keys: list[int] = []
        windows: list[tuple[Vector, ...]] = []
        observed: list[Vector] = []
        for i, (event, previous) in enumerate(zip(events, previous_ts, strict=True)):
            tid = int(event.template_id)
            if tid not in schema.keys:
                continue
            params = getattr(event, "params", ())
            vector = schema.vector(tid, params, elapsed_s(previous, event.timestamp))
            if vector is None:
                self.unfit += 1
                continue
            padded = schema.padded(vector)
            window = self.history.window(tid)
            self.history.push(tid, padded)
            if window is not None:
                picked.append(i)
                keys.append(tid)
                windows.append(window)
                observed.append(padded)
        if not picked:
            return []
        batch = ParameterBatch(
            np.asarray(keys, np.int64).reshape(-1, 1),
            np.asarray(windows, np.float32),
            np.asarray(observed, np.float32),
            info.version,
        )
        scores = await self.scorer.score(batch)
        if scores.version != info.version:
            log.info("parameter model: version %d replaced %d mid-batch", scores.version, info.version)
            self._version = None
            return []
        if len(scores) != len(batch):
            raise InferenceError(
                f"parameter detection: scorer {scores.model} v{scores.version} returned {len(scores)} rows "
                f"for a batch of {len(batch)}; the backend must answer every row"
            )
        found = []
        for row in np.flatnonzero(scores.anomalous[:, 0]):
            tid = keys[row]
            used = len(schema.keys[tid].sources)
            found.append(
                ParameterAnomaly(
                    index=picked[row],
                    template_id=tid,
                    names=schema.keys[tid].names,
                    observed=observed[row][:used],
                    expected_low=tuple(float(v) for v in scores.expected_low[row, :used]),
                    expected_high=tuple(float(v) for v in scores.expected_high[row, :used]),
                    error=float(scores.error[row, 0]),
                    threshold=float(scores.threshold[row, 0]),
                    model=scores.model,
                    version=int(scores.version),
                )
            )
        return found

    def _reset(self, version: int, window_size: int) -> None:
        if self._version is not None:
            log.info("parameter model: now version %d; key histories rebuild from the stream", version)
        self._version = version
        self.history = KeyHistory(window_size, self.max_keys)


def parameter_alert(
    anomaly: ParameterAnomaly,
    query: NextEventQuery,
    event: SessionEvent,
    first_ts: float | None,
    text: Callable[[int], str],
    raw: RawCoordinates,
) -> Alert:
    """The `PARAMETER_VALUE` alert of an anomalous event: its template, values and expected ranges.

    `label` holds the explanation (`elapsed_s=57 (expected 0..3.1), ...`); `score` is
    `ParameterAnomaly.score`.
    """
    template = getattr(event, "template", None) or text(anomaly.template_id)
    return Alert(
        alert_id=alert_id(query.source, query.session_key, AlertKind.PARAMETER_VALUE),
        source=query.source,
        session_key=query.session_key,
        kind=AlertKind.PARAMETER_VALUE,
        model=anomaly.model,
        model_version=anomaly.version,
        score=anomaly.score if math.isfinite(anomaly.score) else 1.0,
        event_template_id=anomaly.template_id,
        event_template=template,
        expected=(),
        window=tuple(text(tid) for tid in query.window if tid != PAD_ID),
        first_timestamp=first_ts if first_ts is not None else event.timestamp,
        last_timestamp=event.timestamp,
        position=query.position,
        raw=raw,
        label=anomaly.explanation(),
    )
