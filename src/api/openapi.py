"""The OpenAPI document as the service really answers: every error is a `Problem`
served as `application/problem+json` (FastAPI would declare them `application/json`, and
its own 422 schema, which this service never sends), every operation may answer 400
(an unknown or invalid query parameter) and 413 (a body over the limit), and each JSON answer
shows an example (examples.py). Every operation but the public ones needs the bearer key
and names the role it needs (`x-required-role`: reader, writer, admin or instance)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from evalledger.api.examples import EXAMPLES
from evalledger.api.security import ROLE_KEY, required_role

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
ALWAYS = {
    "400": "Malformed JSON, or invalid or unknown query parameters",
    "413": "Body over the size limit",
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes, tags=app.openapi_tags)
            app.openapi_schema = with_limits(as_served(schema), app.state.settings.max_per_page)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


SECURED = {
    "401": "No API key, or an unknown or revoked one",
    "403": "The key's role does not allow this",
    "429": "The key sent more requests than its limit (see `Retry-After`)",
}


def as_served(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "An API key: `Authorization: Bearer elk_...`."}}
    schema["security"] = [{"bearer": []}]
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status, description in ALWAYS.items():
                responses.setdefault(status, {"description": description})
            role = required_role({method.upper()}, operation)
            if role == "public":
                operation["security"] = []
                operation.pop(ROLE_KEY, None)
            else:
                operation[ROLE_KEY] = role
                for status, description in SECURED.items():
                    responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if int(status) >= 400:
                    response["content"] = {"application/problem+json": {"schema": PROBLEM_REF}}
                elif "application/json" in response.get("content", {}):
                    content = response["content"]["application/json"]
                    example = EXAMPLES.get(_model_name(content.get("schema", {})))
                    if example is not None:
                        content["example"] = example
    schemas = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def with_limits(schema: dict[str, Any], max_per_page: int) -> dict[str, Any]:
    """`perPage` (and the feed's `limit`) document the service's maximum, which routes check
    per request (paging.py)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            for parameter in list(parameters):
                if parameter.get("in") == "query" and parameter.get("name") in ("perPage", "limit"):
                    parameter["schema"]["maximum"] = max_per_page
                    # A dependency's parameters come last; keep them where the routes declare them
                    # (perPage after page, limit after after), so the document reads as before.
                    follows = "page" if parameter["name"] == "perPage" else "after"
                    names = [p.get("name") for p in parameters]
                    if follows in names:
                        parameters.remove(parameter)
                        parameters.insert(names.index(follows) + (names.index(follows) < names.index(
                            parameter["name"])), parameter)
    return schema


def _model_name(schema: dict[str, Any]) -> str:
    """The component a response schema refers to (the first, for a union)."""
    ref = schema.get("$ref") or next((option.get("$ref") for option in schema.get("anyOf", [])), None) or ""
    return ref.rsplit("/", 1)[-1]
