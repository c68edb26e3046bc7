"""The paging parameters every list route takes, defined once, and the `pagination` block
of their answers. Bounds keep every offset and position within PostgreSQL's bigint, so an
absurd page is a 400 problem, never a database error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError

MAX_PAGE = 10_000_000
# Positions in a stream or the log: the largest integer every JSON client reads exactly.
MAX_POSITION = 2**53 - 1

Page = Annotated[int, Query(ge=0, le=MAX_PAGE, description="0-based page number")]
After = Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="Position-based paging: events after "
                                                                       "this aggregateVersion (then `page` is ignored)")]
PER_PAGE_DESCRIPTION = "Entries per page"


def per_page(max_per_page: int) -> Any:
    """The `perPage` parameter, up to the service's configured maximum."""
    return Annotated[int, Query(alias="perPage", ge=1, le=max_per_page, description=PER_PAGE_DESCRIPTION)]


def check_at_most(value: int, limit: int, where: tuple[str, ...]) -> int:
    """`value`, or the 400 problem FastAPI's own `le=` bound gives, for a bound that is a
    setting of the service (read per request, so routes need no closure over the settings)."""
    if value > limit:
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": where, "msg": f"Input should be less than or equal to {limit}",
            "input": value, "ctx": {"le": limit},
        }])
    return value


def per_page_dependency(default: int) -> Any:
    """`perPage` (default `default`), at most the service's `max_per_page`; the OpenAPI
    document shows that maximum (see openapi.py)."""

    async def read(request: Request, value: Annotated[int, Query(alias="perPage", ge=1,
                                                                 description=PER_PAGE_DESCRIPTION)] = default) -> int:
        # A coroutine, as it does no I/O: a plain function would run in the thread pool.
        return check_at_most(value, request.app.state.settings.max_per_page, ("query", "perPage"))

    return Annotated[int, Depends(read)]


PerPage10 = per_page_dependency(10)
PerPage50 = per_page_dependency(50)
PerPage100 = per_page_dependency(100)


async def _event_limit(request: Request, limit: Annotated[int, Query(ge=1)] = 100) -> int:
    return check_at_most(limit, request.app.state.settings.max_per_page, ("query", "limit"))


# The feed's `limit`: events per answer, at most the service's `max_per_page`.
EventLimit = Annotated[int, Depends(_event_limit)]


@dataclass(slots=True)
class Pagination:
    total: int
    page: int
    per_page: int
    has_more: bool


def paged(total: int, page: int, per_page: int) -> Pagination:
    return Pagination(total, page, per_page, (page + 1) * per_page < total)


def pagination(total: int, page: int, per_page: int) -> dict[str, Any]:
    return {"total": total, "page": page, "perPage": per_page, "hasMore": (page + 1) * per_page < total}
