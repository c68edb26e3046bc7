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

from fastapi import Depends, Header, Request
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from evalledger.domain.access import ForbiddenError, NotAuthenticatedError, Principal, RateLimitedError
from evalledger.domain.errors import InvalidRequestError

ROLE_KEY = "x-required-role"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Failed authentications allowed per client address (keeps key guessing and log spam down).
# Only requests that carry a key count (they may cost a database read); none at all is a plain 401.
FAILED_AUTH_LIMIT = "50/second;1000/minute"


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

    def __init__(self, spec: str) -> None:
        self.off = spec.strip().lower() in ("", "off", "none")
        self.items = [] if self.off else parse_many(spec)
        self.failed_items = parse_many(FAILED_AUTH_LIMIT)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, who: str) -> None:
        if not self.off:
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
    if role == "instance":
        if not (principal.is_instance and principal.may("admin")):
            raise ForbiddenError("this needs an instance admin key")
    elif not principal.may(role):
        raise ForbiddenError(f"this needs a {role} key; this key is a {principal.role}")
    params = request.path_params
    if "dataset_id" in params:
        ledger.scope.dataset(principal, params["dataset_id"])
    if "run_id" in params:
        ledger.scope.run(principal, params["run_id"])
    if "slug" in params:
        ledger.access.get_project(principal, params["slug"])
    if "key_id" in params:
        ledger.access.visible_key(principal, params["key_id"])
    return principal


def current_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:  # only a route outside the guard could get here
        raise NotAuthenticatedError("send an API key: Authorization: Bearer <key>")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def recorded_actor(
    request: Request,
    on_behalf_of: Annotated[str | None, Header(
        alias="X-Actor", max_length=200,
        description="Who the key acts for; recorded beside the key's identity, never in place of it.")] = None,
) -> str:
    """The audit trail's actor: the key's name and id, and `X-Actor` as who it acted for."""
    if on_behalf_of is not None and any(ord(c) < 32 for c in on_behalf_of):
        raise InvalidRequestError("X-Actor must not hold control characters")
    return current_principal(request).actor(on_behalf_of)


Actor = Annotated[str, Depends(recorded_actor)]
