"""Errors as RFC 9457 problem details (`application/problem+json`): a stable `type`, a
human `detail`, per-field `errors` for validation. Never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import eventsourcing.persistence
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evalledger.api.encoding import JSONBody
from evalledger.domain.access import ForbiddenError, NotAuthenticatedError, RateLimitedError
from evalledger.domain.errors import (
    ConflictError,
    DomainError,
    InvalidRequestError,
    NotFoundError,
    UnavailableError,
)

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://evalledger.dev/problems/"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# Failures to get or keep a database connection (the pool's timeout, a refused or dropped
# connection, a statement cancelled by a timeout): they pass, so they are a 503 to retry.
DATABASE_UNAVAILABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    eventsourcing.persistence.OperationalError,
    eventsourcing.persistence.InterfaceError,
)
# Seconds a client is asked to wait before retrying after a 503 of the database's.
DATABASE_RETRY_AFTER = 2


def _wire_extra(value: Any) -> Any:
    """A problem's extra value as the wire names it: the keys of an object, or of the
    objects in a list, camelCased (a problem's extras hold names of ours and values,
    never keys of the caller's data)."""
    if isinstance(value, dict):
        return {to_camel(key): item for key, item in value.items()}
    if isinstance(value, list):
        return [{to_camel(key): v for key, v in item.items()} if isinstance(item, dict) else item for item in value]
    return value


def problem(status: int, type_: str, detail: str, *, retry_after: int | None = None, **extra: Any) -> JSONBody:
    """A problem answer; `retry_after` (seconds) sets the `Retry-After` header."""
    body = {
        "type": PROBLEM_BASE + type_,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **{to_camel(name): _wire_extra(value) for name, value in extra.items() if value is not None},
    }
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONBody(body, status_code=status, media_type="application/problem+json", headers=headers)


def status_for(error: DomainError) -> int:
    if isinstance(error, NotAuthenticatedError):
        return 401
    if isinstance(error, ForbiddenError):
        return 403
    if isinstance(error, RateLimitedError):
        return 429
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, InvalidRequestError):
        return 422
    if isinstance(error, UnavailableError):
        return 503
    return 400


def _field_path(loc: tuple[Any, ...]) -> str:
    return "/".join(str(part) for part in loc)


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    return ", ".join(sorted(set(_methods_at(request.app.routes, request.url.path))))


def _methods_at(routes: list[Any], path: str) -> Iterator[str]:
    for route in routes:
        included = getattr(route, "original_router", None)  # a router included in the app
        if included is not None:
            yield from _methods_at(included.routes, path)
        elif getattr(route, "methods", None) and route.path_regex.match(path):
            yield from route.methods


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, error: DomainError) -> JSONBody:
        retry_after = error.retry_after if isinstance(error, (UnavailableError, RateLimitedError)) else None
        answer = problem(status_for(error), error.problem_type, error.detail, retry_after=retry_after, **error.extra)
        if isinstance(error, NotAuthenticatedError):
            answer.headers["WWW-Authenticate"] = 'Bearer realm="evalledger"'
        return answer

    for kind in DATABASE_UNAVAILABLE:
        app.add_exception_handler(kind, database_unavailable)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONBody:
        errors = error.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            where = next(e for e in errors if e.get("type") == "json_invalid")
            return problem(400, "malformed-json", f"The request body is not valid JSON: {where.get('msg')}")
        in_path = [e for e in errors if e.get("loc", ("",))[0] == "path"]
        if in_path:
            # A malformed id names no resource.
            return problem(404, "not-found", f"no resource with {_field_path(in_path[0]['loc'][1:])} "
                           f"{in_path[0].get('input')!r}")
        fields = [{"field": _field_path(e["loc"]), "message": e["msg"]} for e in errors]
        in_body = all(e.get("loc", ("",))[0] == "body" for e in errors)
        status, type_ = (422, "validation-error") if in_body else (400, "invalid-parameter")
        first = fields[0]
        return problem(
            status,
            type_,
            f"{len(fields)} invalid field(s); first: {first['field']}: {first['message']}",
            errors=fields[:100],
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONBody:
        kinds = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large", 415: "unsupported-media-type"}
        answer = problem(error.status_code, kinds.get(error.status_code, "http-error"), str(error.detail))
        if error.status_code == 405:
            answer.headers["Allow"] = allowed_methods(request)
        return answer


async def database_unavailable(request: Request, error: Exception) -> JSONBody:
    log.warning("database unavailable for %s %s: %s: %s", request.method, request.url.path,
                type(error).__name__, error)
    return problem(503, "database-unavailable",
                   "The database could not serve this request now (no free connection, or the server "
                   "refused or dropped one); try again shortly.", retry_after=DATABASE_RETRY_AFTER)


class UnexpectedErrors:
    """Answers an exception no handler took with a 500 problem (logged), and keeps the
    connection. Starlette's own last resort (ServerErrorMiddleware) answers too but then
    re-raises, and uvicorn closes the keep-alive connection, failing the client's next
    request as well. Installed outermost, just inside that middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, noting_start)
        except Exception:
            if started:  # part of an answer is out: only dropping the connection can tell the client
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await problem(500, "internal-error",
                          "The server failed to handle this request; it has been logged.")(scope, receive, send)
