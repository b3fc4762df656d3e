"""Log templates: Drain3 mining with stable, text-derived ids, an exact cache, and JSON state.

A `TemplateMiner` wraps drain3's own `TemplateMiner` (its masker and its `Drain` tree) and adds:
- stable ids: `template_id(text)` hashes the template text, so every worker, restart and model
  version agrees on an id without coordination;
- two modes: LEARN mines templates (training); MATCH matches against a frozen set (online) and
  reports unknown lines as OOV with the template they would have had;
- a cache keyed by the masked line that returns exactly what Drain3 would (see `learn`);
- state as JSON bytes (never pickle: state may come from a topic a network peer can write).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from drain3 import TemplateMiner as Drain3Miner
from drain3.drain import LogCluster, Node
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from pipeline.errors import ConfigError, DataError
from pipeline.records import TemplateRecord
from pipeline.template_masks import collapse_repeats, mask_token
from pipeline.template_merge import TemplateMerger, ValueAwareDrain
from pipeline.windows import PAD_ID

log = logging.getLogger(__name__)

_ID_SHIFT = 12  # 64-bit digest >> 12 leaves 52 bits: exact in float64 and JSON numbers everywhere.


def template_id(text: str) -> int:
    """Stable positive id (< 2**52) of a template text; never 0, which is the padding id."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> _ID_SHIFT) or 1


@dataclass(frozen=True)
class MaskingRule:
    """Replace every match of `pattern` by `<name>` before Drain sees the line."""

    name: str
    pattern: str


_START = r"((?<=[^A-Za-z0-9])|^)"
_END = r"((?=[^A-Za-z0-9])|$)"

BLOCK_ID = MaskingRule("BLK", r"blk_-?\d+")
IP = MaskingRule("IP", _START + r"(\d{1,3}\.){3}\d{1,3}(:\d{1,5})?" + _END)
PATH = MaskingRule("PATH", r"(?<!\S)/\S*/\S*")
HEX = MaskingRule("HEX", _START + r"0[xX][0-9a-fA-F]+" + _END)
NUMBER = MaskingRule("NUM", _START + r"[\-\+]?\d+" + _END)


_DIGIT_OR_SLASH_RULES = frozenset({BLOCK_ID, IP, PATH, HEX, NUMBER})
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class MaskingConfig:
    """Masking rules, applied in order.

    `token_local` promises that no rule matches whitespace and that rules look past their match
    only for a non-alphanumeric character or a line boundary (true for the built-in rules). Then
    masking a line equals masking each whitespace-separated token on its own, which lets the miner
    memoize tokens. Leave it False for user rules unless that promise holds.
    """

    rules: tuple[MaskingRule, ...] = (BLOCK_ID, IP, PATH, HEX, NUMBER)
    token_local: bool = True

    @classmethod
    def from_dicts(cls, rules: list[dict[str, str]], token_local: bool = False) -> MaskingConfig:
        """Rules from configuration: `[{"name": "UUID", "pattern": "..."}]`."""
        try:
            return cls(tuple(MaskingRule(r["name"], r["pattern"]) for r in rules), token_local)
        except (KeyError, TypeError) as exc:
            raise ConfigError(
                f"masking config: each rule needs 'name' and 'pattern' strings, got {rules!r}"
            ) from exc


class ParserMode(enum.Enum):
    """How lines become templates.

    DRAIN3: exactly drain3's answer for the configured masks (the built-in HDFS and BGL formats,
    trained models and the columnar parser rely on it). LOGAD: the configured masks, then variables
    inside whitespace tokens (`pipeline.template_masks`), and a new template merged into an existing
    one of the same length when they differ only where values vary (`pipeline.template_merge`);
    it groups better on systems it was not tuned for (`logad evaluate parsing-loghub`).
    """

    DRAIN3 = "drain3"
    LOGAD = "logad"


