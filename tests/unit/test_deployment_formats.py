"""The worker's format per source: a version's stored profile, else its built-in format name; a
source mapped in `LOGAD_FORMATS` parses with that profile (a warning when the model was trained
with another format)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.deployment import SourceParsers, TemplateSet, version_format
from pipeline.errors import ConfigError
from pipeline.format_profiles import load_formats
from pipeline.formats import BGL, HDFS
from pipeline.templates import TemplateMiner

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "formats" / "example.toml"
SHOP_LINE = "2026-03-01T12:11:47.735Z payment[ORD-01010] ERROR: payment declined by bank with code 51"


def test_version_format_prefers_the_stored_profile() -> None:
    shop = load_formats(EXAMPLE).profile("shop")
    assert version_format({"log_format": "shop", "format_profile": shop.to_json()}, "m").name == "shop"
    assert version_format({"log_format": "bgl"}, "m") is BGL
    assert version_format({}, "m") is HDFS  # versions from before log_format was recorded
    with pytest.raises(ConfigError, match="log format 'shop' is not built in"):
        version_format({"log_format": "shop"}, "m")
    with pytest.raises(ConfigError, match="republish the model"):
        version_format({"format_profile": {"name": "shop"}}, "m")


class _Fixed:
    """A TemplateFollower stand-in holding one template set."""

    def __init__(self, deployed: TemplateSet) -> None:
        self.deployed = deployed

    def current(self) -> TemplateSet:
        return self.deployed


def _parsers(trained_with: str) -> SourceParsers:
    catalog = load_formats(EXAMPLE)
    fmt = catalog.profile(trained_with).log_format if trained_with != "hdfs" else HDFS
    miner = TemplateMiner()
    miner.freeze()
    deployed = TemplateSet("m", 3, fmt, miner, {}, None)
    follower = _Fixed(deployed)
    return SourceParsers(follower, follower, frozenset(), 1 << 20, formats=catalog)  # type: ignore[arg-type]


def test_mapped_source_parses_with_its_profile(caplog: pytest.LogCaptureFixture) -> None:
    parsers = _parsers("shop")
    with caplog.at_level(logging.WARNING):
        shop = parsers.columnar_for_source("shop")
        unmapped = parsers.columnar_for_source("other")
    assert shop.format.name == "shop" and unmapped.format.name == "shop"  # the version's own format
    (event,) = shop.parse(SHOP_LINE.encode(), "shop").batch.to_events()
    assert event.session_key == "ORD-01010"
    assert parsers.for_source("shop") is shop.exact
    assert not caplog.records


def test_profile_other_than_the_models_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    parsers = _parsers("hdfs")
    with caplog.at_level(logging.WARNING):
        first = parsers.columnar_for_source("shop")
        again = parsers.columnar_for_source("shop")
    assert first is again and first.format.name == "shop"
    assert parsers.columnar_for_source("other").format is HDFS
    (warning,) = caplog.records
    assert "trained with format 'hdfs'" in warning.getMessage() and "--format shop" in warning.getMessage()
