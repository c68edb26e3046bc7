"""Every API route's door: who is calling (a key), how often (a rate limit per key), with
what role, and whether the dataset or run the path names is in the key's project.

The route class (`routing.Route`) calls `guard` before anything else of the request is
looked at, so a request without a valid key learns nothing, not even whether its body or
query parameters are valid. A route's required role is `required_role(route)`: `reader` for
reads, `writer` for changes, unless the route declares `x-required-role` (see ROLE_KEY);
`instance` means an instance admin key.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Header, Request
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from evalledger.domain.access import ForbiddenError, NotAuthenticatedError, Principal, RateLimitedError
from evalledger.domain.errors import InvalidRequestError

ROLE_KEY = "x-required-role"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def required_role(methods: set[str] | frozenset[str], openapi_extra: dict[str, Any] | None) -> str:
    declared = (openapi_extra or {}).get(ROLE_KEY)
    if declared:
        return str(declared)
    return "reader" if set(methods) <= READ_METHODS else "writer"


def declare(role: str) -> dict[str, Any]:
    """`openapi_extra` for a route whose role is not the one its method implies."""
    return {ROLE_KEY: role}


class RateLimits:
    """Requests per key in this process (moving window), with `limits`."""

    def __init__(self, spec: str, failed_spec: str = "50/second;1000/minute") -> None:
        """`spec`: requests per key; `failed_spec`: requests with a wrong key per client
        address (only those that carry a key count; none at all is a plain 401). "off"
        turns a limit off."""
        self.items = _limits(spec)
        self.failed_items = _limits(failed_spec)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, who: str) -> None:
        self._hit(self.items, "key:" + who, "this key sent more requests than its limit ({limit})")

    def failed(self, address: str) -> None:
        self._hit(self.failed_items, "failed:" + address,
                  "too many requests without a valid key from this address ({limit})")

    def failed_check(self, address: str) -> None:
        """Refuse (429) an address that failed too often, without counting this attempt."""
        for item in self.failed_items:
            if not self.limiter.test(item, "failed:" + address):
                reset = self.limiter.get_window_stats(item, "failed:" + address).reset_time
                raise RateLimitedError("too many requests without a valid key from this address",
                                       retry_after=max(1, math.ceil(reset - time.time())))

    def _hit(self, items: list[Any], key: str, message: str) -> None:
        for item in items:
            if not self.limiter.hit(item, key):
                reset = self.limiter.get_window_stats(item, key).reset_time
                raise RateLimitedError(message.format(limit=item), retry_after=max(1, math.ceil(reset - time.time())))


def _limits(spec: str) -> list[Any]:
    return [] if spec.strip().lower() in ("", "off", "none") else parse_many(spec)


def bearer_secret(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, secret = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip() or None


def guard(request: Request, role: str) -> Principal:
    """Authenticate, rate-limit, authorise the role and check the project of the path's
    dataset or run. Runs in a worker thread (it may read the database)."""
    ledger = request.app.state.ledger
    limits: RateLimits = request.app.state.rate_limits
    secret = bearer_secret(request)
    try:
        if secret is None and request.method in READ_METHODS and request.cookies.get("evalledger_session"):
            # A page's download link (an export) reads the API with the web UI's session; only
            # reads, so the session's CSRF token is not needed.
            from evalledger.ui.session import identify

            principal = identify(request)[0]
        else:
            principal = ledger.access.authenticate(secret)
    except NotAuthenticatedError:
        if secret is not None:
            limits.failed(request.client.host if request.client else "?")
        raise
    limits.hit(str(principal.key_id or "env"))
    request.state.principal = principal
    authorize(request, principal, role)
    return principal


def authorize(request: Request, principal: Principal, role: str) -> None:
    """Does the key's role allow this, and is every object its path names (a dataset, run,
    project or key) of the key's project? Another project's object is not found (404).
    The API and the web UI's pages both ask this."""
    if role == "instance":
        if not (principal.is_instance and principal.may("admin")):
            raise ForbiddenError("this needs an instance admin key")
    elif not principal.may(role):
        raise ForbiddenError(f"this needs a {role} key; this key is a {principal.role}")
    if principal.is_instance:
        return  # it sees every project: nothing to look up
    ledger = request.app.state.ledger
    checks = {"dataset_id": ledger.scope.dataset, "run_id": ledger.scope.run,
              "slug": ledger.access.get_project, "key_id": ledger.access.visible_key}
    for name, value in request.path_params.items():
        check = checks.get(name)
        if check is None:
            continue
        if name in ("dataset_id", "run_id", "key_id") and not isinstance(value, UUID):
            try:
                value = UUID(str(value))
            except ValueError:
                continue  # not an id at all: the route answers its own 404
        check(principal, value)


def principal_of(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:  # only a route outside the guard could get here
        raise NotAuthenticatedError("send an API key: Authorization: Bearer <key>")
    return principal


# The dependencies below do no I/O, so they are coroutines: FastAPI runs a plain function
# dependency in its thread pool, a hop that cost each request more than the work.


async def current_principal(request: Request) -> Principal:
    return principal_of(request)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def recorded_actor(
    request: Request,
    on_behalf_of: Annotated[str | None, Header(
        alias="X-Actor", max_length=200,
        description="Who the key acts for; recorded beside the key's identity, never in place of it.")] = None,
) -> str:
    """The audit trail's actor: the key's name and id, and `X-Actor` as who it acted for."""
    if on_behalf_of is not None and any(ord(c) < 32 for c in on_behalf_of):
        raise InvalidRequestError("X-Actor must not hold control characters")
    return principal_of(request).actor(on_behalf_of)


Actor = Annotated[str, Depends(recorded_actor)]
