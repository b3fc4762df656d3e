"""Templates: stable ids, masking, exact cache vs plain Drain3, modes, JSON state, registry."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from drain3 import TemplateMiner as Drain3Miner

from pipeline.errors import ConfigError, DataError
from pipeline.templates import (
    Change,
    DrainConfig,
    MaskingConfig,
    MinerMode,
    TemplateMiner,
    TemplateRegistry,
    template_id,
)

LINES = [
    "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
    "BLOCK* NameSystem.allocateBlock: /mnt/hadoop/mapred/system/job_200811092030_0001/job.jar. blk_-16",
    "Receiving block blk_7503483334202473044 src: /10.251.71.16:51590 dest: /10.251.71.16:50010",
    "PacketResponder 1 for block blk_-1608999687919862906 terminating",
    "PacketResponder 2 for block blk_7503483334202473044 terminating",
    "Received block blk_-1608999687919862906 of size 91178 from /10.250.10.6",
    "Received block blk_-1608999687919862906 of size 67108864 from /10.250.19.102",
    "PacketResponder 0 for block blk_3 Interrupted.",
    "Verification succeeded for blk_-4980916519894289629",
    "Verification succeeded for blk_123",
    "writeBlock blk_1 received exception java.io.IOException: Could not read from stream",
    "writeBlock blk_2 received exception java.io.IOException: Connection reset by peer",
    "Deleting block blk_-1 file /mnt/hadoop/dfs/data/current/subdir31/blk_-1",
    "Deleting block blk_5 file /mnt/hadoop/dfs/data/current/subdir8/blk_5",
    "PacketResponder 1 for block blk_-99 terminating",
    "Changing block file offset of block blk_1 from 0x1f to 12 meta file offset to 7",
    "",
    "odd    spacing\tand tabs 12",
]


def _reference(expected_text: str) -> int:
    digest = hashlib.blake2b(expected_text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 12


@pytest.mark.parametrize("text", ["Receiving block <BLK> src: /<IP> dest: /<IP>", "", "é <*>"])
def test_template_id_contract(text: str) -> None:
    tid = template_id(text)
    assert 0 < tid < 2**52
    assert tid == (_reference(text) or 1)
    assert template_id(text) == tid


@pytest.mark.parametrize(
    ("content", "masked"),
    [
        (LINES[0], "Receiving block <BLK> src: /<IP> dest: /<IP>"),
        (LINES[1], "BLOCK* NameSystem.allocateBlock: <PATH> <BLK>"),
        ("Changing offset 0x1f to -12 at v2", "Changing offset <HEX> to <NUM> at v2"),
        ("  padded   line  ", "padded line"),
    ],
)
def test_default_masking(content: str, masked: str) -> None:
    assert TemplateMiner().mask(content) == masked


@pytest.mark.parametrize("token_local", [True, False])
def test_token_local_masking_equals_drain3_masking(token_local: bool) -> None:
    config = DrainConfig(masking=MaskingConfig(MaskingConfig().rules, token_local))
    masker = Drain3Miner(config=config.to_drain3()).masker
    miner = TemplateMiner(config)
    for line in LINES:
        assert miner.mask(line) == " ".join(masker.mask(line).split())


def _drain3_run(config: DrainConfig, contents: list[str]) -> tuple[list[int], dict[int, str]]:
    plain = Drain3Miner(config=config.to_drain3())
    ids = [plain.add_log_message(c)["cluster_id"] for c in contents]
    return ids, {c.cluster_id: c.get_template() for c in plain.drain.clusters}


def _our_run(miner: TemplateMiner, contents: list[str]) -> list[int]:
    return [miner.learn(c).cluster_id for c in contents]


@pytest.mark.parametrize("sim_th", [0.4, 0.85])
def test_cache_gives_exactly_plain_drain3(sim_th: float) -> None:
    contents = LINES * 3 + list(reversed(LINES))
    config = DrainConfig(sim_th=sim_th)
    ids, templates = _drain3_run(config, contents)
    miner = TemplateMiner(config)
    assert _our_run(miner, contents) == ids
    assert {cid: miner.template_of_cluster(cid) for cid in templates} == templates
    assert miner.cache_hits > 0
    assert sum(miner.cluster_sizes().values()) == len(contents)


def test_cache_exact_on_real_hdfs(data_dir: Path) -> None:
    from pipeline.datasets.loghub import hdfs_lines
    from pipeline.formats import HDFS

    contents = [HDFS.parse_line(line).content for line in hdfs_lines(data_dir)[:20000]]
    ids, templates = _drain3_run(DrainConfig(), contents)
    miner = TemplateMiner()
    assert _our_run(miner, contents) == ids
    assert {cid: miner.template_of_cluster(cid) for cid in templates} == templates


def test_ids_are_stable_across_miners_and_orders() -> None:
    a, b = TemplateMiner(), TemplateMiner()
    _our_run(a, LINES)
    _our_run(b, list(reversed(LINES)))
    assert a.templates() == b.templates()
    assert a.learn(LINES[0]).template_id == template_id("Receiving block <BLK> src: /<IP> dest: /<IP>")


def test_learn_reports_changes_and_replaced_id() -> None:
    miner = TemplateMiner(DrainConfig(sim_th=0.5))
    first = miner.learn("Deleting block blk_1 file x")
    assert first.change is Change.CREATED
    same = miner.learn("Deleting block blk_2 file x")
    assert same.change is Change.NONE and same.template_id == first.template_id
    changed = miner.learn("Deleting block blk_3 file y")
    assert changed.change is Change.CHANGED
    assert changed.template == "Deleting block <BLK> file <*>"
    assert changed.replaces_id == first.template_id


def test_match_mode_and_oov() -> None:
    miner = TemplateMiner()
    _our_run(miner, LINES)
    miner.freeze()
    known = miner.match("Verification succeeded for blk_77")
    assert not known.oov and known.template == "Verification succeeded for <BLK>"
    unknown = miner.process("Totally new shape 12")
    assert unknown.oov and unknown.template == "Totally new shape <NUM>"
    assert unknown.template_id == template_id("Totally new shape <NUM>")
    assert miner.process("Totally new shape 13") == unknown  # cached, still not learned
    assert template_id("Totally new shape <NUM>") not in miner.templates()
    with pytest.raises(ConfigError, match="match mode"):
        miner.learn("x")


def test_save_load_round_trip_continues_identically() -> None:
    miner = TemplateMiner(DrainConfig(sim_th=0.5))
    _our_run(miner, LINES[:10])
    state = miner.save_state()
    assert orjson.loads(state)["format"] == "logad-templates/1"
    restored = TemplateMiner.load_state(state)
    assert restored.config == miner.config
    assert restored.templates() == miner.templates()
    assert restored.cluster_sizes() == miner.cluster_sizes()
    rest = LINES[10:] + LINES
    assert [m.template_id for m in map(restored.learn, rest)] == [
        m.template_id for m in map(miner.learn, rest)
    ]
    assert restored.save_state() == miner.save_state()


def test_load_state_in_match_mode() -> None:
    miner = TemplateMiner()
    _our_run(miner, LINES)
    miner.freeze()
    restored = TemplateMiner.load_state(miner.save_state())
    assert restored.mode is MinerMode.MATCH
    assert restored.match(LINES[0]).template == miner.match(LINES[0]).template


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[1,2]", b'{"format": "other"}', b'{"format": "logad-templates/1", "config": {}}'],
)
def test_load_state_rejects_bad_bytes(data: bytes) -> None:
    with pytest.raises(DataError, match="load_state"):
        TemplateMiner.load_state(data)


def test_masking_config_from_dicts() -> None:
    config = MaskingConfig.from_dicts([{"name": "UUID", "pattern": r"[0-9a-f]{8}-[0-9a-f-]{27}"}])
    assert config.rules[0].name == "UUID" and not config.token_local
    miner = TemplateMiner(DrainConfig(masking=config))
    assert miner.mask("job 123e4567-e89b-12d3-a456-426614174000 done") == "job <UUID> done"
    with pytest.raises(ConfigError, match="name"):
        MaskingConfig.from_dicts([{"pattern": "x"}])


def test_registry_records_new_ids_once_and_counts() -> None:
    miner, registry = TemplateMiner(), TemplateRegistry()
    published = [registry.observe(miner.learn(line), now_s=100.0 + i) for i, line in enumerate(LINES[:3])]
    assert [r is not None for r in published] == [True, True, False]
    first = published[0]
    assert first is not None and first.first_seen == 100.0 and first.count == 1
    counts = {r.template_id: r.count for r in registry.records()}
    assert counts[first.template_id] == 2
    registry.load(first.__class__(first.template_id, first.template, 50.0, 9))
    assert {r.template_id: r.first_seen for r in registry.records()}[first.template_id] == 50.0
    assert len(registry) == 2 and first.template_id in registry


def test_registry_observe_with_a_count_equals_that_many_observes() -> None:
    match = TemplateMiner().learn(LINES[0])
    one_by_one, counted = TemplateRegistry(), TemplateRegistry()
    first, *rest = [one_by_one.observe(match, now_s=7.0) for _ in range(5)]
    assert first is not None and first.count == 1 and rest == [None] * 4
    assert counted.observe(match, now_s=7.0, count=5) == first  # the new id's record says count 1
    assert counted.observe(match, now_s=8.0, count=2) is None
    one_by_one.observe(match, now_s=8.0)
    one_by_one.observe(match, now_s=8.0)
    assert counted.records() == one_by_one.records()


def test_from_templates_gives_the_mined_ids_on_real_hdfs(data_dir: Path) -> None:
    from pipeline.datasets.loghub import hdfs_lines
    from pipeline.formats import HDFS

    lines = hdfs_lines(data_dir)[:20000]
    mined = TemplateMiner()
    for line in lines:
        mined.learn(HDFS.template_text(HDFS.parse_line(line)))
    mined.freeze()
    rebuilt = TemplateMiner.from_templates(reversed(list(mined.templates().values())))
    assert rebuilt.templates() == mined.templates() and rebuilt.mode is MinerMode.MATCH
    assert rebuilt.unmatched(mined.templates().values()) == []
    for line in lines:
        text = HDFS.template_text(HDFS.parse_line(line))
        assert rebuilt.match(text).template_id == mined.match(text).template_id, text
    restored = TemplateMiner.load_state(rebuilt.save_state())
    assert restored.match(LINES[0]).template_id == rebuilt.match(LINES[0]).template_id


def test_from_templates_is_order_independent_and_reports_unmatched() -> None:
    texts = ["Verification succeeded for <BLK>", "PacketResponder <NUM> for block <BLK> terminating"]
    a, b = TemplateMiner.from_templates(texts), TemplateMiner.from_templates(texts[::-1])
    assert a.save_state() == b.save_state()
    assert a.unmatched([*texts, "never  seen   spacing"]) == ["never  seen   spacing"]
