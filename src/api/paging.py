"""The paging parameters every list route takes, defined once, and the `pagination` block
of their answers. Bounds keep every offset and position within PostgreSQL's bigint, so an
absurd page is a 400 problem, never a database error."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

MAX_PAGE = 10_000_000
# Positions in a stream or the log: the largest integer every JSON client reads exactly.
MAX_POSITION = 2**53 - 1

Page = Annotated[int, Query(ge=0, le=MAX_PAGE, description="0-based page number")]
After = Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="Position-based paging: events after "
                                                                       "this aggregateVersion (then `page` is ignored)")]


def per_page(max_per_page: int) -> Any:
    """The `perPage` parameter, up to the service's configured maximum."""
    return Annotated[int, Query(alias="perPage", ge=1, le=max_per_page, description="Entries per page")]


def pagination(total: int, page: int, per_page: int) -> dict[str, Any]:
    return {"total": total, "page": page, "perPage": per_page, "hasMore": (page + 1) * per_page < total}
