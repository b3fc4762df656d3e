"""Operator feedback on alerts ("this was normal") and the allowlist it builds.

DeepLog (Sec. 3.3; the term project in `../shared/papers/`) answers false alarms with feedback: an
alert marked normal stops the same behaviour from alerting again. Here a `FeedbackRecord` carries
what the alert carried (model, version, the template set the ids mean something in, the window and
next event as template ids), and an `Allowlist` accepts exactly what was marked:

- next-event models: the exact (model, template set, window, next event) pairs; `PairAllowlist`
  checks a whole (N, l) window matrix at once, since detection works on numpy batches;
- parameter values (`parameter_value` alerts): the marked alert's score widens that key's threshold,
  so values no further out than the marked one are accepted;
- window classes: the marked window's template counts are accepted as normal.

Records travel as versioned JSON (orjson), and the allowlist serialises to JSON bytes, never pickle:
both come from the network or from disk a peer may write.
"""

from __future__ import annotations

import enum
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson

from pipeline.alerts import Alert, AlertKind
from pipeline.errors import DataError
from pipeline.templates import template_id
from pipeline.windows import PAD_ID, SESSION_END_ID, SESSION_END_TEXT

# The `<name>/<version>` tag every record on a pipeline topic carries (pipeline.topic_contracts).
FEEDBACK_SCHEMA = "log-feedback/1"
ALLOWLIST_FORMAT = "logad-allowlist/1"
# The record fields and their JSON types: a record any client writes is checked against exactly this.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema": str,
    "alert_id": str,
    "verdict": str,
    "kind": str,
    "model": str,
    "model_version": int,
    "template_set": str,
    "window": list,
    "next_event": int,
    "score": (int, float),
    "source": str,
    "session_key": str,
    "note": str,
    "created_at": (int, float),
}
MAX_NOTE_CHARS = 2000
MAX_WINDOW = 4096


class Verdict(enum.StrEnum):
    """What the operator says about an alert (only false positives are taught for now)."""

    NORMAL = "normal"


@dataclass(frozen=True)
class FeedbackRecord:
    """One operator verdict on one alert: the value on `log-feedback`, keyed by `alert_id`.

    `window` holds template ids: for next-event and parameter alerts the model window before the
    event, left-padded with 0 to the model's window size; for window classes the window's template
    ids in order. `template_set` is `template_set_digest` of the ids the model's templates have.
    """

    alert_id: str
    kind: AlertKind
    model: str
    model_version: int
    template_set: str
    window: tuple[int, ...]
    next_event: int
    score: float = 0.0
    source: str = ""
    session_key: str = ""
    note: str = ""
    created_at: float = 0.0
    verdict: Verdict = Verdict.NORMAL
    schema: str = FEEDBACK_SCHEMA

    def kafka_key(self) -> bytes:
        """Keyed by alert id: the topic is compacted, so a later verdict on an alert replaces the first."""
        return self.alert_id.encode("utf-8")


def template_set_digest(template_ids: Iterable[int]) -> str:
    """A short name for a template set: the sha256 of its sorted ids (ids are hashes of template text,
    so equal digests mean the same templates and window ids mean the same events)."""
    text = ",".join(str(i) for i in sorted({int(t) for t in template_ids}))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def encode_feedback(record: FeedbackRecord) -> bytes:
    """JSON bytes of a record (the value on `log-feedback`)."""
    obj = asdict(record)
    obj["window"] = list(record.window)
    return orjson.dumps(obj)


