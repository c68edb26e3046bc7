"""JSON responses rendered with orjson (UUIDs as strings, timestamps as ISO-8601 UTC)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=ORJSON_OPTIONS)


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
