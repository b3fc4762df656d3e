"""`logad evaluate hdfs-1-99 --feedback-from FILE`: does operator feedback remove false alarms?

Train on `deeplog_train` as the 1/99 evaluation does, then run FILE's normal sessions (the feedback
half) through detection as the worker would: a session alerts on its first unaccepted anomalous
(window, next event) pair per cause (OOV, unexpected next event; the first event is checked for OOV
only). Every alert is marked normal (one `FeedbackRecord` each), and the feedback sessions are run
again, as the same behaviour recurring in new sessions would be, until none alerts: each round's
alerts are what an operator would mark that round. Then the update: the allowlist of the marked
pairs and a fine-tuned version (`pipeline.training.feedback_update`), whose learnt pairs leave the
allowlist. Precision, recall and F1 are measured before and after on the abnormal split and on normal
sessions the feedback never saw: by default the other half of FILE (split by a seeded hash of the
line number), or `--normal-test`. Precision is extrapolated to 553,366 normal sessions from the
held-out sessions' false-positive rate, as `../shared/data/README.md` prescribes.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.alerts import AlertKind
from pipeline.evaluation.next_event_metrics import detection_scores, scores_dict
from pipeline.feedback import Allowlist, FeedbackRecord, PairAllowlist, template_set_digest
from pipeline.settings import Settings
from pipeline.windows import PAD_ID, next_event_windows

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--feedback-from",
        help="normal sessions (deeplog format) whose alerts are marked normal; with it, --normal-test "
        "defaults to the half of this file the feedback never sees",
    )
    parser.add_argument("--update-epochs", type=int, default=2, help="fine-tuning epochs of the update")
    parser.add_argument("--update-learning-rate", type=float, default=3e-4)
    parser.add_argument("--marked-repeat", type=int, default=20, help="draws of each marked pair per epoch")
    parser.add_argument(
        "--split-seed", type=int, help="seed of the feedback / held-back split (default --seed)"
    )


@dataclass
class SessionPairs:
    """Every session's (window, next) rows as indices into one table of distinct pairs.

    Row 0 of each session pairs an all-padding window with its first event, which is checked for OOV
    only (as the worker does); the other rows are `next_event_windows`'."""

    windows: np.ndarray  # (P, l) distinct windows
    nexts: np.ndarray  # (P,)
    members: list[np.ndarray]  # per session, indices into the table, in session order

    @classmethod
    def of(cls, sessions: Sequence[Sequence[int]], window_size: int, end_of_session: bool) -> SessionPairs:
        index: dict[tuple[int, ...], int] = {}
        members: list[np.ndarray] = []
        for session in sessions:
            windows, nexts = next_event_windows(session, window_size, end_of_session)
            first = np.asarray([[PAD_ID] * window_size + [int(session[0])]], dtype=np.int64)
            rows = np.concatenate([first, np.concatenate([windows, nexts[:, None]], axis=1)]).tolist()
            members.append(np.asarray([index.setdefault(tuple(r), len(index)) for r in rows], dtype=np.int64))
        table = np.asarray(list(index), dtype=np.int64).reshape(-1, window_size + 1)
        return cls(table[:, :window_size].copy(), table[:, window_size].copy(), members)


@dataclass(frozen=True)
class PairVerdicts:
    """Per distinct pair: OOV next event, and anomalous (OOV, or outside the top-k off position 0)."""

    oov: np.ndarray
    anomalous: np.ndarray


def pair_verdicts(trained: Any, pairs: SessionPairs) -> PairVerdicts:
    from pipeline.models.next_event import next_ranks

    device = trained.train_config.device
    ranks = next_ranks(trained.vocabulary, trained.network, pairs.windows, pairs.nexts, device=device)
    oov = ranks < 0
    first = (pairs.windows == PAD_ID).all(axis=1)
    return PairVerdicts(oov, oov | (~first & (ranks >= trained.top_k)))


