"""JSON Schema checks for item input and expected output (jsonschema, Draft 2020-12)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from evalledger.domain.errors import InvalidSchemaError

# Which item field each dataset schema governs, by its wire name.
SCHEMA_FIELDS = {"inputSchema": "input", "expectedOutputSchema": "expectedOutput"}


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


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Draft202012Validator:
    return Draft202012Validator(orjson.loads(schema_json))


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
