"""Request bodies parsed as strict JSON (RFC 8259): NaN and Infinity are refused (400)
instead of being turned into null; integers keep their exact value so that the domain can
refuse those beyond 64 bits by name."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)", name, 0)


# 20 digits in a row may be an integer beyond 64 bits, which orjson would read as a float.
_LONG_DIGITS = re.compile(rb"[0-9]{20}")
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{20}")


def strict_loads(body: bytes | str) -> Any:
    """orjson, which is strict RFC 8259 and several times faster, for every body it can
    read exactly; a body with a 20-digit number in it, or one orjson refuses (NaN, invalid
    JSON), goes to the standard library's parser, which keeps big integers exact for the
    domain to refuse by name and gives the error message for the rest. Request bodies and
    imported files (JSON, JSONL, JSON cells of a CSV) are read alike."""
    if not (_LONG_DIGITS if isinstance(body, bytes) else _LONG_DIGITS_TEXT).search(body):  # type: ignore[arg-type]
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body, parse_constant=_refuse_constant)


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