def decode_feedback(data: bytes | str) -> FeedbackRecord:
    """Parse and validate a record; anything else raises DataError saying which field is wrong."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        preview = data[:80] if isinstance(data, bytes | str) else type(data).__name__
        raise DataError(f"decode feedback: expected a JSON object, got {preview!r} ({exc})") from exc
    return feedback_from_dict(obj)


def feedback_from_dict(obj: Any) -> FeedbackRecord:
    """Validate a decoded JSON object as a `FeedbackRecord` (every field present, typed, in range)."""
    if not isinstance(obj, dict):
        raise DataError(f"feedback record: expected a JSON object, got {type(obj).__name__}")
    if obj.get("schema") != FEEDBACK_SCHEMA:
        raise DataError(
            f"feedback record: expected schema {FEEDBACK_SCHEMA!r}, got {obj.get('schema')!r}; "
            "write records with `logad feedback` or the schema in pipeline/feedback.py"
        )
    missing = sorted(set(_FIELDS) - set(obj))
    extra = sorted(set(obj) - set(_FIELDS))
    if missing or extra:
        raise DataError(f"feedback record: missing fields {missing}, unknown fields {extra}")
    for name, wanted in _FIELDS.items():
        value = obj[name]
        # bool is an int to Python, never a valid id, count or score here.
        if isinstance(value, bool) or not isinstance(value, wanted):
            names = wanted.__name__ if isinstance(wanted, type) else "/".join(t.__name__ for t in wanted)
            raise DataError(f"feedback record: field {name!r} must be {names}, got {value!r:.80}")
    window = obj["window"]
    if len(window) > MAX_WINDOW or not all(isinstance(t, int) and not isinstance(t, bool) for t in window):
        raise DataError(f"feedback record: 'window' must be at most {MAX_WINDOW} integer template ids")
    if any(t < 0 or t > SESSION_END_ID for t in [*window, obj["next_event"]]):
        raise DataError("feedback record: template ids must lie in 0..2**52 (0 is padding)")
    try:
        kind, verdict = AlertKind(obj["kind"]), Verdict(obj["verdict"])
    except ValueError as exc:
        raise DataError(
            f"feedback record: {exc}; kind is one of {[k.value for k in AlertKind]}, "
            f"verdict one of {[v.value for v in Verdict]}"
        ) from exc
    if not obj["alert_id"] or not obj["model"]:
        raise DataError("feedback record: 'alert_id' and 'model' must not be empty")
    if len(obj["note"]) > MAX_NOTE_CHARS:
        raise DataError(f"feedback record: 'note' is longer than {MAX_NOTE_CHARS} characters")
    if kind is not AlertKind.WINDOW_CLASS and not window:
        raise DataError(f"feedback record: a {kind.value} record needs the model window (padded ids)")
    return FeedbackRecord(
        alert_id=obj["alert_id"],
        kind=kind,
        model=obj["model"],
        model_version=obj["model_version"],
        template_set=obj["template_set"],
        window=tuple(window),
        next_event=obj["next_event"],
        score=float(obj["score"]),
        source=obj["source"],
        session_key=obj["session_key"],
        note=obj["note"],
        created_at=float(obj["created_at"]),
        verdict=verdict,
    )


def text_id(text: str) -> int:
    """The template id an alert's template text stands for (the inverse of how alerts show ids)."""
    if text == SESSION_END_TEXT:
        return SESSION_END_ID
    if text.startswith("<template ") and text.endswith(">") and text[10:-1].isdigit():
        return int(text[10:-1])
    return template_id(text)


def feedback_from_alert(
    alert: Alert, window_size: int, template_set: str, note: str = "", created_at: float = 0.0
) -> FeedbackRecord:
    """The record that marks `alert` normal. Alerts show their window as template text without the
    padding, so the ids come back through `text_id` and the padding through `window_size`."""
    ids = tuple(text_id(t) for t in alert.window)
    if alert.kind is not AlertKind.WINDOW_CLASS:
        if len(ids) > window_size:
            raise DataError(
                f"feedback: alert {alert.alert_id} has a window of {len(ids)} events, more than the "
                f"model's {window_size}; is it from another model?"
            )
        ids = (PAD_ID,) * (window_size - len(ids)) + ids
    return FeedbackRecord(
        alert_id=alert.alert_id,
        kind=alert.kind,
        model=alert.model,
        model_version=alert.model_version,
        template_set=template_set,
        window=ids,
        next_event=alert.event_template_id,
        score=alert.score,
        source=alert.source,
        session_key=alert.session_key,
        note=note,
        created_at=created_at,
    )


_MIX = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime


def row_hashes(rows: np.ndarray) -> np.ndarray:
    """A uint64 hash per row of an (N, C) int64 matrix (FNV-1a over the columns, vectorised)."""
    h = np.full(rows.shape[0], 0xCBF29CE484222325, dtype=np.uint64)
    as_unsigned = rows.astype(np.int64, copy=False).view(np.uint64)
    with np.errstate(over="ignore"):
        for column in range(rows.shape[1]):
            h = (h ^ as_unsigned[:, column]) * _MIX
    return h


