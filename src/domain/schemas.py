"""JSON Schema rules of a dataset (jsonschema, Draft 2020-12): a schema must be valid and
self-contained; every item added must satisfy the dataset's schemas; a schema may change only
if the current items satisfy the new one."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from evalledger.domain.errors import InvalidSchemaError, SchemaViolationError


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


# Enough violations to fix a batch by, without building an answer as large as the batch.
MAX_VIOLATIONS = 100


def item_violations(input_schema: dict[str, Any] | None, output_schema: dict[str, Any] | None,
                    content: Any, prefix: str) -> list[dict[str, str]]:
    """How an item's content breaks the dataset's schemas. A null expected output is allowed
    whatever the schema: an item may have no reference answer."""
    found = violations(f"{prefix}input", input_schema, content.input)
    if output_schema is not None and content.expected_output is not None:
        found += violations(f"{prefix}expectedOutput", output_schema, content.expected_output)
    return found


def check_items(input_schema: dict[str, Any] | None, output_schema: dict[str, Any] | None,
                indexed_contents: Iterable[tuple[int, Any]]) -> None:
    """Refuse a batch of new item contents, (position in the request, content), that breaks
    the schemas, naming up to MAX_VIOLATIONS violations."""
    if input_schema is None and output_schema is None:
        return
    errors: list[dict[str, str]] = []
    for index, content in indexed_contents:
        errors += item_violations(input_schema, output_schema, content, f"items/{index}/")
        if len(errors) >= MAX_VIOLATIONS:
            break
    if errors:
        raise SchemaViolationError(
            f"{len(errors)} schema violation(s); first: {errors[0]['field']}: {errors[0]['message']}",
            errors=errors,
        )


def check_current_items(items: Iterable[Any], input_schema: dict[str, Any] | None,
                        output_schema: dict[str, Any] | None) -> None:
    """Refuse a schema change that current items would violate, naming up to 10 of them."""
    failing = []
    for item in items:
        found = item_violations(input_schema, output_schema, item.content, "")
        if found:
            failing.append({"item_id": item.id, "external_id": item.external_id, "errors": found[:5]})
            if len(failing) >= 10:
                break
    if failing:
        raise SchemaViolationError(
            f"the new schema would be violated by current items (showing {len(failing)})",
            errors=[
                {"field": f"items/{f['item_id']}/{e['field']}", "message": e["message"]}
                for f in failing
                for e in f["errors"]
            ],
            failing_items=failing,
        )
