"""A dataset's past: its versions, the field-level diff between any two, and the audit
trail (who, when, why, what) read from its own event stream."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from evalledger.service_layer.events import EventView, event_view
from evalledger.ui.app import PageRoute
from evalledger.ui.datasets import PER_PAGE, PageParam, dataset_at, ledger_of
from evalledger.ui.templating import templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DIFF_PER_PAGE = 50
EVENTS_PER_PAGE = 30
EVENT_TITLES = {
    "Created": "Created the dataset", "DetailsChanged": "Changed details", "ItemsAdded": "Added items",
    "ItemsUpdated": "Updated items", "ItemsDeleted": "Deleted items", "Deleted": "Deleted the dataset",
    "ItemPurged": "Purged an item's content",
}


@router.get("/datasets/{dataset_id}/versions", response_class=HTMLResponse)
def versions_page(request: Request, dataset_id: UUID, page: PageParam = 0) -> HTMLResponse:
    at = dataset_at(request, dataset_id)
    rows, total = ledger_of(request).dataset_queries.list_versions(dataset_id, page, PER_PAGE)
    return templates.TemplateResponse(request, "datasets/versions.html", {
        **at.context(), "tab": "versions", "rows": rows, "total": total, "page": page, "per_page": PER_PAGE,
        "has_more": (page + 1) * PER_PAGE < total,
    })


@router.get("/datasets/{dataset_id}/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    dataset_id: UUID,
    from_version: Annotated[int | None, Query(alias="from", ge=0, le=2**31 - 1)] = None,
    to_version: Annotated[int | None, Query(alias="to", ge=0, le=2**31 - 1)] = None,
    page: PageParam = 0,
) -> HTMLResponse:
    """The field-level diff between two versions (default: the previous and the current)."""
    at = dataset_at(request, dataset_id)
    queries = ledger_of(request).dataset_queries
    b = queries.resolve_version(dataset_id, to_version)
    a = queries.resolve_version(dataset_id, from_version if from_version is not None else max(0, b - 1))
    diff = queries.diff(dataset_id, a, b, page, DIFF_PER_PAGE)
    return templates.TemplateResponse(request, "datasets/compare.html", {
        **at.context(), "tab": "versions", "diff": diff, "a": a, "b": b, "page": page, "per_page": DIFF_PER_PAGE,
        "total": diff.total, "has_more": (page + 1) * DIFF_PER_PAGE < diff.total,
    })


@router.get("/datasets/{dataset_id}/audit", response_class=HTMLResponse)
def audit_page(request: Request, dataset_id: UUID, page: PageParam = 0) -> HTMLResponse:
    """The dataset's events, newest first: read from the event store, the record itself."""
    at = dataset_at(request, dataset_id)
    ledger = ledger_of(request)
    total = ledger.dataset_queries.dataset_row(dataset_id)["aggregate_version"]
    # Event positions run 1..total; newest first means reading the stream from the end.
    high = max(0, total - page * EVENTS_PER_PAGE)
    low = max(0, high - EVENTS_PER_PAGE)
    events = [event_view(e) for e in ledger.datasets.events.get(dataset_id, gt=low, lte=high)] if high else []
    events.reverse()
    return templates.TemplateResponse(request, "datasets/audit.html", {
        **at.context(), "tab": "audit", "events": [_describe(e) for e in events], "total": total, "page": page,
        "per_page": EVENTS_PER_PAGE, "has_more": low > 0,
    })


def _describe(event: EventView) -> dict[str, Any]:
    """What an event did, in a line a person reads, plus the details to unfold."""
    payload = event.payload
    kind = event.type
    items = payload.get("items") or []
    if kind in ("ItemsAdded", "ItemsUpdated"):
        summary = f"{len(items):,} item{'s' if len(items) != 1 else ''}"
    elif kind == "ItemsDeleted":
        count = len(payload.get("item_ids") or [])
        summary = f"{count:,} item{'s' if count != 1 else ''}"
    elif kind == "DetailsChanged":
        summary = ", ".join(payload.get("changes", {})) or "nothing"
    elif kind == "Created":
        summary = payload.get("name", "")
    elif kind == "ItemPurged":
        summary = str(payload.get("item_id", ""))
    else:
        summary = ""
    return {"event": event, "title": EVENT_TITLES.get(kind, kind), "summary": summary,
            "shown_items": items[:20], "more_items": max(0, len(items) - 20)}
