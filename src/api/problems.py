"""Errors as RFC 9457 problem details (`application/problem+json`): a stable `type`, a
human `detail`, per-field `errors` for validation. Never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from evalledger.api.encoding import JSONBody
from evalledger.domain.errors import (
    ConflictError,
    DomainError,
    InvalidRequestError,
    NotFoundError,
)

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://evalledger.dev/problems/"

_TITLES = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
}


def problem(status: int, type_: str, detail: str, **extra: Any) -> JSONBody:
    body = {
        "type": PROBLEM_BASE + type_,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **{k: v for k, v in extra.items() if v is not None},
    }
    return JSONBody(body, status_code=status, media_type="application/problem+json")


def _status_for(error: DomainError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, InvalidRequestError):
        return 422
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
        return problem(_status_for(error), error.problem_type, error.detail, **error.extra)

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

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONBody:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal-error", "The server failed to handle this request; it has been logged.")
