"""JSON responses rendered with orjson (UUIDs as strings, timestamps as ISO-8601 UTC).

Routes normally return plain data and FastAPI validates and serialises it through the
route's pydantic `response_model`. The few hot paths (item pages, batch writes, result
and event pages) return a `JSONBody` instead: validating thousands of values per page
costs several times the whole page's query, so there the model documents the body (and the
OpenAPI contract test checks it) while orjson writes it. A `JSONResponse` subclass, so
that FastAPI documents the route's `response_model` for it."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=ORJSON_OPTIONS)


class JSONBody(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def through(model: type[BaseModel], content: Any, status_code: int) -> Response:
    """`content` validated and serialised by `model`, as the route's response model would,
    for the answers whose status or model depends on the request (and so can't be the route's
    one `response_model`)."""
    validated = model.model_validate(content)
    return Response(validated.model_dump_json(by_alias=True, exclude_unset=True), status_code=status_code,
                    media_type="application/json")
