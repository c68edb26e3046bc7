"""What PostgreSQL (and the event store's JSON) can hold, checked before anything is saved.

A value the read model cannot store would be recorded as an event and then stop the
projection that applies it, so it is refused up front with the field it is in: text with
NUL characters (U+0000) or lone surrogates, NaN and infinities, integers beyond 64 bits,
and nesting deeper than MAX_DEPTH.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from evalledger.domain.errors import InvalidRequestError

MAX_DEPTH = 64
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (U+0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid Unicode"
    return None


def _certainly_storable(value: Any) -> bool:
    """A fast check in C that passes almost every value and only values without problems;
    what it does not pass is walked in Python. orjson refuses non-text keys, integers
    beyond 64 bits and lone surrogates; it escapes NUL as \\u0000 and writes NaN as null,
    so those are looked for in its output (a null sends the value to a strict encoder)."""
    if value is None or value is True or value is False:
        return True
    if type(value) is str:
        return "\x00" not in value and (value.isascii() or _text_problem(value) is None)
    try:
        data = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return False
    if b"\\u0000" in data or data.count(b"{") + data.count(b"[") > MAX_DEPTH:
        return False
    if b"null" in data:
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            return False
    return True


def problems(value: Any, field: str) -> list[dict[str, str]]:
    """Every reason `value` cannot be stored, each with the path of the offending part."""
    if _certainly_storable(value):
        return []
    found: list[dict[str, str]] = []
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack and len(found) < 20:
        current, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            found.append({"field": path, "message": f"is nested deeper than {MAX_DEPTH} levels"})
        elif isinstance(current, str):
            problem = _text_problem(current)
            if problem:
                found.append({"field": path, "message": problem})
        elif isinstance(current, bool) or current is None:
            continue
        elif isinstance(current, int):
            if not _INT_MIN <= current <= _INT_MAX:
                found.append({"field": path, "message": "is an integer beyond 64 bits"})
        elif isinstance(current, float):
            if not math.isfinite(current):
                found.append({"field": path, "message": "is not a finite number (JSON has no NaN or Infinity)"})
        elif isinstance(current, dict):
            for key, item in current.items():
                key_problem = _text_problem(key) if isinstance(key, str) else "is not a text key"
                if key_problem:
                    found.append({"field": f"{path}/{key!r}", "message": f"key {key_problem}"})
                else:
                    stack.append((item, f"{path}/{key}", depth + 1))
        elif isinstance(current, list | tuple):
            stack.extend((item, f"{path}/{index}", depth + 1) for index, item in enumerate(current))
    return found


def ensure_storable(values: dict[str, Any]) -> None:
    """Refuse (422) when any of the named values cannot be stored."""
    if all(_certainly_storable(value) for value in values.values()):  # usually all it takes
        return
    found = [problem for field, value in values.items() for problem in problems(value, field)]
    if found:
        first = found[0]
        raise InvalidRequestError(f"{first['field']} {first['message']}", errors=found)


def ensure_items_storable(entries: Any) -> None:
    """`ensure_storable` over new items given as (position, content, external id), naming
    each field by its place in the request (items/3/input)."""
    ensure_storable({
        f"items/{index}/{name}": value
        for index, content, external_id in entries
        for name, value in (("input", content.input), ("expectedOutput", content.expected_output),
                            ("metadata", content.metadata), ("externalId", external_id))
    })
