"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from evalledger import ui
from evalledger.api import access, datasets, events, models, openapi, problems, reviews, runs, tags, transfer
from evalledger.api.encoding import JSONBody
from evalledger.api.limits import BodySizeLimit
from evalledger.api.routing import Route
from evalledger.api.security import RateLimits, bearer_secret, declare
from evalledger.api.wire import answer
from evalledger.domain.errors import DomainError
from evalledger.bootstrap import Ledger, build_ledger
from evalledger.settings import Settings

DESCRIPTION = """
Versioned evaluation datasets on an event store.

Every change is an immutable event. A dataset starts at version 0 and every command
that changes items (add, update, delete; one item or a batch) makes exactly one new
version, so any version can be read back exactly (`?version=N` or `?asOf=TIMESTAMP`),
any two versions diffed field by field, and every change traced in `/events`.

Errors are RFC 9457 problem details (`application/problem+json`). Lists page with
`?page=0&perPage=10` and answer `{"<things>": [...], "pagination": {...}}`.
Every route but `/health` needs an API key: `Authorization: Bearer <key>`. A key belongs to one
project with a role (`reader`, `writer`, `admin`), or is an instance key that manages projects;
each operation names the role it needs (`x-required-role`). The audit trail records the key's
name and id as the actor of every change; `X-Actor` may add who the key acted for, and
`X-Change-Reason` why.
"""


service = APIRouter(tags=["service"], route_class=Route)


@service.get("/health", response_model=models.Health, summary="Liveness and projection lag",
             openapi_extra=declare("public"))
def health(request: Request) -> Response:
    """Open to all, and says nothing about data: `status` is `ok` while the service answers, and each read
    model tells how far it lags behind the event log and whether this process leads it (of the processes on one
    database, one applies each read model in the background). With a valid key it also names the database (no
    password) and each read model's position and last error."""
    ledger: Ledger = request.app.state.ledger
    try:
        ledger.access.authenticate(bearer_secret(request))
    except DomainError:
        return answer(models.Health, ledger.operations.health(with_database=False))
    return answer(models.HealthDetails, ledger.operations.health(with_database=True))


def create_app(ledger: Ledger | None = None, settings: Settings | None = None) -> FastAPI:
    """An app over `ledger`; without one, the app builds and owns its own on startup."""
    settings = ledger.settings if ledger is not None else (settings or Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if getattr(app.state, "ledger", None) is None:
            owned = build_ledger(settings)
            owned.start()
            app.state.ledger = owned
        try:
            yield
        finally:
            if owned is not None:
                owned.close()
                app.state.ledger = None

    app = FastAPI(
        title="evalledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSONBody,
        docs_url=None,  # served by the UI from vendored assets, so they work offline
        redoc_url=None,
    )
    app.state.ledger = ledger
    app.state.settings = settings  # the limits routes check per request (perPage, batch sizes)
    app.state.rate_limits = RateLimits(settings.rate_limit, settings.failed_auth_limit)
    app.router.route_class = Route
    problems.install(app)
    openapi.install(app)
    # Runs first: /api/datasets/runs/{runId} must not be taken for a dataset id.
    app.include_router(access.router)
    app.include_router(runs.router)
    app.include_router(reviews.router)
    app.include_router(transfer.router)
    app.include_router(events.router)
    app.include_router(tags.router)
    app.include_router(datasets.router)

    app.include_router(service)

    ui.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, max_import_bytes=settings.max_import_bytes)
    app.add_middleware(problems.UnexpectedErrors)  # added last: outermost, so it sees every error
    return app
