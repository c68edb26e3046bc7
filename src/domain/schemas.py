"""JSON Schema checks for item input and expected output (jsonschema, Draft 2020-12)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from evalledger.domain.errors import InvalidSchemaError


def check_schema(field: str, schema: dict[str, Any] | None) -> None:
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise InvalidSchemaError(f"{field} must be a JSON object", errors=[{"field": field, "message": "must be an object"}])
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        path = "/".join(str(p) for p in error.absolute_path)
        raise InvalidSchemaError(
            f"{field} is not a valid JSON Schema: {error.message}",
            errors=[{"field": f"{field}/{path}" if path else field, "message": error.message}],
        ) from None
    _check_references(field, schema)


_BASE = "urn:evalledger:schema"


def _references(node: Any) -> list[str]:
    found = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                    found.append(value)
                else:
                    stack.append(value)
        elif isinstance(current, list):
            stack.extend(current)
    return found


def _check_references(field: str, schema: dict[str, Any]) -> None:
    """Every $ref must point inside the schema: remote ones are never fetched (a server
    that fetches URLs named by its callers can be made to reach anywhere)."""
    resolver = Registry().with_resource(
        _BASE, Resource.from_contents(schema, default_specification=DRAFT202012)
    ).resolver(base_uri=_BASE)
    for ref in _references(schema):
        if not ref.startswith("#"):
            raise InvalidSchemaError(
                f"{field}: $ref {ref!r} points outside the schema; only local references (#/...) are allowed",
                errors=[{"field": field, "message": f"$ref {ref!r} is not local"}],
            )
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise InvalidSchemaError(
                f"{field}: $ref {ref!r} points nowhere in the schema",
                errors=[{"field": field, "message": f"$ref {ref!r} cannot be resolved"}],
            ) from None


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Draft202012Validator:
    # An empty registry: nothing is ever retrieved from the network.
    return Draft202012Validator(orjson.loads(schema_json), registry=Registry())


def validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    return _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


def violations(field: str, schema: dict[str, Any] | None, value: Any) -> list[dict[str, str]]:
    """Every way `value` breaks `schema`, as {field, message} with a JSON-pointer-like path."""
    if schema is None:
        return []
    found = []
    for error in validator_for(schema).iter_errors(value):
        path = "/".join(str(p) for p in error.absolute_path)
        found.append({"field": f"{field}/{path}" if path else field, "message": error.message})
    return found