@dataclass(frozen=True)
class DrainConfig:
    """Drain settings. sim_th 0.85 was tuned on loghub HDFS_100k (see `logad evaluate parsing-hdfs`):
    named masks count as equal tokens, so a lower threshold merges `... terminating` with
    `... Interrupted`. `parser_mode` picks Drain3's exact answer (the default) or the `logad` mode
    (`ParserMode`), which uses at least `LOGAD_MIN_SIM_TH`."""

    depth: int = 4
    sim_th: float = 0.85
    max_children: int = 100
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    parser_mode: ParserMode = ParserMode.DRAIN3

    def to_drain3(self) -> TemplateMinerConfig:
        """drain3's config object, built in code: never read from a drain3.ini in the working dir."""
        config = TemplateMinerConfig()
        config.drain_depth = self.depth
        config.drain_sim_th = self.sim_th
        config.drain_max_children = self.max_children
        config.drain_max_clusters = None  # LRU eviction would invalidate cached matches silently
        config.drain_extra_delimiters = []  # token-local masking assumes whitespace-only splitting
        config.masking_instructions = [MaskingInstruction(r.pattern, r.name) for r in self.masking.rules]
        config.mask_prefix, config.mask_suffix = "<", ">"
        config.snapshot_compress_state = False
        config.profiling_enabled = False
        return config

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "depth": self.depth,
            "sim_th": self.sim_th,
            "max_children": self.max_children,
            "masking": [{"name": r.name, "pattern": r.pattern} for r in self.masking.rules],
            "token_local": self.masking.token_local,
        }
        if self.parser_mode is not ParserMode.DRAIN3:  # Drain3-mode state stays byte-identical
            raw["parser_mode"] = self.parser_mode.value
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DrainConfig:
        masking = MaskingConfig.from_dicts(raw["masking"], bool(raw["token_local"]))
        mode = ParserMode(raw.get("parser_mode", ParserMode.DRAIN3.value))
        return cls(int(raw["depth"]), float(raw["sim_th"]), int(raw["max_children"]), masking, mode)


class MinerMode(enum.Enum):
    LEARN = "learn"
    MATCH = "match"


class Change(enum.Enum):
    """What a line did to the template set (drain3's change types, plus OOV in match mode)."""

    NONE = "none"
    CREATED = "cluster_created"
    CHANGED = "cluster_template_changed"
    OOV = "oov"


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """The template a line belongs to. For OOV lines, the template it would have had."""

    template_id: int
    template: str
    cluster_id: int  # 0 for OOV
    change: Change
    replaces_id: int = PAD_ID  # on CHANGED: the id of the template before this line generalized it

    @property
    def oov(self) -> bool:
        return self.change is Change.OOV


STATE_FORMAT = "logad-templates/1"
# LOGAD mode's least similarity. Its masks turn values into equal tokens, so two lines of one event
# differ only where a value escaped every mask; 0.9 lets one word in ten differ. The loghub settings'
# 0.5 assumes Drain3's masks, where every value counts as a mismatch, and under LOGAD's masks it
# merges events that differ by one word (`VM Paused` / `VM Resumed`). Chosen on the mean GA of six
# loghub-2k systems (HDFS, Hadoop, Spark, BGL, HPC, OpenStack; 0.5: 0.928, 0.8: 0.955, 0.85: 0.968,
# 0.9: 0.971, 0.95: 0.981), not per system. 0.95 scored higher there but lets no word differ in a
# template under 20 tokens, so every word variable (a user or host name) would split its event.
LOGAD_MIN_SIM_TH = 0.9
_TOKEN_MEMO_MAX = 200_000
_LINE_CACHE_MAX = 200_000


