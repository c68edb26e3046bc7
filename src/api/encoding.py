"""JSON responses rendered with orjson (UUIDs as strings, timestamps as ISO-8601 UTC).

Routes answer a `JSONBody`: api/wire.py writes the typed answers through their response
models into it, and problems (api/problems.py) are one too. A `JSONResponse` subclass, so that
FastAPI documents the route's `response_model` for it."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=ORJSON_OPTIONS)


class JSONBody(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
