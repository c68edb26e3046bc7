"""What pages share when they read a form or a request: who is acting, and JSON fields."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

ACTOR_COOKIE = "evalledger_actor"


def actor_of(request: Request) -> str:
    """Who the audit trail records for a change made in the browser: the signed-in key, and
    the name the person gave in the side bar (kept in a cookie) as whom it acted for."""
    name = "".join(c for c in (request.cookies.get(ACTOR_COOKIE) or "") if c.isprintable()).strip()
    return request.state.principal.actor(name[:200] or None)


class FormError(ValueError):
    """A form field that can't be read; `field` names it for the page to show the error there."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def json_field(form: Any, name: str, *, label: str, optional: bool = True) -> Any:
    """The JSON value typed in a form field (None when empty and optional)."""
    text = str(form.get(name) or "").strip()
    if not text:
        if optional:
            return None
        raise FormError(name, f"{label} is required")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise FormError(name, f"{label} is not valid JSON: {error}") from None


def text_field(form: Any, name: str, *, label: str, required: bool = False, max_length: int = 200) -> str:
    text = str(form.get(name) or "").strip()
    if required and not text:
        raise FormError(name, f"{label} is required")
    if len(text) > max_length:
        raise FormError(name, f"{label} may hold at most {max_length} characters")
    return text
