"""Signing in and out of the web UI (see session.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from evalledger.api.security import declare
from evalledger.domain.access import NotAuthenticatedError, RateLimitedError
from evalledger.ui import session
from evalledger.ui.app import PageRoute
from evalledger.ui.templating import templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/datasets"
    return target


@router.get("/login", response_class=HTMLResponse, openapi_extra=declare("public"))
def login_page(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002 - the query's name
    return templates.TemplateResponse(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login", openapi_extra=declare("public"))
async def login(request: Request) -> Response:
    form = await request.form()
    key, target = str(form.get("key") or "").strip(), safe_next(str(form.get("next") or ""))
    access, limits = request.app.state.ledger.access, request.app.state.rate_limits
    try:
        if key:
            limits.failed_check(request.client.host if request.client else "?")
        principal = access.authenticate(key)
    except (NotAuthenticatedError, RateLimitedError) as error:
        if isinstance(error, NotAuthenticatedError) and key:
            limits.failed(request.client.host if request.client else "?")
        message = ("Too many failed attempts; wait a minute." if isinstance(error, RateLimitedError)
                   else "That key is unknown or revoked." if key else "Paste an API key.")
        return templates.TemplateResponse(request, "login.html", {"next": target, "error": message},
                                          status_code=429 if isinstance(error, RateLimitedError) else 401)
    response = RedirectResponse(target, status_code=303)
    session.start_session(request, response, principal)
    return response


@router.post("/logout", openapi_extra=declare("public"))
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    session.end_session(response)
    return response
