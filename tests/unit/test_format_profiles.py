"""Format profiles from TOML: good profiles parse lines as their rules say; bad ones fail naming the
file, the profile, the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.columnar_parse import ColumnarParser
from pipeline.errors import ConfigError
from pipeline.format_profiles import (
    FormatProfile,
    catalog_from_dict,
    load_formats,
    profile_from_table,
    resolve_profile,
)
from pipeline.formats import HDFS, MultilineJoiner
from pipeline.parsing import Parser
from pipeline.templates import TemplateMiner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "formats" / "example.toml"

SHOP: dict[str, Any] = {
    "header": r"<Timestamp> <Service>\[<Order>\] <Level>: <Content>",
    "masks": [{"name": "AMOUNT", "pattern": r"\d+\.\d\d"}],
    "timestamp": {"fields": ["Timestamp"], "format": "iso"},
    "session": {"field": "Order"},
    "template_fields": ["Service"],
}
LINE = "2026-03-01T12:00:00.500Z checkout[ORD-7] INFO: charged 12.50 EUR to card 4242"


def test_header_profile_parses_fields_sessions_time_and_masks() -> None:
    profile = profile_from_table("shop", SHOP)
    record = profile.log_format.parse_line(LINE)
    assert record.session_keys == ("ORD-7",)
    assert record.timestamp == pytest.approx(1772366400.5)
    assert record.level == "INFO" and record.field("service") == "checkout"
    text = profile.log_format.template_text(record)
    assert text == "checkout charged 12.50 EUR to card 4242"
    # The profile's mask comes before the built-in ones, so the amount keeps its kind.
    assert (
        TemplateMiner(profile.drain_config()).learn(text).template
        == "checkout charged <AMOUNT> EUR to card <NUM>"
    )


def test_session_pattern_inside_a_field_and_capturing_group() -> None:
    table = {**SHOP, "session": {"field": "Order", "pattern": r"ORD-(\d+)"}}
    fmt = profile_from_table("shop", table).log_format
    assert fmt.parse_line(LINE).session_keys == ("7",)
    in_line = profile_from_table("shop", {**SHOP, "session": {"pattern": r"card (\d+)"}}).log_format
    assert in_line.parse_line(LINE).session_keys == ("4242",)


def test_multiline_keeps_the_header_fields_session_key() -> None:
    fmt = profile_from_table("shop", SHOP).log_format
    joiner = MultilineJoiner(fmt)
    assert joiner.feed(LINE) == []
    assert joiner.feed("    at Pay.charge(Pay.java:42) ORD-99") == []
    (record,) = joiner.flush()
    assert record.session_keys == ("ORD-7",) and record.line.count("\n") == 1


def test_single_line_profile_refuses_continuation_lines() -> None:
    fmt = profile_from_table("shop", {**SHOP, "multiline": False}).log_format
    joiner = MultilineJoiner(fmt)
    joiner.feed(LINE)
    items = joiner.feed("    at Pay.charge(Pay.java:42)")
    assert [type(i).__name__ for i in items] == ["LogRecord", "Unparsed"]


def test_round_trip_through_model_metadata() -> None:
    profile = profile_from_table("shop", SHOP)
    again = FormatProfile.from_json(profile.to_json())
    assert again == profile and again.log_format.parse_line(LINE) == profile.log_format.parse_line(LINE)


def test_example_file_profiles_and_sources() -> None:
    catalog = load_formats(EXAMPLE)
    assert set(catalog.profiles) >= {"zookeeper", "hadoop"}
    zookeeper = catalog.for_source("zookeeper")
    assert zookeeper is not None and zookeeper.name == "zookeeper"
    line = (
        "2015-07-29 19:04:29,071 - WARN  [SendWorker:188978561024:QuorumCnxManager$SendWorker@688] - "
        "Send worker leaving thread"
    )
    record = zookeeper.log_format.parse_line(line)
    assert record.session_keys == ("SendWorker",) and record.content == "Send worker leaving thread"
    assert catalog.for_source("unmapped") is None
    assert resolve_profile(f"{EXAMPLE}:hadoop").name == "hadoop"
    assert resolve_profile("hadoop", EXAMPLE).name == "hadoop"
    assert resolve_profile("hdfs").log_format is HDFS


def test_profile_formats_take_the_exact_parse_path() -> None:
    """The columnar fast path is proven for the built-in formats only; a profile's lines must come out
    exactly as `Parser` gives them."""
    profile = profile_from_table("shop", SHOP)
    miner = TemplateMiner(profile.drain_config())
    payload = "\n".join([LINE, LINE.replace("ORD-7", "ORD-8")]).encode()
    Parser(profile.log_format, miner).parse(payload, "shop")
    miner.freeze()
    columnar = ColumnarParser(profile.log_format, miner)
    result = columnar.parse(payload, "shop")
    assert result.exact and columnar.fast_messages == 0
    expected = Parser(profile.log_format, miner).parse(payload, "shop").events
    assert [e.session_key for e in result.batch.to_events()] == [e.session_key for e in expected]
    # HDFS's pattern with a header-field session rule is not the vetted HDFS format either.
    hdfs_like = profile_from_table("hdfs-like", {"regex": HDFS.pattern, "session": {"field": "component"}})
    assert ColumnarParser(hdfs_like.log_format, TemplateMiner())._fast is None


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({**SHOP, "header": None}, "'header'", "exactly one of"),
    ({"regex": "(?P<content>.*)", "header": "<Content>"}, "'header'", "exactly one of"),
    ({"header": "<Date> <Level>"}, "'header'", "<Content>"),
    ({"regex": r"(?P<date>\S+) (?P<msg>.*)"}, "'regex'", "content group"),
    ({"regex": r"(?P<content>[a-"}, "'regex'", "not a valid regex"),
    ({**SHOP, "timestamp": {"fields": ["When"], "format": "iso"}}, "'timestamp.fields'", "no header field"),
    ({**SHOP, "timestamp": {"fields": ["Timestamp"]}}, "'timestamp.format'", "strptime"),
    ({**SHOP, "timestamp": {"fields": ["Timestamp"], "format": "YYYY-MM-DD"}}, "'timestamp.format'", "%"),
    ({**SHOP, "session": {"field": "Request"}}, "'session.field'", "no header field 'Request'"),
    ({**SHOP, "session": {"pattern": r"(a)(b)"}}, "'session.pattern'", "capturing groups"),
    ({**SHOP, "session": {"pattern": r"\d*"}}, "'session.pattern'", "empty string"),
    ({**SHOP, "session": {"key": "x"}}, "'session'", "field and/or pattern"),
    ({**SHOP, "masks": [{"name": "AMOUNT"}]}, "'masks[0]'", "{name, pattern}"),
    ({**SHOP, "masks": [{"name": "a b", "pattern": "x"}]}, "'masks[0].name'", "not a mask name"),
    ({**SHOP, "masks": [{"name": "N", "pattern": r"\d*"}]}, "'masks[0].pattern'", "empty string"),
    ({**SHOP, "masks": [{"name": "N", "pattern": "(x"}]}, "'masks[0].pattern'", "not a valid regex"),
    ({**SHOP, "template_fields": ["Host"]}, "'template_fields'", "no header field 'Host'"),
    ({**SHOP, "multiline": "yes"}, "'multiline'", "expected bool"),
    ({**SHOP, "parser": "brain"}, "'parser'", "not a parser mode"),
    ({**SHOP, "sim_th": 2}, "'sim_th'", "outside (0, 1]"),
    ({**SHOP, "depth": 1}, "'depth'", "too small"),
    ({**SHOP, "sesion": {"field": "Order"}}, "'sesion'", "unknown field"),
]


@pytest.mark.parametrize(("table", "field", "problem"), BAD)
def test_bad_profile_names_profile_field_and_problem(table: dict[str, Any], field: str, problem: str) -> None:
    table = {k: v for k, v in table.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        catalog_from_dict({"profiles": {"shop": table}}, "my.toml")
    message = str(info.value)
    assert "my.toml" in message and "profile 'shop'" in message and f"field {field}" in message
    assert problem in message


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({}, "no [profiles.NAME] table"),
        ({"profiles": {"hdfs": SHOP}}, "built-in format; rename it"),
        ({"profiles": {"shop": SHOP}, "sources": {"web": "nginx"}}, "sources.web = 'nginx' names no profile"),
        ({"profiles": {"shop": SHOP}, "source": {}}, "unknown top-level keys ['source']"),
    ],
)
def test_bad_catalog(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=r"my\.toml") as info:
        catalog_from_dict(raw, "my.toml")
    assert problem in str(info.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file; fix LOGAD_FORMATS"):
        load_formats(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text('[profiles.x]\nheader = "<Date> \\[<Content>"\n')  # \[ in a basic string
    with pytest.raises(ConfigError, match=r"not valid TOML.*single quotes"):
        load_formats(broken)
    with pytest.raises(ConfigError, match="LOGAD_FORMATS is not set"):
        resolve_profile("zookeeper")
    with pytest.raises(ConfigError, match="no profile 'nginx'"):
        resolve_profile(f"{EXAMPLE}:nginx")


def test_parser_logad_selects_the_logad_miner_mode() -> None:
    from pipeline.templates import ParserMode

    profile = profile_from_table("shop", {**SHOP, "parser": "logad"})
    assert profile.drain_config().parser_mode is ParserMode.LOGAD
    assert profile_from_table("shop", SHOP).drain_config().parser_mode is ParserMode.DRAIN3
