"""Synthetic HDFS logs: seeded, HDFS_v1's format, lifecycles of normal blocks, labelled anomalies,
and replays of a log with fresh block ids."""

from __future__ import annotations

import argparse
import gzip
import re
from collections import Counter

import pytest

from pipeline.commands import synthetic as command
from pipeline.datasets.hdfs_lifecycle import ANOMALY_KINDS
from pipeline.datasets.loghub import read_abnormal_blocks
from pipeline.datasets.synthetic import (
    BLOCK_PATTERN,
    SyntheticConfig,
    SyntheticHdfs,
    block_name,
    generate_hdfs,
    repeat_with_fresh_blocks,
    write_labels,
)
from pipeline.errors import ConfigError
from pipeline.formats import HDFS
from pipeline.settings import Settings

# loghub's HDFS templates as content regexes -> DeepLog event numbers (written here independently of
# the generator, so the tests check its output against HDFS_v1's own event types).
EVENTS = [
    (r"^Verification succeeded for blk_\S+$", 2),
    (r"^\S+ Served block blk_\S+ to /\S+$", 3),
    (r"^\S+:Got exception while serving blk_\S+ to /\S+$", 4),
    (r"^Receiving block blk_\S+ src: /\S+ dest: /\S+$", 5),
    (r"^Received block blk_\S+ src: /\S+ dest: /\S+ of size \d+$", 6),
    (r"^writeBlock blk_\S+ received exception .+$", 7),
    (r"^PacketResponder \d+ for block blk_\S+ Interrupted\.$", 8),
    (r"^Received block blk_\S+ of size \d+ from /\S+$", 9),
    (r"^PacketResponder blk_\S+ \d+ Exception .+$", 10),
    (r"^PacketResponder \d+ for block blk_\S+ terminating$", 11),
    (r"^Receiving empty packet for block blk_\S+$", 13),
    (r"^Exception in receiveBlock for block blk_\S+ .+$", 14),
    (r"^\S+:Transmitted block blk_\S+ to /\S+$", 16),
    (r"^\S+ Starting thread to transfer block blk_\S+ to \S+$", 18),
    (r"^Unexpected error trying to delete block blk_\S+\. BlockInfo not found in volumeMap\.$", 20),
    (r"^Deleting block blk_\S+ file \S+$", 21),
    (r"^BLOCK\* NameSystem\.allocateBlock: \S+ blk_\S+$", 22),
    (r"^BLOCK\* NameSystem\.delete: blk_\S+ is added to invalidSet of \S+$", 23),
    (r"^BLOCK\* ask \S+ to replicate blk_\S+ to datanode\(s\) \S+$", 25),
    (r"^BLOCK\* NameSystem\.addStoredBlock: blockMap updated: \S+ is added to blk_\S+ size \d+$", 26),
    (
        r"^BLOCK\* NameSystem\.addStoredBlock: addStoredBlock request received for "
        r".+ not belong to any file\.$",
        28,
    ),
    (r"^PendingReplicationMonitor timed out block blk_\S+$", 29),
]
NEVER_NORMAL = {7, 8, 10, 13, 14, 20, 28, 29}
CREATION = r"(?=(?:\S+ ){4})(?=(?:[^2]\S* )*22 )(?:(?:22|5) ){4}"  # 22 and three 5s, any order
WRITE = r"(?:(?:11 9 ){3}(?:26 ){3}|(?:26 ){3}(?:11 9 ){3})"
NORMAL_LIFECYCLE = re.compile(
    rf"^{CREATION}{WRITE}(?:25 18 5 6 16 26 )?(?:[234] )*(?:(?:23 ){{3}}(?:21 ){{3}})?$"
)


def event_number(content: str) -> int:
    matches = [n for pattern, n in EVENTS if re.match(pattern, content)]
    assert len(matches) == 1, f"{content!r} matches {matches}"
    return matches[0]


def blocks_of(lines: list[str]) -> dict[str, list[int]]:
    blocks: dict[str, list[int]] = {}
    for line in lines:
        record = HDFS.parse_line(line)
        assert len(record.session_keys) == 1, line
        blocks.setdefault(record.session_keys[0], []).append(event_number(record.content))
    return blocks