def session_outcomes(
    pairs: SessionPairs, verdicts: PairVerdicts, accepted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per session: (alerts: holds an anomalous pair the allowlist does not accept, holds OOV)."""
    open_pairs = verdicts.anomalous & ~accepted
    flagged = np.asarray([bool(open_pairs[m].any()) for m in pairs.members], dtype=bool)
    holds_oov = np.asarray([bool(verdicts.oov[m].any()) for m in pairs.members], dtype=bool)
    return flagged, holds_oov


def collect_feedback(
    trained: Any,
    sessions: Sequence[Sequence[int]],
    allowlist: Allowlist,
    template_set: str,
    max_rounds: int = 50,
) -> tuple[list[FeedbackRecord], int]:
    """Alert, mark every alert normal, repeat until the sessions raise none; (records, rounds)."""
    window = trained.config.window_size
    pairs = SessionPairs.of(sessions, window, trained.train_config.end_of_session)
    verdicts = pair_verdicts(trained, pairs)
    scope = allowlist.scope(trained.kind, template_set, window)
    records: list[FeedbackRecord] = []
    for round_number in range(1, max_rounds + 1):
        accepted = scope.accepted(pairs.windows, pairs.nexts)
        open_pairs = verdicts.anomalous & ~accepted
        made = []
        for number, members in enumerate(pairs.members):
            for kind, of_kind in (
                (AlertKind.OOV_EVENT, verdicts.oov),
                (AlertKind.UNEXPECTED_NEXT_EVENT, ~verdicts.oov),
            ):
                hits = members[open_pairs[members] & of_kind[members]]
                if len(hits):  # the worker alerts once per session per cause: on the first such pair
                    row = int(hits[0])
                    made.append(
                        FeedbackRecord(
                            alert_id=f"feedback-eval-{number}-{kind.value}-{round_number}",
                            kind=kind,
                            model=trained.kind,
                            model_version=1,
                            template_set=template_set,
                            window=tuple(int(t) for t in pairs.windows[row]),
                            next_event=int(pairs.nexts[row]),
                            session_key=str(number),
                        )
                    )
        if not made:
            return records, round_number - 1
        for record in made:
            allowlist.add(record)
        records.extend(made)
    return records, max_rounds


def split_half(
    sessions: Sequence[Sequence[int]], seed: int
) -> tuple[list[Sequence[int]], list[Sequence[int]]]:
    """(feedback, held back): each session by a seeded hash of its line number."""
    feedback, held = [], []
    for number, session in enumerate(sessions):
        digest = hashlib.blake2b(f"{seed}:{number}".encode(), digest_size=1).digest()[0]
        (feedback if digest % 2 == 0 else held).append(session)
    return feedback, held


def measure(
    trained: Any,
    scope: PairAllowlist | None,
    normal: SessionPairs,
    abnormal: SessionPairs,
    normal_total: int | None,
    suffix: str,
) -> dict[str, Any]:
    """P/R/F1 with and without OOV sessions (keys with `suffix`), the allowlist applied when given."""
    out: dict[str, Any] = {}
    flags = {}
    for name, pairs in (("normal", normal), ("abnormal", abnormal)):
        verdicts = pair_verdicts(trained, pairs)
        accepted = (
            scope.accepted(pairs.windows, pairs.nexts)
            if scope is not None
            else np.zeros(len(pairs.nexts), bool)
        )
        flags[name] = session_outcomes(pairs, verdicts, accepted)
    (normal_flags, normal_oov), (abnormal_flags, abnormal_oov) = flags["normal"], flags["abnormal"]
    out.update(scores_dict(suffix, detection_scores(normal_flags, abnormal_flags, normal_total)))
    total = None if normal_total is None else round(normal_total * float((~normal_oov).mean() or 0.0))
    without = detection_scores(normal_flags[~normal_oov], abnormal_flags[~abnormal_oov], total)
    out.update(scores_dict(f"_without_oov{suffix}", without))
    out[f"normal_flagged{suffix}"] = int(normal_flags.sum())
    return out


def open_pairs(trained: Any, scope: PairAllowlist, pairs: SessionPairs, before: Any) -> list[dict[str, Any]]:
    """What still alerts on the held-out normal sessions: per flagged session, its first open pair
    (window + next), its rank now and under the model before the update (-1: OOV)."""
    from pipeline.models.next_event import next_ranks

    verdicts = pair_verdicts(trained, pairs)
    open_rows = verdicts.anomalous & ~scope.accepted(pairs.windows, pairs.nexts)
    found = []
    for number, members in enumerate(pairs.members):
        hits = members[open_rows[members]]
        if len(hits):
            row = int(hits[0])
            window, nxt = pairs.windows[row : row + 1], pairs.nexts[row : row + 1]
            ranks = [int(next_ranks(m.vocabulary, m.network, window, nxt)[0]) for m in (trained, before)]
            pair = [*map(int, window[0]), int(nxt[0])]
            found.append({"session": number, "pair": pair, "rank": ranks[0], "rank_before": ranks[1]})
    return found


def run(
    args: argparse.Namespace, settings: Settings, trained: Any, train: Sequence[Sequence[int]]
) -> dict[str, Any]:
    """The whole loop on an already trained model (see the module docstring); a flat result dict."""
    from pipeline.datasets import data_file
    from pipeline.datasets.sessions import read_session_file
    from pipeline.training.feedback_update import UpdateConfig, fine_tune
    from pipeline.training.next_event import split_sessions

    feedback_all = read_session_file(data_file(settings.data_dir, args.feedback_from))
    if args.normal_test:
        feedback, held = list(feedback_all), read_session_file(data_file(settings.data_dir, args.normal_test))
    else:
        split_seed = args.seed if args.split_seed is None else args.split_seed
        feedback, held = split_half(feedback_all, split_seed)
    abnormal_sessions = read_session_file(data_file(settings.data_dir, args.abnormal_test))
    normal_total = args.normal_total or None
    window, end = trained.config.window_size, trained.train_config.end_of_session
    normal = SessionPairs.of(held, window, end)
    abnormal = SessionPairs.of(abnormal_sessions, window, end)
    template_set = template_set_digest(trained.vocabulary.known_ids())
    result: dict[str, Any] = {
        "model": trained.kind,
        "top_k_before": trained.top_k,
        "feedback_sessions": len(feedback),
        "normal_sessions": len(held),
        "abnormal_sessions": len(abnormal_sessions),
    }
    started = time.perf_counter()
    result.update(measure(trained, None, normal, abnormal, normal_total, "_before"))
    allowlist = Allowlist()
    records, rounds = collect_feedback(trained, feedback, allowlist, template_set)
    scope = allowlist.scope(trained.kind, template_set, window)
    result.update(feedback_records=len(records), feedback_rounds=rounds, allowlist_pairs=len(scope))
    result.update(measure(trained, scope, normal, abnormal, normal_total, "_allowlist"))
    fit, held_out = split_sessions(train, trained.train_config.validation_fraction, trained.train_config.seed)
    update = UpdateConfig.from_options(args)
    update_started = time.perf_counter()
    updated = fine_tune(trained, scope, fit, held_out, update)
    result.update(
        update_s=round(time.perf_counter() - update_started, 1),
        top_k_after=updated.trained.top_k,
        learnt_pairs=updated.learnable_pairs,
        oov_pairs=updated.unlearnable_pairs,
        retired_pairs=updated.retired,
        allowlist_pairs_after=len(scope),
    )
    result.update(measure(updated.trained, None, normal, abnormal, normal_total, "_finetune"))
    result.update(measure(updated.trained, scope, normal, abnormal, normal_total, ""))
    result["marked_pairs"] = [[*map(int, r.window), r.next_event] for r in records]
    result["unseen_false_alarms"] = open_pairs(updated.trained, scope, normal, trained)
    result["feedback_s"] = round(time.perf_counter() - started, 1)
    return result


def format_table(result: dict[str, Any]) -> str:
    """Before / after rows: P, R, F1 without and with OOV, and normal sessions flagged."""
    rows = [
        ("before feedback", "_before"),
        ("allowlist only", "_allowlist"),
        ("fine-tuned only", "_finetune"),
        ("after (both)", ""),
    ]
    lines = [
        f"{result['model']}: feedback from {result['feedback_sessions']} normal sessions "
        f"({result['feedback_records']} records in {result['feedback_rounds']} rounds), tested on "
        f"{result['normal_sessions']} unseen normal and {result['abnormal_sessions']} abnormal sessions",
        f"{'':<18}{'Precision':>16}{'Recall':>16}{'F1':>16}{'normal flagged':>16}",
        "(without OOV / with OOV)",
    ]
    for label, suffix in rows:
        cells = [
            f"{result[f'{m}_without_oov{suffix}']:.3f}/{result[f'{m}{suffix}']:.3f}"
            for m in ("precision", "recall", "f1")
        ]
        lines.append(
            f"{label:<18}{cells[0]:>16}{cells[1]:>16}{cells[2]:>16}{result[f'normal_flagged{suffix}']:>16}"
        )
    lines.append(
        f"k {result['top_k_before']} -> {result['top_k_after']}; {result['learnt_pairs']} marked pairs "
        f"fine-tuned, {result['oov_pairs']} OOV pairs kept on the allowlist, {result['retired_pairs']} "
        f"retired; allowlist {result['allowlist_pairs']} -> {result['allowlist_pairs_after']} pairs; "
        f"update {result['update_s']} s"
    )
    for alarm in result.get("unseen_false_alarms", []):
        lines.append(
            f"unseen session {alarm['session']} still alerts on pair {alarm['pair']}: rank {alarm['rank']} "
            f"(before the update {alarm['rank_before']})"
        )
    lines.append(f"marked pairs: {result.get('marked_pairs')}")
    lines.append("precision extrapolated to 553,366 normal sessions from the unseen normal sessions' FP rate")
    return "\n".join(lines)
