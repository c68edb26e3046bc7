"""The keys page: a project's admins list, issue, rotate and revoke its keys; instance
admins also create projects and manage instance keys. A new key's secret is shown once, on
the page that answers its creation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from evalledger.api.security import declare
from evalledger.domain.errors import DomainError
from evalledger.service_layer.access_book import IssuedKey, ProjectView
from evalledger.ui.app import PageRoute
from evalledger.ui.forms import FormError, text_field
from evalledger.ui.session import principal_of
from evalledger.ui.templating import templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _page(request: Request, *, issued: IssuedKey | None = None, error: str | None = None,
          status_code: int = 200) -> HTMLResponse:
    access, principal = request.app.state.ledger.access, principal_of(request)
    projects = access.list_projects(principal)
    sections = []
    if principal.is_instance:
        sections.append({"slug": None, "title": "Instance keys", "keys": access.list_keys(principal, None)})
    for project in projects:
        sections.append({"slug": project.slug, "title": f"{project.name} ({project.slug})",
                         "keys": access.list_keys(principal, project.slug)})
    return templates.TemplateResponse(request, "keys.html", {
        "sections": sections, "projects": projects, "issued": issued, "error": error, "nav": "keys",
    }, status_code=status_code)


@router.get("/keys", response_class=HTMLResponse, openapi_extra=declare("admin"))
def keys_page(request: Request) -> HTMLResponse:
    return _page(request)


async def _act(request: Request, action: Callable[[Any, Any, Any], Any]) -> Response:
    """Run a key command, `action(access, principal, form)`; its refusal is shown on the page
    (with the status the API gives), an issued key's secret once."""
    from evalledger.api.problems import status_for

    form = await request.form()
    access, principal = request.app.state.ledger.access, principal_of(request)
    try:
        issued = await asyncio.to_thread(action, access, principal, form)
    except FormError as error:
        return await asyncio.to_thread(_page, request, error=str(error), status_code=422)
    except DomainError as error:
        return await asyncio.to_thread(_page, request, error=error.detail, status_code=status_for(error))
    return await asyncio.to_thread(_page, request, issued=issued if isinstance(issued, IssuedKey) else None)


@router.post("/keys", openapi_extra=declare("admin"))
async def issue_key(request: Request) -> Response:
    def issue(access: Any, principal: Any, form: Any) -> IssuedKey:
        name = text_field(form, "name", label="Name", required=True, max_length=100)
        slug = str(form.get("project") or "") or None
        return access.issue_key(principal, project_slug=slug, name=name, role=str(form.get("role") or ""))

    return await _act(request, issue)


@router.post("/keys/{key_id}/revoke", openapi_extra=declare("admin"))
async def revoke_key(request: Request, key_id: UUID) -> Response:
    return await _act(request, lambda access, principal, _: access.revoke_key(principal, key_id))


@router.post("/keys/{key_id}/rotate", openapi_extra=declare("admin"))
async def rotate_key(request: Request, key_id: UUID) -> Response:
    return await _act(request, lambda access, principal, _: access.rotate_key(principal, key_id))


@router.post("/projects", openapi_extra=declare("instance"))
async def create_project(request: Request) -> Response:
    def create(access: Any, principal: Any, form: Any) -> ProjectView:
        name = text_field(form, "name", label="Name", required=True, max_length=200)
        slug = text_field(form, "slug", label="Slug", required=True, max_length=63)
        return access.create_project(principal, name=name, slug=slug)

    return await _act(request, create)