@dataclass
class PairAllowlist:
    """The accepted (window, next event) pairs of one model and template set."""

    window_size: int
    _pairs: set[tuple[int, ...]] = field(default_factory=set)
    _hashes: np.ndarray | None = None  # sorted row hashes, rebuilt lazily after a change

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, window: Sequence[int], next_event: int) -> bool:
        """Accept one pair; False when it was accepted already."""
        row = self._row(window, next_event)
        if row in self._pairs:
            return False
        self._pairs.add(row)
        self._hashes = None
        return True

    def discard(self, window: Sequence[int], next_event: int) -> bool:
        """Stop accepting one pair; False when it was not accepted."""
        row = self._row(window, next_event)
        if row not in self._pairs:
            return False
        self._pairs.remove(row)
        self._hashes = None
        return True

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every accepted pair: windows (M, l) and next events (M,), in a stable order."""
        rows = np.asarray(sorted(self._pairs), dtype=np.int64).reshape(-1, self.window_size + 1)
        return rows[:, : self.window_size].copy(), rows[:, self.window_size].copy()

    def accepts(self, window: Sequence[int], next_event: int) -> bool:
        """Scalar form of `accepted`."""
        return self._row(window, next_event) in self._pairs

    def accepted(self, windows: np.ndarray, nexts: np.ndarray) -> np.ndarray:
        """Per row, whether (windows[i], nexts[i]) is an accepted pair: windows (N, l) int, nexts (N,).

        Hashes every row at once and looks them up in the sorted hashes of the accepted pairs; only
        rows whose hash matches (accepted ones, or a rare collision) are compared exactly.
        """
        windows = np.asarray(windows, dtype=np.int64)
        nexts = np.asarray(nexts, dtype=np.int64).reshape(-1)
        if windows.ndim != 2 or windows.shape[0] != nexts.shape[0]:
            raise DataError(
                f"allowlist: expected windows (N, {self.window_size}) and nexts (N,), got "
                f"{windows.shape} and {nexts.shape}"
            )
        if windows.shape[1] != self.window_size:
            raise DataError(
                f"allowlist: windows have {windows.shape[1]} events, the allowlist's model {self.window_size}"
            )
        result = np.zeros(len(nexts), dtype=bool)
        if not self._pairs or not len(nexts):
            return result
        if self._hashes is None:
            window_part, next_part = self.pairs()
            self._hashes = np.sort(row_hashes(np.concatenate([window_part, next_part[:, None]], axis=1)))
        rows = np.concatenate([windows, nexts[:, None]], axis=1)
        hashes = row_hashes(rows)
        at = np.searchsorted(self._hashes, hashes).clip(max=len(self._hashes) - 1)
        for i in np.flatnonzero(self._hashes[at] == hashes):
            result[i] = tuple(rows[i].tolist()) in self._pairs
        return result

    def _row(self, window: Sequence[int], next_event: int) -> tuple[int, ...]:
        if len(window) != self.window_size:
            raise DataError(
                f"allowlist: a window of {len(window)} events for a model window of {self.window_size}; "
                "pad it on the left with 0"
            )
        return (*(int(t) for t in window), int(next_event))


@dataclass
class Allowlist:
    """Everything operators marked normal, per model and template set (see the module docstring)."""

    _pairs: dict[tuple[str, str], PairAllowlist] = field(default_factory=dict)
    _parameters: dict[tuple[str, int], float] = field(default_factory=dict)  # (model, key) -> score
    _windows: dict[tuple[str, str], set[tuple[tuple[int, int], ...]]] = field(default_factory=dict)
    _alert_ids: set[str] = field(default_factory=set)

    @property
    def records(self) -> int:
        """How many distinct alerts were marked normal."""
        return len(self._alert_ids)

    def entries(self) -> int:
        """Accepted pairs, widened parameter keys and accepted windows, together."""
        windows = sum(len(s) for s in self._windows.values())
        return sum(len(p) for p in self._pairs.values()) + len(self._parameters) + windows

    def add(self, record: FeedbackRecord) -> bool:
        """Apply one record; False when it changed nothing (a re-delivery or a duplicate verdict)."""
        self._alert_ids.add(record.alert_id)
        if record.kind is AlertKind.WINDOW_CLASS:
            counts = window_counts(record.window)
            accepted = self._windows.setdefault((record.model, record.template_set), set())
            if counts in accepted:
                return False
            accepted.add(counts)
            return True
        if record.kind is AlertKind.PARAMETER_VALUE:
            key = (record.model, record.next_event)
            if record.score <= self._parameters.get(key, -1.0):
                return False
            self._parameters[key] = record.score
            return True
        return self.scope(record.model, record.template_set, len(record.window)).add(
            record.window, record.next_event
        )

    def scope(self, model: str, template_set: str, window_size: int) -> PairAllowlist:
        """The pairs of one model and template set (created empty on first use)."""
        pairs = self._pairs.setdefault((model, template_set), PairAllowlist(window_size))
        if pairs.window_size != window_size:
            raise DataError(
                f"allowlist: model {model} (template set {template_set}) has {pairs.window_size}-event "
                f"windows marked, now asked for {window_size}; a new window size needs a new model name"
            )
        return pairs

    def pairs_for(self, model: str, template_set: str) -> PairAllowlist | None:
        """The pairs of one model and template set, or None when none were marked (nothing created)."""
        return self._pairs.get((model, template_set))

    def pair_scopes(self) -> list[tuple[str, str, PairAllowlist]]:
        return [(model, digest, pairs) for (model, digest), pairs in self._pairs.items()]

    def parameter_accepted(self, model: str, key_template_id: int, score: float) -> bool:
        """Whether a parameter alert of this score on this key is within the widened threshold."""
        widened = self._parameters.get((model, int(key_template_id)))
        return widened is not None and score <= widened

    def window_accepted(self, model: str, template_set: str, window: Sequence[int]) -> bool:
        """Whether a window with these template ids (any order) was marked normal."""
        return window_counts(window) in self._windows.get((model, template_set), set())

    def to_bytes(self) -> bytes:
        """JSON bytes (restart survival; no pickle)."""
        return orjson.dumps(
            {
                "format": ALLOWLIST_FORMAT,
                "pairs": [
                    {"model": m, "template_set": d, "window_size": p.window_size, "rows": sorted(p._pairs)}
                    for (m, d), p in self._pairs.items()
                ],
                "parameters": [[m, k, s] for (m, k), s in self._parameters.items()],
                "windows": [
                    {"model": m, "template_set": d, "counts": sorted(list(map(list, c)) for c in s)}
                    for (m, d), s in self._windows.items()
                ],
                "alert_ids": sorted(self._alert_ids),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Allowlist:
        """Inverse of `to_bytes`; anything else raises DataError."""
        try:
            obj = orjson.loads(data)
            if obj.get("format") != ALLOWLIST_FORMAT:
                raise DataError(f"allowlist: expected format {ALLOWLIST_FORMAT!r}, got {obj.get('format')!r}")
            allowlist = cls()
            for scope in obj["pairs"]:
                pairs = allowlist.scope(
                    str(scope["model"]), str(scope["template_set"]), int(scope["window_size"])
                )
                for row in scope["rows"]:
                    pairs.add([int(t) for t in row[:-1]], int(row[-1]))
            for model, key, score in obj["parameters"]:
                allowlist._parameters[(str(model), int(key))] = float(score)
            for scope in obj["windows"]:
                counts = {tuple((int(t), int(n)) for t, n in c) for c in scope["counts"]}
                allowlist._windows[(str(scope["model"]), str(scope["template_set"]))] = counts
            allowlist._alert_ids = {str(a) for a in obj["alert_ids"]}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"allowlist: malformed allowlist bytes ({exc!r}); rebuild it from log-feedback"
            ) from exc
        return allowlist


def window_counts(window: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """A window of template ids as sorted (id, count) pairs: window models see counts, not order."""
    return tuple(sorted(Counter(int(t) for t in window if t != PAD_ID).items()))


def build_allowlist(records: Iterable[FeedbackRecord]) -> Allowlist:
    """The allowlist of every record (e.g. the compacted `log-feedback` topic read from the start)."""
    allowlist = Allowlist()
    for record in records:
        allowlist.add(record)
    return allowlist


class FeedbackGate:
    """What a detector asks before it alerts: did operators accept this behaviour? Counts what it hides.

    `template_set(model, version)` names the template set the scored ids belong to (the worker: the
    digest of the template set it parses with). The allowlist is changed only through `apply`, on
    the detector's own event loop, so a check never sees a half-applied record.
    """

    def __init__(
        self,
        allowlist: Allowlist,
        template_set: Callable[[str, int], str],
        on_suppressed: Callable[[str], None] | None = None,
    ) -> None:
        self.allowlist = allowlist
        self.template_set = template_set
        self.suppressed: Counter[str] = Counter()  # alert kind -> alerts not raised
        self.on_suppressed = on_suppressed or (lambda kind: None)

    def apply(self, record: FeedbackRecord) -> bool:
        return self.allowlist.add(record)

    def accepted(self, model: str, version: int, windows: np.ndarray, nexts: np.ndarray) -> np.ndarray:
        """Per row, whether the pair was marked normal for this model and its template set."""
        windows = np.asarray(windows, dtype=np.int64)
        pairs = self.allowlist.pairs_for(model, self.template_set(model, version))
        if pairs is None or not len(pairs) or pairs.window_size != windows.shape[1]:
            return np.zeros(windows.shape[0], dtype=bool)
        return pairs.accepted(windows, nexts)

    def parameter_accepted(self, model: str, key_template_id: int, score: float) -> bool:
        return self.allowlist.parameter_accepted(model, key_template_id, score)

    def count(self, kind: AlertKind) -> None:
        self.suppressed[kind.value] += 1
        self.on_suppressed(kind.value)
