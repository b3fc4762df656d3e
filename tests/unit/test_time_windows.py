import pytest

from pipeline.errors import ConfigError
from pipeline.time_windows import NORMAL, TimedEvent, TimeWindower, WindowSpec, time_windows, window_label


@pytest.mark.parametrize(
    ("size", "step", "t", "starts"),
    [
        (300, 300, 0, [0]),
        (300, 300, 299.9, [0]),
        (300, 300, 300, [300]),
        (300, 100, 250, [0, 100, 200]),
        (300, 100, 300, [100, 200, 300]),
    ],
)
def test_window_starts(size: float, step: float, t: float, starts: list[float]) -> None:
    assert WindowSpec(size, step).starts(t) == starts


@pytest.mark.parametrize(("size", "step"), [(0, 1), (10, 0), (10, 20), (-1, -1)])
def test_bad_spec_is_rejected(size: float, step: float) -> None:
    with pytest.raises(ConfigError, match="size_s"):
        WindowSpec(size, step)


@pytest.mark.parametrize(
    ("alerts", "label"),
    [({}, NORMAL), ({"KERNDTLB": 1}, "KERNDTLB"), ({"B": 2, "A": 1}, "B"), ({"B": 2, "A": 2}, "A")],
)
def test_window_label(alerts: dict[str, int], label: str) -> None:
    assert window_label(alerts) == label


def test_tumbling_windows_count_templates_and_label_by_dominant_alert() -> None:
    events = [
        TimedEvent(10, 1),
        TimedEvent(20, 1),
        TimedEvent(30, 2, "APPSEV"),
        TimedEvent(70, 3, "KERNDTLB"),
        TimedEvent(75, 3, "KERNDTLB"),
        TimedEvent(200, 1),
    ]
    windows = time_windows(events, WindowSpec(60, 60))
    assert [(w.start_s, w.end_s) for w in windows] == [(0, 60), (60, 120), (180, 240)]
    assert windows[0].count_map() == {1: 2, 2: 1}
    assert [w.label for w in windows] == ["APPSEV", "KERNDTLB", NORMAL]
    assert sum(w.n_events for w in windows) == len(events)


def test_sliding_windows_put_an_event_in_every_covering_window() -> None:
    windows = time_windows([TimedEvent(250, 7)], WindowSpec(300, 100))
    assert [w.start_s for w in windows] == [0, 100, 200]
    assert all(w.count_map() == {7: 1} for w in windows)


def test_streaming_windower_closes_on_event_time_and_drops_late_events() -> None:
    windower = TimeWindower(WindowSpec(60, 60))
    assert windower.add(TimedEvent(10, 1)) == []
    closed = windower.add(TimedEvent(61, 2))
    assert [w.start_s for w in closed] == [0]
    assert windower.add(TimedEvent(5, 3)) == []  # its window is closed already
    assert windower.late_events == 1
    assert [w.count_map() for w in windower.flush()] == [{2: 1}]


def test_batch_and_streaming_agree() -> None:
    events = [TimedEvent(t, t % 3 + 1, "X" if t % 7 == 0 else None) for t in range(0, 1000, 13)]
    spec = WindowSpec(120, 60)
    windower = TimeWindower(spec)
    streamed = [w for e in events for w in windower.add(e)] + windower.flush()
    assert streamed == time_windows(reversed(events), spec)


BGL_LINES = [
    "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS "
    "KERNEL INFO instruction cache parity error corrected",
    "KERNDTLB 1118535471 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.17.51.865056 R30-M0-N9-C:J16-U01 RAS "
    "KERNEL FATAL data TLB error interrupt",
]


def test_bgl_golden_lines_become_labelled_events() -> None:
    from pipeline.datasets.bgl import BglTemplater, bgl_events, parse_bgl_line

    records = [parse_bgl_line(line) for line in BGL_LINES]
    assert [(r.alert, r.timestamp_s, r.component, r.level) for r in records] == [
        (None, 1117838570.0, "KERNEL", "INFO"),
        ("KERNDTLB", 1118535471.0, "KERNEL", "FATAL"),
    ]
    assert records[1].content == "data TLB error interrupt"
    templater = BglTemplater()
    templater.learn(records)
    events = bgl_events(records, templater)
    assert [e.alert for e in events] == [None, "KERNDTLB"]
    assert events[0].template_id != events[1].template_id and min(e.template_id for e in events) > 0
    windows = time_windows(events, WindowSpec(300, 300))
    assert [w.label for w in windows] == [NORMAL, "KERNDTLB"]


@pytest.mark.parametrize("line", ["", "- notatime 2005.06.03 a b c d e f", "- 1 2 3"])
def test_bad_bgl_lines_raise_data_errors(line: str) -> None:
    from pipeline.datasets.bgl import parse_bgl_line
    from pipeline.errors import DataError

    with pytest.raises(DataError, match="BGL parse"):
        parse_bgl_line(line)


@pytest.mark.parametrize(
    ("line", "events"),
    [("app_1/container_1,63 92 63", (63, 92, 63)), ("app_1/container_2,", ())],
)
def test_hadoop_sessions_parse_to_template_counts(line: str, events: tuple[int, ...]) -> None:
    from pipeline.datasets.hadoop import parse_session

    session = parse_session(line, "disk_full")
    assert session.events == events and session.label == "disk_full"
    assert session.count_map() == {e: events.count(e) for e in events}


@pytest.mark.parametrize("line", ["no comma here", "x,1 two 3", "x,0 1"])
def test_bad_hadoop_lines_raise_data_errors(line: str) -> None:
    from pipeline.datasets.hadoop import parse_session
    from pipeline.errors import DataError

    with pytest.raises(DataError, match="hadoop parse"):
        parse_session(line, "normal")
