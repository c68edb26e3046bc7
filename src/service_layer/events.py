"""An aggregate's events as the audit trail shows them: a page at a time (by page or after a
position, filtered by type and time), each event as who, when, why and what. Read from the
event store itself, so the trail is exactly what was recorded; also the global feed of every
event in log order, for consumers that follow the log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from evalledger.domain.items import item_from_entry


# The answers: typed, snake_case; `api/` (and the UI) put them into words.


@dataclass(slots=True)
class EventItem:
    """An item as an ItemsAdded or ItemsUpdated event recorded it, its content decoded."""

    id: str
    external_id: str | None
    input: Any
    expected_output: Any
    metadata: Any


@dataclass(slots=True)
class EventView:
    type: str
    aggregate_version: int
    version: int | None  # the dataset version after the event (item-changing events only)
    timestamp: datetime
    actor: str
    reason: str | None
    # The event's own fields by their names (`items` as EventItems); their values as recorded.
    payload: dict[str, Any]


@dataclass(slots=True)
class FeedEvent(EventView):
    position: int
    aggregate_id: UUID
    aggregate_type: str


@dataclass(slots=True)
class EventPage:
    events: list[EventView]
    next_after: int | None


@dataclass(slots=True)
class FeedPage:
    events: list[FeedEvent]
    next_after: int | None
    head: int


def stream_page(events: Any, aggregate_id: UUID, total: int, page: int, per_page: int, after: int | None,
                types: list[str] | None, since: datetime | None, until: datetime | None) -> EventPage:
    """One page of an aggregate's events, by page or after a position, with filters."""
    start = after if after is not None else page * per_page
    if not (types or since or until):
        chosen = list(events.get(aggregate_id, gt=start, lte=start + per_page))
        last = start + len(chosen)
    else:
        chosen, last = [], start
        while len(chosen) < per_page and last < total:
            chunk = list(events.get(aggregate_id, gt=last, lte=last + 1000))
            if not chunk:
                break
            for event in chunk:
                last = event.originator_version
                if _matches(event, types, since, until):
                    chosen.append(event)
                    if len(chosen) == per_page:
                        break
    return EventPage([event_view(e) for e in chosen], last if last < total else None)


def feed_page(datasets: Any, project_id: UUID | None, after: int, limit: int, topics: list[str]) -> FeedPage:
    """Every event after position `after` (of one project's datasets and runs, or of all), in log order."""
    recorder = datasets.recorder
    head = recorder.max_notification_id() or 0
    if project_id is None:
        notifications = recorder.select_notifications(start=after, limit=limit, stop=head, topics=topics,
                                                      inclusive_of_start=False)
    else:
        notifications = recorder.select_project_notifications(project_id, start=after, limit=limit, stop=head,
                                                              topics=topics)
    found: list[FeedEvent] = []
    for notification in notifications:
        event = datasets.mapper.to_domain_event(notification)
        view = event_view(event)
        found.append(FeedEvent(view.type, view.aggregate_version, view.version, view.timestamp, view.actor,
                               view.reason, view.payload, position=notification.id,
                               aggregate_id=notification.originator_id,
                               aggregate_type=type(event).__qualname__.split(".")[0]))
    last = notifications[-1].id if len(notifications) == limit else head
    return FeedPage(found, last if last < head else None, head)


def _matches(event: Any, types: list[str] | None, since: datetime | None, until: datetime | None) -> bool:
    return (
        (not types or type(event).__name__ in types)
        and (since is None or event.timestamp >= since)
        and (until is None or event.timestamp < until)
    )


_BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic", "actor", "reason"}


def event_view(event: Any) -> EventView:
    state = vars(event)
    payload: dict[str, Any] = {}
    for key, value in state.items():
        if key in _BASE_FIELDS or key == "dataset_version":
            continue
        if key == "items":
            value = [_item(entry) for entry in value]
        payload[key] = value
    return EventView(
        type=type(event).__qualname__.split(".")[-1],
        aggregate_version=event.originator_version,
        version=state.get("dataset_version", 0 if type(event).__name__ == "Created" else None),
        timestamp=event.timestamp,
        actor=state.get("actor", "anonymous"),
        reason=state.get("reason"),
        payload=payload,
    )


def _item(entry: dict[str, Any]) -> EventItem:
    item = item_from_entry(entry)
    return EventItem(item.id, item.external_id, item.content.input, item.content.expected_output,
                     item.content.metadata)
