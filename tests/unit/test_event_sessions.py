import pytest

from pipeline.errors import DataError
from pipeline.parsing import NO_SESSION
from pipeline.records import EventBatch, LogEvent
from pipeline.training.event_sessions import group_event_sessions, training_sessions


def _event(key: str, tid: int, text: str = "", oov: bool = False) -> LogEvent:
    return LogEvent("hdfs", key, None, tid, text or f"template {tid}", (), oov)


def test_groups_by_key_in_offset_order_and_leaves_labelled_out():
    batches = [
        EventBatch((_event("blk_1", 5), _event("blk_2", 5))),
        EventBatch(()),  # the detect agent's ticks: empty batches
        EventBatch((_event("blk_1", 22), _event("blk_3", 7, oov=True), _event(NO_SESSION, 9))),
        EventBatch((_event("blk_2", 11), _event("blk_1", 11))),
    ]
    grouped = group_event_sessions(batches)
    assert grouped.sessions == {"blk_1": [5, 22, 11], "blk_2": [5, 11], "blk_3": [7]}
    assert grouped.events == 7 and grouped.without_session == 1
    assert grouped.oov_ids == {7} and set(grouped.parser_templates()) == {5, 9, 11, 22}
    chosen = training_sessions(grouped, frozenset({"blk_2", "blk_9"}))
    assert chosen.keys == ("blk_1", "blk_3") and chosen.sessions == ((5, 22, 11), (7,))
    assert chosen.left_out == 1


def test_one_id_with_two_texts_is_refused():
    with pytest.raises(DataError, match="two texts"):
        group_event_sessions([EventBatch((_event("a", 1, "x <*>"), _event("b", 1, "y <*>")))])
