"""Log parsing metrics of the loghub benchmarks: GA, FGA and PA over per-line predictions.

- grouping accuracy (GA, Zhu et al., ICSE-SEIP 2019): a line is correct when the set of lines that
  share its predicted template equals the set that share its true template;
- F1 of grouping accuracy (FGA, Loghub-2.0, Jiang et al., ISSTA 2024): a predicted group is correct
  when its lines are exactly one true group's lines; precision over predicted groups, recall over
  true groups;
- parsing accuracy (PA, Loghub-2.0): the share of lines whose predicted template text equals the
  true one, both normalised by `normalise_template` (the `<*>` conventions the corrected loghub
  templates follow, applied to both sides alike).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Hashable, Sequence

WILDCARD = "<*>"
_NAMED_MASK = re.compile(r"<[A-Z][A-Z0-9_]*>")
_SPACES = re.compile(r"\s+")
# Pieces between these are tokens for the normalisation; a token that holds a wildcard is one.
_DELIMITERS = re.compile(r"([\s,!;:=|\"'\[\](){}.\-+@#$%&/])")
_DIGITS = re.compile(r"\d+")
# Neighbouring wildcards joined by nothing or by one of these stand for one variable value.
_JOINED = re.compile(r"<\*>(?:[.:/@#_\-]?<\*>)+")


def _check_lengths(predicted: Sequence[object], truth: Sequence[object], metric: str) -> None:
    if len(predicted) != len(truth):
        raise ValueError(f"{metric}: {len(predicted)} predictions for {len(truth)} lines")


def _groups(labels: Sequence[Hashable]) -> dict[Hashable, frozenset[int]]:
    members: dict[Hashable, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        members[label].append(index)
    return {label: frozenset(lines) for label, lines in members.items()}


def grouping_accuracy(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    """Share of lines whose predicted group holds exactly the lines of their true group."""
    _check_lengths(predicted, truth, "grouping accuracy")
    if not truth:
        return 0.0
    true_groups = set(_groups(truth).values())
    correct = sum(len(g) for g in _groups(predicted).values() if g in true_groups)
    return correct / len(truth)


def grouping_f1(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    """FGA: harmonic mean of the shares of predicted and of true groups that are matched exactly."""
    _check_lengths(predicted, truth, "FGA")
    if not truth:
        return 0.0
    predicted_groups = set(_groups(predicted).values())
    true_groups = set(_groups(truth).values())
    exact = len(predicted_groups & true_groups)
    if exact == 0:
        return 0.0
    precision, recall = exact / len(predicted_groups), exact / len(true_groups)
    return 2 * precision * recall / (precision + recall)


def normalise_template(template: str) -> str:
    """A template in the corrected loghub conventions: named masks (`<NUM>`) and digit runs are
    `<*>`, a token holding a wildcard is one (`blk_<*>`, `<*>ms`), neighbouring wildcards joined by
    `.:/@#_-` or nothing are one, whitespace runs are one space."""
    text = _NAMED_MASK.sub(WILDCARD, template)
    text = _SPACES.sub(" ", text).strip()
    pieces = _DELIMITERS.split(text)
    out: list[str] = []
    for piece in pieces:
        out.append(WILDCARD if piece and (WILDCARD in piece or _DIGITS.fullmatch(piece)) else piece)
    text = "".join(out)
    previous = None
    while previous != text:
        previous, text = text, _JOINED.sub(WILDCARD, text)
    return text


def parsing_accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    """Share of lines whose normalised predicted template equals their normalised true template."""
    _check_lengths(predicted, truth, "parsing accuracy")
    if not truth:
        return 0.0
    memo: dict[str, str] = {}

    def norm(text: str) -> str:
        value = memo.get(text)
        if value is None:
            value = memo[text] = normalise_template(text)
        return value

    return sum(norm(p) == norm(t) for p, t in zip(predicted, truth, strict=True)) / len(truth)
