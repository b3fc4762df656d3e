"""The replay format check: a file's first lines against the format the worker parses its source with."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.formats import BGL, HDFS
from pipeline.replay_check import (
    check_sample,
    expected_format,
    run_check,
    source_hint,
    take_sample,
)
from pipeline.settings import Settings
from pipeline.templates import TemplateMiner

HDFS_LINES = [
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 src: "
    "/10.250.19.102:54106 dest: /10.250.19.102:50010",
    "081109 203518 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /mnt/hadoop/mapred/system/"
    "job_200811092030_0001/job.jar. blk_-1608999687919862906",
]
BGL_LINES = [
    "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS "
    "KERNEL INFO instruction cache parity error corrected",
    "KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.32.07.581048 R30-M0-N9-C:J16-U01 "
    "RAS KERNEL FATAL data TLB error interrupt",
]


def test_bgl_lines_fail_the_hdfs_header_and_bgl_fits_best() -> None:
    check = check_sample(BGL_LINES * 50, HDFS)
    assert (check.sample_size, check.failed, check.mostly_fails) == (100, 100, True)
    assert check.best is not None and check.best.name == "bgl"  # generic also matches all: bgl ranks first
    assert [(f.name, f.matched) for f in check.fits] == [("bgl", 100), ("generic", 100), ("hdfs", 0)]


def test_lines_of_the_expected_format_pass() -> None:
    check = check_sample(HDFS_LINES * 10, HDFS)
    assert (check.failed, check.mostly_fails, check.best) == (0, False, None)


@pytest.mark.parametrize(("bad", "good", "warns"), [(50, 50, False), (51, 49, True), (0, 0, False)])
def test_the_warning_needs_more_than_half_failing(bad: int, good: int, warns: bool) -> None:
    assert check_sample(["no header here"] * bad + HDFS_LINES[:1] * good, HDFS).mostly_fails is warns


def test_take_sample_skips_empty_lines_and_returns_what_it_read() -> None:
    lines = iter([b"\n", b"one\r\n", b"  \n", b"bad \xff two\n", b"three\n", b"four\n"])
    read, sample = take_sample(lines, size=3)
    assert sample == ["one", "bad \ufffd two", "three"]
    assert read == [b"\n", b"one\r\n", b"  \n", b"bad \xff two\n", b"three\n"]
    assert list(lines) == [b"four\n"]  # the caller replays `read` and then the rest


def _publish(repo: Path, model: str, version: int, log_format: str | None) -> None:
    """A servable version as `newest_valid_version` sees one: model.pt, the parser state and the
    metadata its kind needs, each file with its sha256."""
    folder = repo / model / str(version)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"weights")
    miner = TemplateMiner()
    miner.learn("Receiving block blk_1 src: /10.0.0.1")
    miner.freeze()
    templates = miner.save_state()
    (folder / "templates.json").write_bytes(templates)
    metadata: dict[str, object] = {
        "sha256": hashlib.sha256(b"weights").hexdigest(),
        "files": {"templates.json": hashlib.sha256(templates).hexdigest()},
    }
    if model == "protosiamese":
        metadata |= {"window": {"size_s": 300.0, "step_s": 300.0}, "class_names": ["normal", "KERNDTLB"]}
    if log_format is not None:
        metadata["log_format"] = log_format
    (folder / "metadata.json").write_text(json.dumps(metadata))


def test_expected_format_follows_the_model_that_parses_the_source(tmp_path: Path) -> None:
    _publish(tmp_path, "lama", 1, "hdfs")
    _publish(tmp_path, "protosiamese", 2, "bgl")
    settings = Settings(model_repo=tmp_path, window_sources="bgl")
    bgl = expected_format(settings, "bgl")
    assert bgl.log_format is BGL and "window model protosiamese version 2" in bgl.why
    app = expected_format(settings, "myapp")
    assert app.log_format is HDFS and "detection model lama version 1" in app.why


def test_expected_format_without_a_published_version(tmp_path: Path) -> None:
    _publish(tmp_path, "deeplog", 1, None)  # published before log_format was recorded: HDFS
    assert expected_format(Settings(model_repo=tmp_path, detection_model="deeplog"), "x").log_format is HDFS
    settings = Settings(model_repo=tmp_path)  # lama: nothing published
    assert expected_format(settings, "bgl").log_format is BGL  # the format named like the source
    unknown = expected_format(settings, "myapp")
    assert unknown.log_format is None and "no built-in format named 'myapp'" in unknown.why
    check, message = run_check(settings, "myapp", BGL_LINES)
    assert check is None and message.startswith("format check skipped: no version of the detection model")


def test_the_hint_names_a_source_only_when_the_deployment_parses_that_format(tmp_path: Path) -> None:
    _publish(tmp_path, "lama", 1, "hdfs")
    _publish(tmp_path, "protosiamese", 1, "bgl")
    assert source_hint(Settings(model_repo=tmp_path, window_sources="bluegene"), "bgl") == "--source bluegene"
    hint = source_hint(Settings(model_repo=tmp_path), "bgl")  # no window sources: everything is HDFS
    assert hint.startswith("no source is parsed as bgl here") and "LOGAD_WINDOW_SOURCES" in hint


def test_the_warning_names_share_format_and_what_fits(tmp_path: Path) -> None:
    _publish(tmp_path, "lama", 3, "hdfs")
    _publish(tmp_path, "protosiamese", 1, "bgl")
    settings = Settings(model_repo=tmp_path, window_sources="bgl")
    check, message = run_check(settings, "hdfs", BGL_LINES * 100)
    assert check is not None and check.mostly_fails
    assert message.startswith("200 of the first 200 lines (100%) lack the hdfs header that source 'hdfs'")
    assert "detection model lama version 3" in message
    assert message.endswith("Best fit: the bgl format (100% of the sample): --source bgl.")
    assert run_check(settings, "bgl", BGL_LINES * 100) == (check_sample(BGL_LINES * 100, BGL), "")


def test_replay_with_the_wrong_source_warns_and_strict_produces_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: BGL lines replayed as source hdfs. --strict exits before any Kafka client."""
    from pipeline.cli import main

    data = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    bgl = data / "bgl" / "BGL_2k.log"
    if not bgl.is_file():
        bgl = tmp_path / "BGL_sample.log"
        bgl.write_text("\n".join(BGL_LINES * 150) + "\n")
    argv = ["--bootstrap-servers", "127.0.0.1:1", "--model-repo", str(tmp_path / "repo")]
    assert main([*argv, "replay", str(bgl), "--source", "hdfs", "--strict"]) == 1
    err = capsys.readouterr().err
    assert "logad replay: warning: 200 of the first 200 lines (100%) lack the hdfs header" in err
    assert "Best fit: the bgl format (100% of the sample): --source bgl." in err
    assert "nothing produced (--strict)" in err


def test_join_continuations_keeps_records_whole() -> None:
    from pipeline.format_profiles import profile_from_table
    from pipeline.replay_check import join_continuations

    fmt = profile_from_table("x", {"header": "<Level>: <Content>"}).log_format
    lines = [b"orphan", b"INFO: a", b"  at x\r\n", b"  at y", b"WARN: b", b"INFO: c\n"]
    assert list(join_continuations(lines, fmt)) == [
        b"orphan",
        b"INFO: a\n  at x\n  at y",
        b"WARN: b",
        b"INFO: c",
    ]
    # A record stops at the worker's line limit, so a file of another format cannot become one message.
    assert list(join_continuations([b"INFO: a", b"1", b"2", b"3"], fmt, max_lines=2)) == [
        b"INFO: a\n1",
        b"2\n3",
    ]
