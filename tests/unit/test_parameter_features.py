from __future__ import annotations

from dataclasses import dataclass

import pytest

from pipeline.parameter_features import (
    ELAPSED,
    PADDING,
    FeatureSchema,
    KeyFeatures,
    elapsed_s,
    learn_schema,
    parse_number,
    with_elapsed,
    with_previous_ts,
)


@dataclass(frozen=True)
class Ev:
    session_key: str
    template_id: int
    params: tuple[str, ...] = ()
    timestamp: float | None = None
    source: str = "hdfs"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12.0),
        ("-3.5", -3.5),
        ("+.5", 0.5),
        ("1e5", 1e5),
        ("67108864", 67108864.0),
        ("nan", None),  # float() accepts these; a log does not mean them as numbers
        ("inf", None),
        ("1_000", None),
        ("1e999", None),  # overflows to inf
        ("blk_-1608999687919862906", None),
        ("10.250.19.102", None),
        ("/10.250.19.102:54106", None),
        ("", None),
    ],
)
def test_parse_number(text: str, value: float | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("previous", "now", "elapsed"), [(None, 5.0, 0.0), (3.0, None, 0.0), (3.0, 5.5, 2.5), (5.0, 4.0, -1.0)]
)
def test_elapsed(previous: float | None, now: float | None, elapsed: float) -> None:
    assert elapsed_s(previous, now) == elapsed


def test_elapsed_is_per_session_from_the_last_known_timestamp() -> None:
    events = [Ev("a", 1, timestamp=10.0), Ev("b", 1, timestamp=11.0), Ev("a", 2), Ev("a", 3, timestamp=14.0)]
    assert [p for _, p in with_previous_ts(events)] == [None, None, 10.0, 10.0]
    assert [e for _, e in with_elapsed(events)] == [0.0, 0.0, 0.0, 4.0]


def test_learn_schema_keeps_numeric_positions_and_elapsed() -> None:
    events = [
        Ev("a", 7, ("blk_1", "100", "/10.0.0.1"), 1.0),
        Ev("b", 7, ("blk_2", "250", "/10.0.0.2"), 2.0),
        Ev("a", 8, ("3", "x"), 3.0),  # position 1 is not a number in one line: not numeric
        Ev("b", 8, ("4", "5"), 4.0),
        Ev("a", 9, ("blk_1",)),  # no timestamp, nothing numeric: no features, no model
        Ev("a", 9, ("blk_2",)),
    ]
    schema = learn_schema(events)
    assert set(schema.keys) == {7, 8}
    assert schema.keys[7] == KeyFeatures(7, 3, (ELAPSED, 1))
    assert schema.keys[8] == KeyFeatures(8, 2, (ELAPSED, 0))
    assert schema.keys[7].names == ("elapsed_s", "param_1")
    assert schema.width == 2


def test_learn_schema_modal_param_count_and_minimum() -> None:
    events = [Ev("a", 5, ("1", "2"), 0.0)] * 3 + [Ev("a", 5, ("1",), 0.0)] + [Ev("a", 6, ("1",), 0.0)]
    schema = learn_schema(events, min_events=2)
    assert set(schema.keys) == {5}
    assert schema.keys[5].param_count == 2 and schema.keys[5].sources == (ELAPSED, 0, 1)


@pytest.mark.parametrize(
    ("params", "vector"),
    [
        (("blk_1", "64", "/ip"), (2.5, 64.0)),
        (("blk_1", "64"), None),  # another parameter count than the key's
        (("blk_1", "sixty", "/ip"), None),  # not a number where the key has one
    ],
)
def test_vector(params: tuple[str, ...], vector: tuple[float, ...] | None) -> None:
    schema = FeatureSchema({7: KeyFeatures(7, 3, (ELAPSED, 1))})
    assert schema.vector(7, params, 2.5) == vector
    assert schema.vector(99, params, 2.5) is None  # unmodelled key


def test_tables_and_json_round_trip() -> None:
    schema = FeatureSchema({9: KeyFeatures(9, 1, (ELAPSED,)), 4: KeyFeatures(4, 3, (ELAPSED, 0, 2))})
    ids, counts, sources = schema.to_tables()
    assert ids == [4, 9] and counts == [3, 1]
    assert sources == [[ELAPSED, 0, 2], [ELAPSED, PADDING, PADDING]]
    assert FeatureSchema.from_tables(ids, counts, sources) == schema
    assert FeatureSchema.from_json(schema.to_json()) == schema
    assert schema.padded((1.0,)) == (1.0, 0.0, 0.0)
    assert schema.restricted([9]).width == 1
