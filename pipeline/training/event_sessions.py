"""Training sessions from parsed events (`log-events`): grouped by session key, labelled ones left out.

The events come as decoded `EventBatch` records in offset order (reading the topic is the Kafka
adapter's job, `pipeline.adapters.topic_snapshot`). A session lives on one partition (see
`pipeline.partitioning`), so offset order within a partition is the session's own event order,
whatever the order in which partitions interleave.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from pipeline.errors import DataError
from pipeline.parsing import NO_SESSION
from pipeline.records import EventBatch


@dataclass
class EventSessions:
    """Sessions and templates gathered from events (filled by `add`)."""

    sessions: dict[str, list[int]] = field(default_factory=dict)  # key -> template ids, in order
    templates: dict[int, str] = field(default_factory=dict)  # every template id seen -> its text
    oov_ids: set[int] = field(default_factory=set)  # ids the parser had no template for
    events: int = 0
    without_session: int = 0  # events of formats without session keys (windowed sources)

    def add(self, batch: EventBatch) -> None:
        for event in batch.events:
            self.events += 1
            known = self.templates.setdefault(event.template_id, event.template)
            if known != event.template:
                raise DataError(
                    f"group events: template id {event.template_id} arrived with two texts, {known!r} and "
                    f"{event.template!r} (at {event.raw}); ids are text hashes, so a producer is broken"
                )
            if event.oov:
                self.oov_ids.add(event.template_id)
            if event.session_key == NO_SESSION:
                self.without_session += 1
                continue
            self.sessions.setdefault(event.session_key, []).append(event.template_id)

    def parser_templates(self) -> dict[int, str]:
        """The templates of the parser's own set: those of events it matched (not OOV)."""
        return {tid: text for tid, text in self.templates.items() if tid not in self.oov_ids}


def group_event_sessions(batches: Iterable[EventBatch]) -> EventSessions:
    """Group every event of `batches` (in offset order) by session key."""
    grouped = EventSessions()
    for batch in batches:
        grouped.add(batch)
    return grouped


@dataclass(frozen=True)
class TrainingSessions:
    """The sessions chosen for training, in first-seen order, and how many labelled ones were left out."""

    keys: tuple[str, ...]
    sessions: tuple[tuple[int, ...], ...]
    left_out: int


def training_sessions(grouped: EventSessions, anomalous: Collection[str]) -> TrainingSessions:
    """Every session except those labelled anomalous."""
    keys = tuple(k for k in grouped.sessions if k not in anomalous)
    return TrainingSessions(
        keys, tuple(tuple(grouped.sessions[k]) for k in keys), len(grouped.sessions) - len(keys)
    )
