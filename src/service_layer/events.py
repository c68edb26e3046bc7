"""An aggregate's events as the audit trail shows them: a page at a time (by page or after a
position, filtered by type and time), each event in the wire shape of who, when, why and what.
Read from the event store itself, so the trail is exactly what was recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic.alias_generators import to_camel

from evalledger.domain.content import decode_content


def stream_page(events: Any, aggregate_id: UUID, total: int, page: int, per_page: int, after: int | None,
                types: list[str] | None, since: datetime | None, until: datetime | None) -> dict[str, Any]:
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
    return {
        "events": [event_wire(e) for e in chosen],
        "nextAfter": last if last < total else None,
    }


def _matches(event: Any, types: list[str] | None, since: datetime | None, until: datetime | None) -> bool:
    return (
        (not types or type(event).__name__ in types)
        and (since is None or event.timestamp >= since)
        and (until is None or event.timestamp < until)
    )


_BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic", "actor", "reason"}


def event_wire(event: Any) -> dict[str, Any]:
    state = vars(event)
    payload: dict[str, Any] = {}
    for key, value in state.items():
        if key in _BASE_FIELDS or key == "dataset_version":
            continue
        if key == "items":
            value = [
                {"id": entry["id"], "externalId": entry.get("externalId"), **_content_wire(entry["content"])}
                for entry in value
            ]
        payload[to_camel(key)] = value
    return {
        "type": type(event).__qualname__.split(".")[-1],
        "aggregateVersion": event.originator_version,
        "version": state.get("dataset_version", 0 if type(event).__name__ == "Created" else None),
        "timestamp": event.timestamp,
        "actor": state.get("actor", "anonymous"),
        "reason": state.get("reason"),
        "payload": payload,
    }


def _content_wire(encoded: dict[str, Any]) -> dict[str, Any]:
    content = decode_content(encoded)
    return {"input": content.input, "expectedOutput": content.expected_output, "metadata": content.metadata}


