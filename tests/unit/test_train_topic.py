"""The parser a `--from-topic` version ships: rebuilt from the events' texts, or an existing version's."""

from pathlib import Path

import pytest

from pipeline.commands.train_topic import _rebuilt_parser, _version_parser
from pipeline.errors import ConfigError
from pipeline.models.next_event import default_config
from pipeline.settings import Settings
from pipeline.templates import TemplateMiner, template_id
from pipeline.training.next_event import TrainConfig, train_next_event
from pipeline.training.raw_logs import publish_trained

LINES = ["Verification succeeded for blk_1", "PacketResponder 1 for block blk_2 terminating"]


def _published_miner(repo: Path) -> TemplateMiner:
    miner = TemplateMiner()
    for line in LINES:
        miner.learn(line)
    miner.freeze()
    config = TrainConfig(epochs=1, batch_size=8, top_k_candidates=(1,))
    trained = train_next_event(
        "deeplog", default_config("deeplog", 4), [(1, 2, 3)] * 4, config, progress=False
    )
    publish_trained(repo, trained, miner, "hdfs", {})
    return miner


def test_templates_from_a_version_must_cover_the_events(tmp_path: Path) -> None:
    miner = _published_miner(tmp_path)
    settings = Settings(model_repo=tmp_path)
    got, log_format, source, profile = _version_parser("deeplog", miner.templates(), settings)
    assert got.templates() == miner.templates() and log_format == "hdfs" and source.endswith("(exact)")
    assert profile is None  # a built-in format: the name is enough
    extra = {**miner.templates(), template_id("Deleting block <BLK>"): "Deleting block <BLK>"}
    with pytest.raises(ConfigError, match="1 template ids of the events are not in its parser"):
        _version_parser("deeplog:1", extra, settings)
    with pytest.raises(ConfigError, match="MODEL"):
        _version_parser("deeplog:one", extra, settings)


def test_rebuilt_parser_matches_the_lines_as_the_original() -> None:
    original = TemplateMiner()
    for line in LINES:
        original.learn(line)
    miner, log_format, _ = _rebuilt_parser(original.templates(), "hdfs")
    assert log_format == "hdfs"
    assert [miner.match(x).template_id for x in LINES] == [original.match(x).template_id for x in LINES]
