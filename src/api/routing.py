"""The route class of every API route: first the door (see security: a key, its rate
limit, its role, its project), then strict JSON bodies (see strict_json), answers
serialised through the route's response model without adding keys the route left out,
and unknown query parameters refused with a 400 problem that names them (a misspelt
filter such as `?externalid=` must not silently return everything)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from evalledger.api.problems import problem
from evalledger.api.security import guard, required_role
from evalledger.api.strict_json import StrictJSONRoute


class Route(StrictJSONRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Answers keep exactly the keys the route gives (optional ones stay absent, not null).
        kwargs["response_model_exclude_unset"] = True
        super().__init__(path, endpoint, **kwargs)
        self.query_names = frozenset(_query_names(self.dependant))
        self.required_role = required_role(self.methods or set(), self.openapi_extra)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            if self.required_role != "public":
                await run_in_threadpool(guard, request, self.required_role)
            unknown = sorted({name for name in request.query_params if name not in self.query_names})
            if unknown:
                known = ", ".join(sorted(self.query_names)) or "none"
                return problem(
                    400, "unknown-parameter",
                    f"unknown query parameter(s): {', '.join(unknown)}; this route takes: {known}",
                    errors=[{"field": f"query/{name}", "message": "unknown query parameter"} for name in unknown],
                )
            return await handler(request)

        return checked


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
