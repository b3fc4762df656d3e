"""The logad parser mode: token-level masks, same-length template merging, the miner's mode switch."""

from __future__ import annotations

import pytest
from drain3.drain import Drain, LogCluster

from pipeline.errors import ConfigError
from pipeline.template_masks import collapse_repeats, mask_token
from pipeline.template_merge import TemplateMerger, ValueAwareDrain, mergeable
from pipeline.templates import Change, DrainConfig, MinerMode, ParserMode, TemplateMiner


@pytest.mark.parametrize(
    ("token", "masked"),
    [
        ("HWID=1973)", "HWID=<NUM>)"),  # key=value: the key stays
        ("(TID", "(TID"),
        ("43)", "<NUM>)"),
        ("/10.250.19.102:54106", "<IP>"),
        ("[10.1.2.3]", "[<IP>]"),
        ("10.1.1.1,10.2.2.2", "<IP>"),  # a list of values is one value
        ("Interconnect-1T:00:1:0", "Interconnect-<NUM>:<NUM>:<NUM>:<NUM>"),  # the word before stays
        ("node-246", "node-<NUM>"),
        ("core.2275.", "core.<NUM>."),  # a full stop is no part of the value
        ("blk_-123", "blk_<NUM>"),  # signed or not: one shape
        ("dcbf.........0", "dcbf.........<NUM>"),
        ("chdir(/scratch/user/tests)", "chdir(<PATH>)"),
        ("a7b3c1d0-1111-2222-3333-444455556666]", "<UUID>]"),
        ("113d3a99c3da401fbd62cc2caa5b96d2", "<HEX>"),
        ("0x1f,", "<HEX>,"),
        ("/mnt/hadoop/dfs/data", "<PATH>"),
        ("hdfs://namenode:9000/user/x", "hdfs://<URL>"),  # the scheme is constant text
        ("12ms", "<NUM>"),
        ("3.5GB", "<NUM>"),
        ("attempt_201706092018_0024_m_000001_1:", "attempt_<NUM>:"),
        ("and/or", "and/or"),
        ("(eadmin1)", "(<NUM>)"),  # a host name with a digit is a value
        ("msgid=<2005.jA9J@eadmin1>,", "msgid=<NUM>,"),  # raw text in angle brackets is no mask
        ("yarn,curi", "yarn,curi"),  # words are Drain's business
        ("[instance:", "[instance:"),
    ],
)
def test_mask_token(token: str, masked: str) -> None:
    assert mask_token(token) == masked


@pytest.mark.parametrize(
    ("tokens", "collapsed"),
    [
        ("delete blk_<NUM> blk_<NUM> blk_<NUM> now", "delete blk_<NUM> now"),
        ("speeds ( <NUM> <NUM> <NUM> )", "speeds ( <NUM> )"),
        ("<NUM> <HEX> <NUM> <HEX>", "<NUM> <HEX> <NUM> <HEX>"),  # only runs of one token
        ("very very long", "very very long"),  # words are not values
    ],
)
def test_collapse_repeats(tokens: str, collapsed: str) -> None:
    assert " ".join(collapse_repeats(tokens.split())) == collapsed


def test_value_lists_of_any_length_share_a_template() -> None:
    miner = TemplateMiner(parser_mode="logad")
    short = miner.learn("ask 10.0.0.1 to delete blk_1 blk_2")
    long = miner.learn("ask 10.0.0.2 to delete blk_3 blk_4 blk_5 blk_6")
    assert short.cluster_id == long.cluster_id and long.template == "ask <IP> to delete blk_<NUM>"


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [
        ("a <NUM> b", "a <HEX> b", True),  # values of two kinds
        ("a id=<NUM> b", "a id=<IP> b", True),  # same text around the values
        ("a <NUM> b", "a <*> b", True),  # the old template already generalised there
        ("VM Paused now", "VM Resumed now", False),  # two words: not a variable by shape
        ("a id=<NUM> b", "a pid=<NUM> b", False),
        ("<NUM> <IP>", "<HEX> <NUM>", False),  # nothing constant in common
    ],
)
def test_mergeable(new: str, old: str, expected: bool) -> None:
    assert mergeable(tuple(new.split()), tuple(old.split())) is expected


