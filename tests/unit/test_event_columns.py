"""event-batch/2: exact round trips to and from LogEvents, both versions read, bad records refused."""

from __future__ import annotations

import base64
import math

import orjson
import pytest

from pipeline.errors import DataError
from pipeline.event_columns import EVENT_BATCH_V2_SCHEMA, EventColumns, decode_batch, read_event_batch
from pipeline.partitioning import group_by_partition
from pipeline.records import EventBatch, LogEvent, SourceOffset

EVENT = LogEvent(
    source="hdfs-dn1",
    session_key="blk_-1608999687919862906",
    timestamp=1226262918.0,
    template_id=2**52 - 1,
    template="Receiving block <BLK> src: /<IP> dest: /<IP>",
    params=("blk_-1608999687919862906", "/10.250.19.102:54106", "/10.250.19.102:50010"),
    oov=False,
    raw=SourceOffset("raw-logs", 3, 12345, 2, 1_700_000_000.5),
)
OTHERS = (
    LogEvent("bgl", "", None, 7, "x <NUM>", (), True),
    LogEvent("s", "k", 1.5, 1, "t", ("p",), True, SourceOffset("other-topic", 0, -1, 0, None)),
    LogEvent("s", "k2", -2.0, 1, "t", ("", "has space", "tab\there"), False, SourceOffset(offset=2**40)),
    LogEvent("s", "k", 0.0, 1, "t other text, same id", ("p",), False),
)


@pytest.mark.parametrize("events", [(), (EVENT,), (EVENT, *OTHERS), (*OTHERS, EVENT, EVENT)])
def test_round_trip_is_exact(events: tuple[LogEvent, ...]) -> None:
    columns = EventColumns.from_events(events)
    assert columns.to_events() == list(events)
    data = columns.encode()
    assert orjson.loads(data)["schema"] == EVENT_BATCH_V2_SCHEMA
    assert EventColumns.decode(data).to_events() == list(events)
    assert decode_batch(data).to_events() == list(events)


def test_columns_of_one_value_travel_as_that_value() -> None:
    events = [EVENT, EVENT, EVENT]
    obj = orjson.loads(EventColumns.from_events(events).encode())
    assert obj["columns"]["offset"] == ["<i2", 12345] and obj["columns"]["oov"] == ["|b1", False]
    assert obj["columns"]["ingested_at"] == ["<f8", 1_700_000_000.5]
    signed_zeros = [LogEvent("s", "k", t, 1, "t", (), False) for t in (0.0, -0.0, None, None)]
    back = decode_batch(EventColumns.from_events(signed_zeros).encode()).to_events()
    assert back == signed_zeros
    assert back[1].timestamp is not None and math.copysign(1, back[1].timestamp) == -1.0
    no_times = [LogEvent("s", "k", None, 1, "t", (), False)] * 3
    assert decode_batch(EventColumns.from_events(no_times).encode()).to_events() == no_times


def test_plain_parameters_travel_as_one_string() -> None:
    obj = orjson.loads(EventColumns.from_events([EVENT, OTHERS[1]]).encode())
    assert obj["params"] == " ".join([*EVENT.params, "p"])
    assert isinstance(orjson.loads(EventColumns.from_events(OTHERS).encode())["params"], list)


def test_ticks_and_version_one_records() -> None:
    tick = EventColumns.empty(((0, 5.5), (2, 7.0)), raw_partitions=4)
    back = decode_batch(tick.encode())
    assert (back.watermarks, back.raw_partitions, len(back)) == (((0, 5.5), (2, 7.0)), 4, 0)
    v1 = EventBatch((EVENT, *OTHERS[:2]), ((1, 2.5),), 3).encode()
    columns = decode_batch(v1)
    assert columns.to_events() == [EVENT, *OTHERS[:2]]
    assert (columns.watermarks, columns.raw_partitions) == (((1, 2.5),), 3)
    assert columns.template_ids.tolist() == [EVENT.template_id, 7, 1]
    assert math.isnan(columns.timestamps[1])