class TemplateMiner:
    """Drain3 with stable ids, learn/match modes and an exact masked-line cache."""

    def __init__(
        self,
        config: DrainConfig | None = None,
        mode: MinerMode = MinerMode.LEARN,
        parser_mode: ParserMode | str | None = None,
    ) -> None:
        """`parser_mode` ("drain3" or "logad", see `ParserMode`) overrides the config's."""
        config = config or DrainConfig()
        if parser_mode is not None:
            try:
                config = replace(config, parser_mode=ParserMode(parser_mode))
            except ValueError:
                choices = [m.value for m in ParserMode]
                raise ConfigError(
                    f"template miner: parser mode {parser_mode!r} is unknown; choose one of {choices}"
                ) from None
        self.config = config
        self.mode = mode
        self._miner = Drain3Miner(config=self.config.to_drain3())
        self._drain = self._miner.drain
        self._masker = self._miner.masker
        self._logad = config.parser_mode is ParserMode.LOGAD
        self._merger = TemplateMerger() if self._logad else None
        # The built-in rules cannot match a token without a digit or a slash: skip them there.
        self._rules_need_digit_or_slash = set(config.masking.rules) <= _DIGIT_OR_SLASH_RULES
        if self._logad:
            drain3 = self._drain
            self._drain = self._miner.drain = ValueAwareDrain(
                sim_th=max(config.sim_th, LOGAD_MIN_SIM_TH),
                depth=drain3.log_cluster_depth,
                max_children=drain3.max_children,
                max_clusters=None,
                extra_delimiters=drain3.extra_delimiters,
                param_str=drain3.param_str,
                parametrize_numeric_tokens=drain3.parametrize_numeric_tokens,
            )
        self._token_memo: dict[str, str] = {}
        # masked line -> (match, cluster, token count, generation of that token-count group)
        self._learned: dict[str, tuple[TemplateMatch, LogCluster, int, int]] = {}
        self._matched: dict[str, TemplateMatch] = {}
        self._generation: dict[int, int] = {}
        self._ids: dict[int, int] = {}  # cluster id -> current template id
        self.cache_hits = 0

    # masking ---------------------------------------------------------------------------------
    def mask(self, content: str) -> str:
        """The masked line, tokens joined by one space (exactly the tokens Drain3 would see).

        In LOGAD mode `template_masks.mask_token` comes first, per token, then the configured
        rules: a whole token (a UUID, a path) is recognised before a user's `\\d+` cuts it up;
        last, runs of one repeated masked token become one (`template_masks.collapse_repeats`)."""
        if self._logad:
            return self._mask_logad(content)
        if not self.config.masking.token_local:
            return " ".join(self._masker.mask(content).split())
        memo = self._token_memo
        out = []
        for token in content.split():
            masked = memo.get(token)
            if masked is None:
                masked = self._masker.mask(token)
                if len(memo) >= _TOKEN_MEMO_MAX:
                    memo.clear()
                memo[token] = masked
            out.append(masked)
        return " ".join(out)

    def _mask_logad(self, content: str) -> str:
        local = self.config.masking.token_local
        memo = self._token_memo
        out = []
        for token in content.split():
            masked = memo.get(token)
            if masked is None:
                masked = mask_token(token)
                if local and (not self._rules_need_digit_or_slash or "/" in masked or _DIGIT.search(masked)):
                    masked = self._masker.mask(masked)
                if len(memo) >= _TOKEN_MEMO_MAX:
                    memo.clear()
                memo[token] = masked
            out.append(masked)
        if not local:
            return " ".join(collapse_repeats(self._masker.mask(" ".join(out)).split()))
        if len(set(out)) < len(out):  # a repeated token somewhere: maybe a value list
            out = collapse_repeats(out)
        return " ".join(out)

    # modes -----------------------------------------------------------------------------------
    def process(self, content: str) -> TemplateMatch:
        """`learn` or `match`, by the miner's mode."""
        return self.learn(content) if self.mode is MinerMode.LEARN else self.match(content)

    def learn(self, content: str) -> TemplateMatch:
        """Add a line to Drain and return its template.

        The cache is exact: Drain's answer for a masked line depends only on the clusters with the
        same token count. Every call that creates or changes a cluster bumps that group's
        generation; a cached answer is reused only while its group's generation is unchanged, in
        which case Drain would find the same cluster with change "none" and only grow its size.
        """
        if self.mode is not MinerMode.LEARN:
            raise ConfigError("template miner: learn() called in match mode; use match() or a new miner")
        masked = self.mask(content)
        entry = self._learned.get(masked)
        if entry is not None:
            match, cluster, length, generation = entry
            if self._generation.get(length, 0) == generation:
                cluster.size += 1
                self.cache_hits += 1
                return match
        cluster, change_type = self._drain.add_log_message(masked)
        length = len(cluster.log_template_tokens)
        change = Change(change_type)
        if change is Change.CREATED and self._merger is not None:
            merged = self._merger.absorb(self._drain, cluster)
            if merged is not None:
                cluster, change = merged, Change.CHANGED
        text = cluster.get_template()
        new_id = template_id(text)
        if change is Change.NONE:
            match = TemplateMatch(new_id, text, cluster.cluster_id, change)
            if len(self._learned) >= _LINE_CACHE_MAX:
                self._learned.clear()
            self._learned[masked] = (match, cluster, length, self._generation.get(length, 0))
            return match
        self._generation[length] = self._generation.get(length, 0) + 1
        previous = self._ids.get(cluster.cluster_id, PAD_ID)
        self._ids[cluster.cluster_id] = new_id
        return TemplateMatch(new_id, text, cluster.cluster_id, change, previous)

    def match(self, content: str) -> TemplateMatch:
        """Match against the current templates without changing them; unknown lines are OOV.

        An OOV line's template is its masked text: what learning would create for it.
        """
        masked = self.mask(content)
        cached = self._matched.get(masked)
        if cached is not None:
            self.cache_hits += 1
            return cached
        cluster = self._drain.match(masked, full_search_strategy="fallback")
        if cluster is None:
            result = TemplateMatch(template_id(masked), masked, 0, Change.OOV)
        else:
            text = cluster.get_template()
            result = TemplateMatch(template_id(text), text, cluster.cluster_id, Change.NONE)
        if len(self._matched) >= _LINE_CACHE_MAX:
            self._matched.clear()
        self._matched[masked] = result
        return result

    def freeze(self) -> None:
        """Switch to match mode: the template set no longer changes."""
        self.mode = MinerMode.MATCH
        self._learned.clear()

    # templates -------------------------------------------------------------------------------
    def template_of_cluster(self, cluster_id: int) -> str:
        """The cluster's current (after learning: final) template text."""
        return self._drain.id_to_cluster[cluster_id].get_template()

    def _clusters(self) -> list[LogCluster]:
        """Every cluster once (a merged cluster's id is an alias of the one it joined)."""
        return list({id(c): c for c in self._drain.clusters}.values())

    def templates(self) -> dict[int, str]:
        """Current templates by stable id."""
        return {template_id(c.get_template()): c.get_template() for c in self._clusters()}

    def cluster_sizes(self) -> dict[int, int]:
        return {c.cluster_id: c.size for c in self._clusters()}

    @classmethod
    def from_templates(cls, texts: Iterable[str], config: DrainConfig | None = None) -> TemplateMiner:
        """A frozen miner whose templates are exactly `texts` (e.g. those seen on `log-events`).

        Built without Drain's learning, which would merge similar texts into new templates (and new
        ids): each text becomes one cluster, put into the prefix tree the way Drain puts a new
        cluster. That tree is not the one mining grew, so a line that fits two of the texts may pick
        another than the original parser did; `unmatched` tells whether each text at least maps to
        its own id.
        """
        miner = cls(config, MinerMode.MATCH)
        drain = miner._drain
        # Sorted: the same texts give the same state, whatever order they arrived in.
        for cluster_id, text in enumerate(sorted(set(texts)), 1):
            cluster = LogCluster(text.split(), cluster_id)
            drain.id_to_cluster[cluster_id] = cluster
            drain.add_seq_to_prefix_tree(drain.root_node, cluster)
            drain.clusters_counter = cluster_id
            miner._ids[cluster_id] = template_id(cluster.get_template())
        return miner

    def unmatched(self, texts: Iterable[str]) -> list[str]:
        """The texts that do not match to their own template id (empty for a consistent set)."""
        return [text for text in texts if self.match(text).template_id != template_id(text)]

    # state -----------------------------------------------------------------------------------
    def save_state(self) -> bytes:
        """JSON bytes holding the config, the clusters and Drain's prefix tree (exact restore)."""
        clusters = [[c.cluster_id, c.size, list(c.log_template_tokens)] for c in self._clusters()]
        state: dict[str, Any] = {
            "format": STATE_FORMAT,
            "config": self.config.to_json(),
            "mode": self.mode.value,
            "clusters_counter": self._drain.clusters_counter,
            "clusters": clusters,
            "tree": _node_to_json(self._drain.root_node),
        }
        if self._merger is not None:
            state["aliases"] = [[alias, target] for alias, target in self._merger.aliases.items()]
        return orjson.dumps(state)

    @classmethod
    def load_state(cls, data: bytes) -> TemplateMiner:
        """A miner restored from `save_state()` bytes; raises `DataError` on malformed state."""
        try:
            state = orjson.loads(data)
            if state.get("format") != STATE_FORMAT:
                raise ValueError(f"format {state.get('format')!r}, expected {STATE_FORMAT!r}")
            miner = cls(DrainConfig.from_json(state["config"]), MinerMode(state["mode"]))
            drain = miner._drain
            for cluster_id, size, tokens in state["clusters"]:
                cluster = LogCluster([str(t) for t in tokens], int(cluster_id))
                cluster.size = int(size)
                drain.id_to_cluster[cluster.cluster_id] = cluster
                miner._ids[cluster.cluster_id] = template_id(cluster.get_template())
                if miner._merger is not None:
                    miner._merger.add(cluster)
            if miner._merger is not None:
                for alias, target in state.get("aliases", []):
                    miner._merger.restore_alias(drain, int(alias), int(target))
            drain.clusters_counter = int(state["clusters_counter"])
            drain.root_node = _node_from_json(state["tree"])
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"template miner load_state: expected JSON from TemplateMiner.save_state(), got "
                f"{len(data)} bytes that do not parse ({exc}); delete the state file to relearn"
            ) from exc
        log.info("template miner: restored %d clusters", len(drain.id_to_cluster))
        return miner