@pytest.mark.parametrize(
    ("template", "line", "similarity"),
    [
        ("synchronized to <IP>, stratum <NUM>", "synchronized to LOCAL(<NUM>), stratum <NUM>", 1.0),
        ("took <*> s", "took <NUM> s", 1.0),  # a value under the wildcard
        ("took <*> s", "took long s", 2 / 3),  # a word under the wildcard: Drain3's count
        ("VM Paused now", "VM Resumed now", 2 / 3),  # words must be equal
    ],
)
def test_value_aware_similarity(template: str, line: str, similarity: float) -> None:
    value, _ = ValueAwareDrain().get_seq_distance(template.split(), line.split(), include_params=False)
    assert value == pytest.approx(similarity)


def test_merger_absorbs_a_new_cluster_into_the_oldest_fitting_one() -> None:
    drain = Drain()
    merger = TemplateMerger()
    old = LogCluster(["job", "<NUM>", "done"], 1)
    other = LogCluster(["job", "<NUM>", "failed"], 2)
    drain.id_to_cluster[1], drain.id_to_cluster[2] = old, other
    assert merger.absorb(drain, old) is None and merger.absorb(drain, other) is None
    new = LogCluster(["job", "<HEX>", "done"], 3)
    drain.id_to_cluster[3] = new
    assert merger.absorb(drain, new) is old
    assert old.log_template_tokens == ("job", "<*>", "done") and old.size == 2
    assert drain.id_to_cluster[3] is old and merger.aliases == {3: 1}


LINES = [
    "Took 0.52 seconds to spawn instance 7c8d0a1e-1111-2222-3333-444455556666",
    "Took 1.5 seconds to spawn instance 0b0d0a1e-1111-2222-3333-444455556666",
    "job 0x1f done",
    "job 17 done",  # a new leaf for Drain (another first value kind), merged into `job <HEX> done`
    "job 18 done",
    "VM Paused (Lifecycle Event)",
    "VM Resumed (Lifecycle Event)",  # one word in four differs: two events in logad mode
]


def test_logad_mode_groups_values_and_keeps_words_apart() -> None:
    loghub_settings = DrainConfig(sim_th=0.5)  # the loghub benchmark's threshold; logad raises it to 0.9
    miner = TemplateMiner(loghub_settings, parser_mode="logad")
    matches = [miner.learn(line) for line in LINES]
    assert matches[0].template == "Took <NUM> seconds to spawn instance <UUID>"
    assert matches[1].cluster_id == matches[0].cluster_id and matches[1].change is Change.NONE
    assert matches[3].cluster_id == matches[2].cluster_id and matches[3].change is Change.CHANGED
    assert matches[3].template == "job <*> done" and matches[3].replaces_id == matches[2].template_id
    assert matches[4].cluster_id == matches[2].cluster_id
    assert matches[5].cluster_id != matches[6].cluster_id
    assert sorted(miner.templates().values()) == [
        "Took <NUM> seconds to spawn instance <UUID>",
        "VM Paused (Lifecycle Event)",
        "VM Resumed (Lifecycle Event)",
        "job <*> done",
    ]
    # the same lines in Drain3 mode: Drain3's answer, which merges the two VM events
    drain3 = TemplateMiner(loghub_settings)
    drain3_ids = [drain3.learn(line).cluster_id for line in LINES]
    assert drain3_ids[5] == drain3_ids[6]


def test_logad_state_round_trip_keeps_merged_ids() -> None:
    miner = TemplateMiner(DrainConfig(parser_mode=ParserMode.LOGAD))
    for line in LINES:
        miner.learn(line)
    restored = TemplateMiner.load_state(miner.save_state())
    assert restored.config.parser_mode is ParserMode.LOGAD
    assert restored.templates() == miner.templates()
    restored.freeze()
    assert restored.mode is MinerMode.MATCH
    for line in [*LINES, "job 99 done"]:  # the alias leaf `job <NUM> ...` leads to the merged template
        match = restored.match(line)
        assert not match.oov and match.template_id in miner.templates()


def test_drain3_mode_state_has_no_parser_mode_field() -> None:
    # Drain3-mode state stays byte-compatible with versions published before the logad mode
    assert b"parser_mode" not in TemplateMiner().save_state()
    assert TemplateMiner(parser_mode="drain3").save_state() == TemplateMiner().save_state()


def test_unknown_parser_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"parser mode 'brain'.*choose one of"):
        TemplateMiner(parser_mode="brain")
