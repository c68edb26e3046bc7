"""Signing in to the web UI with an API key, and what every page checks before it runs.

A person signs in once with a key; the browser then keeps a signed session cookie
(HttpOnly, SameSite=Lax, Secure over HTTPS) that names the key, never its secret. Every
request checks the key again, so a revoked key signs its sessions out at once. A request
may instead carry `Authorization: Bearer <key>`, as API calls do.

Forms are protected against cross-site requests: a change made with the session cookie
must carry the session's CSRF token (the `X-CSRF-Token` header htmx sends, or a
`csrf_token` form field that app.js adds to every form). Pages need the role their method
implies (reader to look, writer to change; see api/security.required_role), and see only
the datasets and runs of the key's project.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote
from uuid import UUID

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from evalledger.api.security import bearer_secret
from evalledger.domain.access import ForbiddenError, NotAuthenticatedError, Principal

COOKIE = "evalledger_session"
MAX_AGE = 12 * 3600
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def serializer(request: Request) -> URLSafeTimedSerializer:
    state = request.app.state
    found = getattr(state, "session_serializer", None)
    if found is None:
        secret = state.ledger.access.instance_secret("ui-session")
        found = state.session_serializer = URLSafeTimedSerializer(secret, salt="evalledger-ui")
    return found


def start_session(request: Request, response: Response, principal: Principal) -> None:
    token = serializer(request).dumps({"k": str(principal.key_id or "env"), "c": secrets.token_urlsafe(24)})
    response.set_cookie(COOKIE, token, max_age=MAX_AGE, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")


def end_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/")


def _session(request: Request) -> dict[str, Any] | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = serializer(request).loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("k"), str) else None


def identify(request: Request) -> tuple[Principal, str | None]:
    """The principal of a bearer key or of the session cookie (with the session's CSRF
    token; None for a bearer key, which needs none)."""
    access = request.app.state.ledger.access
    secret = bearer_secret(request)
    if secret is not None:
        return access.authenticate(secret), None
    session = _session(request)
    if session is None:
        raise NotAuthenticatedError("sign in with an API key")
    return access.principal_of_key(session["k"]), str(session.get("c", ""))


def check(request: Request, role: str) -> None:
    """Who is calling (else NotAuthenticatedError), whether the role allows this page, and
    whether the path's dataset or run is of the key's project (else it is not found)."""
    principal, csrf = identify(request)
    request.state.principal = principal
    request.state.csrf = csrf
    if role == "instance":
        if not (principal.is_instance and principal.may("admin")):
            raise ForbiddenError("this needs an instance admin key")
    elif not principal.may(role):
        raise ForbiddenError(f"this needs a {role} key; you are signed in with a {principal.role} key")
    scope = request.app.state.ledger.scope
    for name, of in (("dataset_id", scope.dataset), ("run_id", scope.run)):
        value = request.path_params.get(name)
        if value is None:
            continue
        try:
            of(principal, value if isinstance(value, UUID) else UUID(str(value)))
        except ValueError:
            continue  # not an id at all: the page answers its own 404


async def guard(request: Request, role: str) -> Response | None:
    """Run before a page: None to go on, or the answer instead (the sign-in page)."""
    try:
        await run_in_threadpool(check, request, role)
    except NotAuthenticatedError:
        target = "/login?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    if request.method in UNSAFE and request.state.csrf is not None:
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await request.form()).get("csrf_token")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, request.state.csrf):
            raise ForbiddenError("this form is stale or came from another site (its CSRF token is missing or "
                                 "wrong); reload the page and try again")
    return None


def principal_of(request: Request) -> Principal:
    return request.state.principal


def can(request: Request, role: str) -> bool:
    """For templates: may the signed-in key do what `role` allows? (Edit controls are only
    shown to those who may use them.)"""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return False
    if role == "instance":
        return principal.is_instance and principal.may("admin")
    return principal.may(role)
