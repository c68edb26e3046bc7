"""Prompt templates: `{{input}}`, `{{input.question}}`, `{{expectedOutput}}`,
`{{metadata.split}}` — dot paths into JSON values; strings are inserted as they are,
anything else as compact JSON. A path that does not exist is an error naming it."""

from __future__ import annotations

import re
from typing import Any

import orjson

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w]*(?:\.[\w-]+)*)\s*\}\}")


class TemplateError(ValueError):
    pass


def lookup(values: Any, path: str) -> Any:
    current = values
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise TemplateError(f"the template names {{{{{path}}}}}, which this item does not have")
    return current


def render(template: str, values: dict[str, Any]) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = lookup(values, match.group(1))
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    return _PLACEHOLDER.sub(substitute, template)
