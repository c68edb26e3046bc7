"""The operations page: each read model's position in the log and its lag, rebuilding one
with its progress, and checking the read models against the log (`audit verify`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from evalledger.bootstrap import Ledger
from evalledger.domain.errors import ConflictError
from evalledger.api.security import declare
from evalledger.ui.app import PageRoute
from evalledger.ui.templating import templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def ledger_of(request: Request) -> Ledger:
    return request.app.state.ledger


@router.get("/operations", response_class=HTMLResponse, openapi_extra=declare("instance"))
def operations_page(request: Request) -> HTMLResponse:
    return _page(request)


def _page(request: Request, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    operations = ledger_of(request).operations
    projections = operations.projections()
    audit = operations.audit_state()
    busy = any(p.rebuild is not None and p.rebuild.state == "running" for p in projections) or (
        audit is not None and audit.state == "running")
    # htmx polls only the live part (the section below the header) while something runs.
    template = "operations/_live.html" if request.headers.get("HX-Target") == "ops-live" else "operations/page.html"
    return templates.TemplateResponse(request, template, {
        "projections": projections, "audit": audit, "busy": busy, "error": error, "nav": "operations",
        "database": ledger_of(request).connection.describe(),
    }, status_code=status_code)


@router.post("/operations/projections/{name}/rebuild", openapi_extra=declare("instance"))
async def rebuild(request: Request, name: str) -> Response:
    try:
        await asyncio.to_thread(ledger_of(request).operations.start_rebuild, name)
    except ConflictError as error:
        return _page(request, error.detail, 409)
    return RedirectResponse("/operations", status_code=303)


@router.post("/operations/audit", openapi_extra=declare("instance"))
async def audit(request: Request) -> Response:
    try:
        await asyncio.to_thread(ledger_of(request).operations.start_audit)
    except ConflictError as error:
        return _page(request, error.detail, 409)
    return RedirectResponse("/operations#audit", status_code=303)
