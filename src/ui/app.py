"""Mounts the UI on the service's FastAPI app: the pages, their static assets, and the API
docs served from vendored assets (so /docs and /redoc work without internet)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from evalledger.api.problems import status_for
from evalledger.api.security import declare, required_role
from evalledger.ui import session
from evalledger.domain.errors import DomainError
from evalledger.ui.templating import HERE, templates

STATIC = "/static"


class PageRoute(APIRoute):
    """A page route: a refused command or a missing object renders as a page that says what
    went wrong (with the same status the API would answer), not as problem JSON."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.required_role = required_role(self.methods or set(), self.openapi_extra)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                if self.required_role != "public":
                    instead = await session.guard(request, self.required_role)
                    if instead is not None:
                        return instead
                return await handler(request)
            except DomainError as error:
                return error_page(request, status_for(error), error.detail)

        return handle


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 422: "Not accepted", 429: "Slow down"}
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "title": titles.get(status, "Error"), "detail": detail},
        status_code=status,
    )


def install(app: FastAPI) -> None:
    from evalledger.ui import compare, datasets, history, imports, items, operations, runs, signin

    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="static")
    for module in (signin, datasets, items, history, imports, runs, compare, operations):
        app.include_router(module.router)

    @app.get("/docs", include_in_schema=False, openapi_extra=declare("public"))
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="evalledger API",
            swagger_js_url=f"{STATIC}/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon.svg",
        )

    @app.get("/redoc", include_in_schema=False, openapi_extra=declare("public"))
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="evalledger API",
            redoc_js_url=f"{STATIC}/vendor/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC}/favicon.svg",
            with_google_fonts=False,
        )
