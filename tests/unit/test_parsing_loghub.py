"""`logad evaluate parsing-loghub`: settings files, and a run on one loghub-2k system."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipeline.datasets.loghub2k import read_settings
from pipeline.errors import ConfigError
from pipeline.evaluation import parsing_loghub
from pipeline.settings import Settings


def test_read_settings(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        "[Zk]\nlog_format = '<Date> <Level> <Content>'\nregex = ['\\d+']\ndrain_st = 0.4\ndrain_depth = 5\n"
        "[Bare]\nlog_format = '<Content>'\n",
        encoding="utf-8",
    )
    systems = read_settings(path)
    assert list(systems) == ["Zk", "Bare"]
    assert (
        systems["Zk"].regex == ("\\d+",) and systems["Zk"].drain_st == 0.4 and systems["Zk"].drain_depth == 5
    )
    assert systems["Bare"].regex == () and systems["Bare"].drain_st == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[A]\nregex = []\n", "system A.*needs log_format"),
        ("[A]\nlog_format = '<Content>'\nregex = '\\d+'\n", "regex must be a list"),
        ("x = 1\n", "'x' is not a table"),
        ("[A\n", "pass a TOML file"),
    ],
)
def test_bad_settings_name_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        read_settings(path)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parsing_loghub.add_arguments(parser, "parsing-loghub")
    return parser.parse_args(list(argv))


def test_evaluation_on_one_system(data_dir: Path) -> None:
    result = parsing_loghub.run(_args("--systems", "HDFS"), Settings(data_dir=data_dir), "parsing-loghub")
    hdfs = result["systems"]["HDFS"]
    assert hdfs["lines"] == 2000 and hdfs["header_misses"] == 0 and hdfs["truth_templates"] == 14
    assert result["mean_ga"] == hdfs["ga"] and result["drain3_mean_ga"] == hdfs["drain3_ga"]
    assert hdfs["ga"] >= hdfs["drain3_ga"] - 0.01 and hdfs["ga"] > 0.9
    assert 0 < hdfs["pa"] <= 1 and 0 < hdfs["fga"] <= 1 and hdfs["lines_per_s"] > 0
    assert "HDFS" in result["table"] and "mean" in result["table"]


def test_unknown_system_is_refused(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="systems \\['Nope'\\] are not in the settings"):
        parsing_loghub.run(_args("--systems", "Nope"), Settings(data_dir=data_dir), "parsing-loghub")