def lifecycle_text(events: list[int]) -> str:
    return "".join(f"{e} " for e in events)


def generate(**changes: object) -> tuple[list[str], SyntheticHdfs]:
    run = SyntheticHdfs(SyntheticConfig(**{"lines": 3000, "anomaly_rate": 0.2, "seed": 1, **changes}))
    return list(run), run


def test_same_seed_same_output_other_seed_other_output() -> None:
    lines, run = generate()
    again, run_again = generate()
    other, _ = generate(seed=2)
    assert lines == again and run.labels == run_again.labels
    assert lines != other
    assert run.lines_written == len(lines) <= 3000
    assert len(lines) > 3000 - 60  # short by less than one block


def test_lines_have_hdfs_format_and_time_goes_forward() -> None:
    lines, _ = generate()
    stamps = [HDFS.parse_line(line).timestamp for line in lines]
    assert all(s is not None for s in stamps)
    assert stamps == sorted(stamps)
    assert stamps[0] == 1226262918.0  # HDFS_v1's first second
    head = HDFS.parse_line(lines[0])
    assert head.level in {"INFO", "WARN"} and head.component.startswith("dfs.")
    assert re.fullmatch(r"\d{6} \d{6} \d+ (INFO|WARN) dfs\.[\w$]+: .+", lines[0])


def test_normal_blocks_follow_the_lifecycle_and_anomalies_do_not() -> None:
    lines, run = generate(lines=6000)
    blocks = blocks_of(lines)
    assert set(run.labels) <= set(blocks) and len(blocks) == run.blocks
    normal = {b: e for b, e in blocks.items() if b not in run.labels}
    assert len(normal) > 100
    for block, events in normal.items():
        assert NORMAL_LIFECYCLE.match(lifecycle_text(events)), (block, events)
        assert not NEVER_NORMAL & set(events)
    for block, kind in run.labels.items():
        assert not NORMAL_LIFECYCLE.match(lifecycle_text(blocks[block])), (kind, blocks[block])
    # Optional steps of real normal blocks occur too: reads, failed reads, verification, no deletion.
    seen = Counter(e for events in normal.values() for e in set(events))
    assert seen[3] and seen[4] and seen[2] and seen[21] < len(normal)


@pytest.mark.parametrize(
    ("kind", "signature"),
    [
        ("unseen_event", lambda ev: bool({20, 28, 29} & set(ev))),
        ("exception", lambda ev: bool({7, 8, 10, 13, 14} & set(ev))),
        ("missing_steps", lambda ev: Counter(ev)[11] < 3 or Counter(ev)[26] - Counter(ev)[25] < 3),
        (
            "out_of_order",
            lambda ev: ev.index(26) < ev.index(22) or (23 in ev and ev.index(23) < ev.index(26)),
        ),
    ],
)
def test_each_anomaly_kind_is_labelled_with_its_signature(kind: str, signature: object) -> None:
    lines, run = generate(anomaly_rate=1.0, anomaly_kinds=(kind,))
    blocks = blocks_of(lines)
    assert run.labels and set(run.labels) == set(blocks)
    assert set(run.labels.values()) == {kind}
    assert all(signature(events) for events in blocks.values())  # type: ignore[operator]


def test_no_anomalies_at_rate_zero_and_every_kind_at_a_high_rate() -> None:
    _, clean = generate(anomaly_rate=0.0)
    assert clean.labels == {}
    _, mixed = generate(anomaly_rate=0.5, lines=8000)
    assert set(mixed.labels.values()) == set(ANOMALY_KINDS)


def test_blocks_interleave() -> None:
    lines, _ = generate(anomaly_rate=0.0, concurrent_blocks=16)
    first_block = HDFS.parse_line(lines[0]).session_keys[0]
    end = max(i for i, line in enumerate(lines) if first_block in line)
    others = {HDFS.parse_line(line).session_keys[0] for line in lines[:end]}
    assert len(others) > 10


def test_fresh_block_ids_change_only_the_ids() -> None:
    lines, run = generate()
    fresh, fresh_run = generate(fresh_block_ids=True)
    replay, _ = generate(block_id_salt=fresh_run.block_id_salt)
    mask = [BLOCK_PATTERN.sub("blk", line) for line in lines]
    assert [BLOCK_PATTERN.sub("blk", line) for line in fresh] == mask
    assert not set(run.labels) & set(fresh_run.labels)
    assert replay == fresh


