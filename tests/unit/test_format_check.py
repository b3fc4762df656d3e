"""`logad formats check`: unmatched lines with their numbers, templates with counts and examples,
session keys, the timestamp range, and the exit code against the failed-lines threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.format_check import check_lines, numbered_lines
from pipeline.format_profiles import profile_from_table

PROFILE = """
[profiles.shop]
header = '<Timestamp> <Service>\\[<Order>\\] <Level>: <Content>'
timestamp = { fields = ["Timestamp"], format = "iso" }
session = { field = "Order" }
"""


def _lines() -> list[str]:
    lines = []
    for i in range(6):
        lines.append(f"2026-03-01T12:00:0{i}Z checkout[ORD-{i % 2}] INFO: created order for user {100 + i}")
        lines.append(f"2026-03-01T12:00:0{i}Z checkout[ORD-{i % 2}] INFO: paid {i}.50 EUR")
    lines.insert(3, "    at Pay.charge(Pay.java:42)")  # continues line 3's record
    lines.insert(0, "garbage before any record")
    lines.insert(5, "")  # blank lines are not counted, but line numbers are the file's
    return lines


def test_report_counts_templates_sessions_and_times() -> None:
    profile = profile_from_table(
        "shop",
        {
            "header": r"<Timestamp> <Service>\[<Order>\] <Level>: <Content>",
            "timestamp": {"fields": ["Timestamp"], "format": "iso"},
            "session": {"field": "Order"},
        },
    )
    report = check_lines(numbered_lines(_lines()), profile)
    assert (report.lines, report.records, report.continuation_lines, report.dead_count) == (14, 12, 1, 1)
    assert report.failed == (
        (1, "garbage before any record", False),
        (5, "    at Pay.charge(Pay.java:42)", True),
    )
    assert report.failed_fraction == pytest.approx(2 / 14)
    assert dict(report.session_keys) == {"ORD-0": 6, "ORD-1": 6} and report.session_count == 2
    by_text = {t.template: t for t in report.templates}
    assert by_text["created order for user <NUM>"].count == 5
    paid = by_text["paid <NUM>.<NUM> EUR"]
    assert paid.count == 6 and paid.example_line == 3
    # The record on line 4 holds the continuation line: its own template, its example both lines.
    (joined,) = [t for t in report.templates if "at" in t.template.split()]
    assert joined.count == 1 and joined.example_line == 4 and "\n    at Pay" in joined.example
    assert report.last_timestamp is not None and report.first_timestamp is not None
    assert report.last_timestamp - report.first_timestamp == 5.0
    assert dict(report.example_fields)["order"] == "ORD-0"


def test_limit_counts_non_empty_lines() -> None:
    assert [n for n, _ in numbered_lines(["a", "", "b", "c"], limit=2)] == [1, 3]


def test_command_exit_code_follows_the_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profiles = tmp_path / "formats.toml"
    profiles.write_text(PROFILE)
    log = tmp_path / "shop.log"
    log.write_text("\n".join(_lines()) + "\n")
    spec = f"{profiles}:shop"
    assert main(["formats", "check", spec, str(log), "--max-failed-fraction", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "line 1 (dead): garbage before any record" in out and "2 keys" in out
    assert main(["formats", "check", spec, str(log), "--max-failed-fraction", "0.1"]) == 1
    assert "lack the shop header" in capsys.readouterr().err
    assert main(["formats", "check", spec, str(log), "--limit", "3", "--json"]) == 1  # 1 of 3 > 0.05
    report = json.loads(capsys.readouterr().out)
    assert report["lines"] == 3 and report["failed"][0]["line"] == 1 and report["ok"] is False
    assert main(["formats", "check", "hdfs", str(log)]) == 1  # not HDFS lines at all


def test_generated_shop_log_passes_its_example_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, labels = tmp_path / "shop.log", tmp_path / "declined.csv"
    args = ["generate-shop", "--orders", "60", "--declined-share", "0.2", "--seed", "3"]
    assert main([*args, "--out", str(log), "--labels", str(labels)]) == 0
    declined = labels.read_text().splitlines()
    assert declined and all(line.startswith("ORD-") and line.endswith(",declined") for line in declined)
    example = Path(__file__).resolve().parents[2] / "deploy" / "formats" / "example.toml"
    capsys.readouterr()
    assert (
        main(["formats", "check", f"{example}:shop", str(log), "--json", "--max-failed-fraction", "0.2"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["session_count"] == 60 and report["dead_count"] == 0
    assert report["continuation_lines"] == 2 * len(declined)  # two trace lines per declined payment
