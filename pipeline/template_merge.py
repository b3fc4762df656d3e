"""Merging a new Drain cluster into an older one that differs from it only where values vary.

Drain puts a line into a leaf of its prefix tree chosen by the line's length and first tokens, and
compares it only with the clusters of that leaf. A variable among the first tokens (a masked value
of another kind, `<NUM>` here and `<HEX>` there, or a position an older cluster already generalised
to `<*>`) therefore starts a new cluster although an older one fits. `TemplateMerger` looks at every
cluster of the same length when Drain creates one, and merges the new one into the oldest that
differs from it only in variable positions. The merge keeps the older cluster's id (stable ids: the
template text changes, `Change.CHANGED` says so) and makes the new cluster's id an alias of it, so
the leaf where Drain put the new cluster leads to the merged one from then on.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from drain3.drain import Drain, LogCluster

WILDCARD = "<*>"
_MASK = re.compile(r"<[A-Z][A-Z0-9_]*>|<\*>")


def shape(token: str) -> str:
    """A token with every mask and wildcard as `<>`: tokens of one shape differ only in values."""
    return _MASK.sub("<>", token) if "<" in token else token


def is_variable(token: str) -> bool:
    """Whether a token holds a masked value or a wildcard."""
    return "<" in token and _MASK.search(token) is not None


def mergeable(new: tuple[str, ...], old: tuple[str, ...]) -> bool:
    """Whether two same-length templates differ only in variable positions, and share a constant.

    A position may differ when the new token holds a value and the old template has a wildcard
    there, or when both tokens hold values with the same text around them (`<NUM>` and `<HEX>`,
    `id=<NUM>` and `id=<HEX>`). A word never merges here (`Link ok` into `Link <*>`): telling a
    variable word from a constant one is Drain's similarity test, inside its leaf."""
    shared_constant = False
    for a, b in zip(new, old, strict=True):
        if a == b:
            shared_constant = shared_constant or not is_variable(a)
            continue
        if not (is_variable(a) and (b == WILDCARD or (is_variable(b) and shape(a) == shape(b)))):
            return False
    return shared_constant


class TemplateMerger:
    """Same-length clusters of one `Drain`, and the merge of a new cluster into an older one."""

    def __init__(self) -> None:
        self._by_length: dict[int, list[LogCluster]] = defaultdict(list)
        self.aliases: dict[int, int] = {}  # merged (new) cluster id -> surviving cluster id

    def add(self, cluster: LogCluster) -> None:
        """Remember a cluster (created or restored) as a merge target."""
        self._by_length[len(cluster.log_template_tokens)].append(cluster)

    def absorb(self, drain: Drain, new: LogCluster) -> LogCluster | None:
        """Merge a just-created cluster into the oldest fitting one and return it; None (and the new
        cluster kept as a target) when none fits."""
        tokens = new.log_template_tokens
        for old in self._by_length[len(tokens)]:
            if mergeable(tokens, old.log_template_tokens):
                old.log_template_tokens = tuple(
                    a if a == b else WILDCARD for a, b in zip(tokens, old.log_template_tokens, strict=True)
                )
                old.size += new.size
                drain.id_to_cluster[new.cluster_id] = old
                self.aliases[new.cluster_id] = old.cluster_id
                return old
        self.add(new)
        return None

    def restore_alias(self, drain: Drain, alias_id: int, target_id: int) -> None:
        """Re-point a merged cluster id after a state restore."""
        drain.id_to_cluster[alias_id] = drain.id_to_cluster[target_id]
        self.aliases[alias_id] = target_id


class ValueAwareDrain(Drain):
    """Drain whose similarity counts two value-bearing tokens as alike.

    Drain3 counts a position as similar only when the tokens are equal, so `<IP>,` against
    `LOCAL(<NUM>),` or `<NUM>` against a template's `<*>` is a mismatch, as much as `Paused` against
    `Resumed`. Here a position where both the template token and the line token hold a value (a mask
    or the wildcard) counts as similar; words still have to be equal."""

    def get_seq_distance(self, seq1: Any, seq2: Any, include_params: bool) -> tuple[float, int]:
        if not seq1:
            return 1.0, 0
        similar = params = 0
        for template_token, token in zip(seq1, seq2, strict=True):
            if template_token == token:
                if template_token == WILDCARD:
                    params += 1
                else:
                    similar += 1
            elif template_token == WILDCARD:
                params += 1
                if is_variable(token):
                    similar += 1
            elif is_variable(template_token) and is_variable(token):
                similar += 1
        if include_params:
            similar += params
        return min(similar, len(seq1)) / len(seq1), params
