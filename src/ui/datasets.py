"""Pages for datasets: the list (search, paging), create, duplicate and delete."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from evalledger.bootstrap import Ledger
from evalledger.domain.errors import DomainError
from evalledger.ui.app import PageRoute
from evalledger.ui.forms import FormError, actor_of, json_field, text_field
from evalledger.ui.templating import templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PER_PAGE = 25


def ledger_of(request: Request) -> Ledger:
    return request.app.state.ledger


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/datasets", status_code=303)


@router.get("/datasets", response_class=HTMLResponse)
def dataset_list(
    request: Request,
    search: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    return _list_page(request, search=search, page=page)


def _list_page(request: Request, *, search: str | None, page: int, form: dict[str, Any] | None = None,
               errors: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    rows, total = ledger_of(request).dataset_queries.list_datasets_overview(
        search=(search or "").strip() or None, page=page, per_page=PER_PAGE
    )
    context = {
        "datasets": rows, "total": total, "page": page, "per_page": PER_PAGE, "search": search or "",
        "has_more": (page + 1) * PER_PAGE < total, "form": form or {}, "errors": errors or {},
        "nav": "datasets",
    }
    # A search typed in the box replaces only the table (htmx); a full load renders the page.
    template = "datasets/_table.html" if request.headers.get("HX-Target") == "dataset-table" else "datasets/list.html"
    return templates.TemplateResponse(request, template, context, status_code=status_code)


@router.post("/datasets")
async def create_dataset(request: Request) -> Response:
    form = await request.form()
    values = {key: str(form.get(key) or "") for key in ("name", "description", "inputSchema", "expectedOutputSchema")}
    try:
        name = text_field(form, "name", label="Name", required=True)
        description = text_field(form, "description", label="Description", max_length=5000)
        input_schema = json_field(form, "inputSchema", label="Input schema")
        expected_schema = json_field(form, "expectedOutputSchema", label="Expected output schema")
        dataset = await asyncio.to_thread(
            ledger_of(request).dataset_use_cases.create_dataset,
            name=name, description=description, input_schema=input_schema,
            expected_output_schema=expected_schema, actor=actor_of(request),
        )
    except FormError as error:
        return _list_page(request, search=None, page=0, form={**values, "open": True},
                          errors={error.field: error.message}, status_code=422)
    except DomainError as error:
        field = "inputSchema" if "inputSchema" in error.detail else (
            "expectedOutputSchema" if "expectedOutputSchema" in error.detail else "name")
        return _list_page(request, search=None, page=0, form={**values, "open": True},
                          errors={field: error.detail}, status_code=422)
    return RedirectResponse(f"/datasets/{dataset['id']}", status_code=303)


@router.post("/datasets/{dataset_id}/delete")
async def delete_dataset(request: Request, dataset_id: UUID) -> Response:
    form = await request.form()
    reason = text_field(form, "reason", label="Reason", max_length=2000) or None
    await asyncio.to_thread(ledger_of(request).dataset_use_cases.delete_dataset, dataset_id,
                            actor=actor_of(request), reason=reason)
    return RedirectResponse("/datasets", status_code=303)


@router.post("/actor")
async def set_actor(request: Request) -> Response:
    """Remember the name this browser's changes are recorded under."""
    form = await request.form()
    name = text_field(form, "actor", label="Name", max_length=200)
    back = str(form.get("next") or "/datasets")
    response = RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/datasets",
                                status_code=303)
    response.set_cookie("evalledger_actor", name, max_age=365 * 86400, httponly=True, samesite="lax")
    return response


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_detail(
    request: Request,
    dataset_id: UUID,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    queries = ledger_of(request).dataset_queries
    dataset = queries.get_dataset(dataset_id)
    items, total = queries.list_items(dataset_id, dataset["version"], page, PER_PAGE, None)
    return templates.TemplateResponse(request, "datasets/detail.html", {
        "dataset": dataset, "items": items, "total": total, "page": page, "per_page": PER_PAGE,
        "has_more": (page + 1) * PER_PAGE < total, "nav": "datasets",
    })
