"""JSON helpers shared by the built-in scorers: reading a field, parsing JSON held in text,
comparing JSON values, showing a value in a reason."""

from __future__ import annotations

import re
from numbers import Real
from typing import Any

import orjson

MISSING: Any = object()
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def parse_json_text(value: Any) -> Any:
    """A string holding a JSON object or array (optionally in a ``` fence) parsed; any other
    value as it is. Scalars in strings stay strings: "42" is text, not a number."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("```"):
        fenced = _FENCE.match(text)
        text = fenced.group(1).strip() if fenced else text
    if text[:1] not in ("{", "["):
        return value
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return value


def pick(value: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` (dict keys, list indexes), or MISSING."""
    for part in path:
        value = parse_json_text(value)
        if isinstance(value, dict):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: unlike Python's ==, true is not 1 and 1.0 is 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(json_equal, a, b))
    if isinstance(a, Real) and isinstance(b, Real):
        return a == b
    return type(a) is type(b) and a == b


def first_difference(expected: Any, output: Any, path: str = "") -> str | None:
    """The dot path of the first place where `output` differs from `expected`, or None."""
    if isinstance(expected, dict) and isinstance(output, dict):
        for key in [*expected, *(k for k in output if k not in expected)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in expected or key not in output:
                return where
            found = first_difference(expected[key], output[key], where)
            if found is not None:
                return found
        return None
    if isinstance(expected, list) and isinstance(output, list) and len(expected) == len(output):
        for index, (e, o) in enumerate(zip(expected, output)):
            found = first_difference(e, o, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
        return None
    return None if json_equal(expected, output) else (path or "(the whole value)")


def as_text(value: Any) -> str:
    """A value as text for string scorers: strings as they are, anything else as its JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


# Values larger than this (characters of text, roughly) are judged off the event loop.
LARGE_VALUE = 64 * 1024


def is_large(value: Any) -> bool:
    """Whether a JSON value holds more than LARGE_VALUE characters, roughly; stops counting
    there, so a small value costs a short walk."""
    budget = LARGE_VALUE
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            budget -= len(current)
        elif isinstance(current, dict):
            budget -= len(current)
            pending.extend(current.values())
            budget -= sum(len(key) for key in current if isinstance(key, str))
        elif isinstance(current, list | tuple):
            budget -= len(current)
            pending.extend(current)
        else:
            budget -= 8
        if budget < 0:
            return True
    return False


def show(value: Any, limit: int = 80) -> str:
    """A value shortened for a reason or an error message."""
    text = repr(value) if isinstance(value, str) else as_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