def test_by_partition_groups_like_group_by_partition() -> None:
    events = [
        LogEvent("s", f"blk_{i % 7}", float(i), i % 3, f"t{i % 3}", (str(i),) * (i % 2), False)
        for i in range(40)
    ]
    expected = group_by_partition([(e.session_key, e) for e in events], 4)
    got = EventColumns.from_events(events).by_partition(4)
    assert list(got) == list(expected)
    for partition, part in got.items():
        assert EventColumns.decode(part.encode()).to_events() == expected[partition]
        assert len(part.sessions) == len({e.session_key for e in expected[partition]})


def _mangled(**changes: object) -> bytes:
    obj = orjson.loads(EventColumns.from_events([EVENT, *OTHERS]).encode())
    for path, value in changes.items():
        target = obj
        *parents, leaf = path.split("__")
        for name in parents:
            target = target[name]
        target[leaf] = value
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1, 2]",
        orjson.dumps({"schema": "event-batch/3", "n": 0}),
        orjson.dumps({"schema": "log-event/1"}),
        _mangled(n=4),
        _mangled(n=-1),
        _mangled(columns__oov=["|O", base64.b64encode(b"\x00" * 5).decode()]),  # object dtype
        _mangled(columns__line=[">i8", base64.b64encode(b"\x00" * 40).decode()]),  # big-endian
        _mangled(columns__session=["|u1", base64.b64encode(bytes([0, 9, 0, 0, 0])).decode()]),  # past table
        _mangled(columns__timestamp=["<f8", "not base64!"]),
        _mangled(params="too few"),
        _mangled(sessions=[1, 2]),
        _mangled(columns="x"),
        _mangled(columns__oov=["|b1", 1]),  # a constant of the wrong kind
        _mangled(columns__line=["|i1", 300]),  # a constant past its dtype
        _mangled(columns__timestamp=["<f8", "1.5"]),
    ],
)
def test_malformed_records_raise_data_error(data: bytes) -> None:
    with pytest.raises(DataError):
        decode_batch(data)


def test_version_two_reader_refuses_version_one() -> None:
    with pytest.raises(DataError, match="event-batch/2"):
        EventColumns.decode(EventBatch((EVENT,)).encode())


@pytest.mark.parametrize(
    "batch",
    [
        EventBatch((EVENT, *OTHERS)),
        EventBatch((), ((0, 5.5), (2, 7.0)), 4),  # a tick
        EventBatch((EVENT,), ((1, 2.5),), 3),
        EventBatch(()),
    ],
)
def test_read_event_batch_gives_the_same_batch_from_either_version(batch: EventBatch) -> None:
    v2 = EventColumns.from_events(batch.events, batch.watermarks, batch.raw_partitions).encode()
    assert read_event_batch(batch.encode()) == batch
    assert read_event_batch(v2) == batch


@pytest.mark.parametrize(
    "data",
    [
        orjson.dumps({"schema": "event-batch/3", "n": 0}),
        b"not json",
        b"[]",
        orjson.dumps({"schema": EVENT_BATCH_V2_SCHEMA, "n": 1}),
    ],
)
def test_read_event_batch_refuses_unknown_and_malformed_records(data: bytes) -> None:
    with pytest.raises(DataError, match="decode"):
        read_event_batch(data)


def test_concat_keeps_every_row_in_order_and_merges_the_tables() -> None:
    parts = [(EVENT, *OTHERS[:2]), (), (*OTHERS, EVENT), (OTHERS[2],)]
    joined = EventColumns.concat([EventColumns.from_events(p) for p in parts])
    expected = [e for p in parts for e in p]
    assert joined.to_events() == expected
    assert len(joined.sessions) == len({e.session_key for e in expected})
    assert EventColumns.decode(joined.encode()).to_events() == expected
    assert EventColumns.concat([EventColumns.from_events(())]).to_events() == []
