"""The query of an aggregate's own event stream (a dataset's or a run's audit trail): by
page or after a position, filtered by type and time; one definition for every stream route."""


from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Query
from pydantic import Field

from evalledger.api import models
from starlette.responses import Response

from evalledger.api.paging import After, Page, PerPage50, paged
from evalledger.api.wire import answer
from evalledger.service_layer.events import stream_page


# An event type's name, as the wire shows it (ItemsAdded, ResultsRecorded, ...).
EventType = Annotated[str, Field(pattern=r"^[A-Z][A-Za-z]{0,99}$")]


def utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@dataclass(frozen=True)
class StreamQuery:
    """Which page of an aggregate's own event stream: by page or after a position, filtered
    by type and time (the query parameters every stream route takes)."""

    page: int
    per_page: int
    after: int | None
    types: list[str] | None
    since: datetime | None
    until: datetime | None

    def answer(self, events: Any, aggregate_id: UUID, total: int) -> Response:
        found = stream_page(events, aggregate_id, total, self.page, self.per_page, self.after, self.types,
                            self.since, self.until)
        return answer(models.EventList, events=found.events, next_after=found.next_after,
                      pagination=paged(total, self.page, self.per_page))


async def _read(
    page: Page = 0,
    per_page: PerPage50 = 50,
    after: After = None,
    types: Annotated[list[EventType] | None, Query(alias="type", description="Only these event types")] = None,
    since: Annotated[models.Timestamp | None, Query(description="Only events at or after this time")] = None,
    until: Annotated[models.Timestamp | None, Query(description="Only events before this time")] = None,
) -> StreamQuery:
    return StreamQuery(page, per_page, after, types, utc(since), utc(until))


# The StreamQuery of a request, `perPage` bounded by the service's setting (read per request).
Stream = Annotated[StreamQuery, Depends(_read)]