def _node_to_json(node: Node) -> dict[str, Any]:
    return {
        "ids": list(node.cluster_ids),
        "children": {k: _node_to_json(v) for k, v in node.key_to_child_node.items()},
    }


def _node_from_json(raw: dict[str, Any]) -> Node:
    node = Node()
    node.cluster_ids = [int(i) for i in raw["ids"]]
    node.key_to_child_node = {str(k): _node_from_json(v) for k, v in raw["children"].items()}
    return node


@dataclass
class TemplateEntry:
    """Registry state for one template id."""

    template: str
    first_seen: float
    count: int = 0
    replaces_id: int = PAD_ID


class TemplateRegistry:
    """Id -> template text, first seen, count: the content of the compacted `log-templates` topic.

    `observe` returns a `TemplateRecord` to publish when an id is new (a new template, a changed
    template, or an OOV line's would-be template for the next training run); counts are published
    with `records()` on the caller's schedule.
    """

    def __init__(self) -> None:
        self._entries: dict[int, TemplateEntry] = {}

    def observe(self, match: TemplateMatch, now_s: float, count: int = 1) -> TemplateRecord | None:
        """Count `count` lines of `match`'s template; a record to publish when its id is new.

        `count` > 1 equals that many calls (the columnar parser counts a message's lines per
        template first): the record of a new id still says count 1, as the first call would."""
        entry = self._entries.get(match.template_id)
        if entry is not None:
            entry.count += count
            return None
        entry = TemplateEntry(match.template, now_s, 1, match.replaces_id)
        self._entries[match.template_id] = entry
        record = self._record(match.template_id, entry, oov=match.oov)
        entry.count += count - 1
        return record

    def load(self, record: TemplateRecord) -> None:
        """Adopt a record read back from the topic (restart); keeps the earliest first_seen."""
        entry = self._entries.get(record.template_id)
        if entry is None or record.first_seen < entry.first_seen:
            self._entries[record.template_id] = TemplateEntry(
                record.template, record.first_seen, record.count, record.replaces_id
            )

    def records(self) -> list[TemplateRecord]:
        return [self._record(tid, e, oov=False) for tid, e in self._entries.items()]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tid: object) -> bool:
        return tid in self._entries

    @staticmethod
    def _record(tid: int, entry: TemplateEntry, oov: bool) -> TemplateRecord:
        return TemplateRecord(tid, entry.template, entry.first_seen, entry.count, entry.replaces_id, oov)