def test_block_names_are_distinct_and_look_like_hdfs_ids() -> None:
    names = [block_name(n, salt=12345) for n in range(20_000)]
    assert len(set(names)) == len(names)
    assert all(BLOCK_PATTERN.fullmatch(n) for n in names)
    assert any(n.startswith("blk_-") for n in names) and any(not n.startswith("blk_-") for n in names)


def test_generate_fills_the_given_labels_and_they_round_trip_as_csv(tmp_path) -> None:
    labels: dict[str, str] = {}
    lines = list(generate_hdfs(SyntheticConfig(lines=2000, anomaly_rate=0.3, seed=4), labels))
    assert labels and all(any(b in line for line in lines) for b in labels)
    path = tmp_path / "abnormal.csv"
    assert write_labels(path, labels) == len(labels)
    assert read_abnormal_blocks(path) == frozenset(labels)


@pytest.mark.parametrize(
    "changes", [{"lines": -1}, {"anomaly_rate": 1.5}, {"concurrent_blocks": 0}, {"anomaly_kinds": ("oops",)}]
)
def test_bad_config_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="synthetic log config"):
        SyntheticConfig(**changes)  # type: ignore[arg-type]


REAL = [
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 src: "
    "/10.250.19.102:54106 dest: /10.250.19.102:50010",
    "081109 203518 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /mnt/job.jar. "
    "blk_-1608999687919862906",
    "081109 203520 142 INFO dfs.DataNode$DataXceiver: Receiving block blk_7503483334202473044 src: "
    "/10.251.215.16:55695 dest: /10.251.215.16:50010",
    "081109 203521 19 INFO dfs.FSNamesystem: BLOCK* ask 10.250.14.224:50010 to replicate "
    "blk_-1608999687919862906 "
    "to datanode(s) 10.251.215.16:50010",
]


def test_repeat_with_fresh_blocks_rewrites_ids_consistently_and_moves_time_on() -> None:
    stream, mapping = repeat_with_fresh_blocks(REAL, repetitions=3, seed=9)
    out = list(stream)
    assert len(out) == 3 * len(REAL)
    for rep in range(3):
        chunk = out[rep * len(REAL) : (rep + 1) * len(REAL)]
        assert [BLOCK_PATTERN.sub("blk", line[13:]) for line in chunk] == [
            BLOCK_PATTERN.sub("blk", line[13:]) for line in REAL
        ]
        assert mapping.new_id("blk_-1608999687919862906", rep) in chunk[0]
        assert mapping.new_id("blk_-1608999687919862906", rep) in chunk[3]  # same block, same new id
    ids = {b for line in out for b in BLOCK_PATTERN.findall(line)}
    assert len(ids) == 6 and not ids & {"blk_-1608999687919862906", "blk_7503483334202473044"}
    assert mapping.relabel(["blk_7503483334202473044"], 3) == {
        b for line in out[2::4] for b in BLOCK_PATTERN.findall(line)
    }
    stamps = [HDFS.parse_line(line).timestamp for line in out]
    assert stamps == sorted(stamps) and stamps[4] - stamps[0] == 4.0  # span 3 s + 1
    unshifted, _ = repeat_with_fresh_blocks(REAL, repetitions=2, seed=9, shift_time=False)
    assert [line[:13] for line in unshifted] == [line[:13] for line in REAL] * 2


def test_cli_writes_gzip_log_and_labels(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    out, labels = tmp_path / "synthetic.log.gz", tmp_path / "labels.csv"
    args = parser.parse_args(
        [
            *("generate-synthetic", "--lines", "1500", "--anomaly-rate", "0.2", "--seed", "3"),
            *("--out", str(out), "--labels", str(labels)),
        ]
    )
    assert args.handler(args, Settings()) == 0
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        written = fh.read().splitlines()
    expected = SyntheticHdfs(SyntheticConfig(lines=1500, anomaly_rate=0.2, seed=3))
    assert written == list(expected)
    assert read_abnormal_blocks(labels) == frozenset(expected.labels)
