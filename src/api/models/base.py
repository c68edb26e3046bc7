"""What every part of the wire format shares: the two model bases (camelCase on the wire,
snake_case in Python), strict JSON scalars for request bodies, timestamps, the pagination
block, problems and health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from evalledger.api.wire import ABSENT_IF_NONE

JSONValue = Any


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def _json_type(name: str, *types: type) -> Any:
    """A number or boolean of a request body as its JSON type only: pydantic would also take
    `"3"` or `true` for an integer, which the OpenAPI document (and a client) says it is not."""

    def check(value: Any) -> Any:
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise ValueError(f"must be a JSON {name}")
        return value

    return BeforeValidator(check)


JSON_INTEGER, JSON_NUMBER = _json_type("integer", int, float), _json_type("number", int, float)
Int = Annotated[int, JSON_INTEGER]
Number = Annotated[float, JSON_NUMBER]
Bool = Annotated[bool, _json_type("boolean", bool)]
# Optional values keep their bounds inside (else the document would lose `minimum`).
Version = Annotated[int, Field(ge=0), JSON_INTEGER]


class ResponseModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

Name = Field(min_length=1, max_length=200)
ExternalId = Field(default=None, min_length=1, max_length=256)


def _iso_only(value: Any) -> Any:
    # pydantic would read a bare number as seconds since 1970; the API promises ISO 8601.
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("must be an ISO 8601 timestamp, e.g. 2026-01-31T12:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_only)]


class Pagination(ResponseModel):
    total: int
    page: int
    per_page: int
    has_more: bool


class FieldError(ResponseModel):
    field: str
    message: str


class Problem(ResponseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class HealthProjection(ResponseModel):
    name: str
    lag: int
    running: bool
    leader: bool = Field(description="Whether this process applies the read model in the background (of several "
                         "processes on one database, one leads each read model; the others apply only the writes "
                         "they answer).")


class Health(ResponseModel):
    status: str
    projections: list[HealthProjection] = Field(
        description="Each read model's lag; with a valid key, also its position, the log's head and its last error.")
    database: Annotated[str | None, ABSENT_IF_NONE] = Field(
        default=None, description="With a valid key only: the PostgreSQL in use (no password).")


# The answer to a caller with a valid key, as `Health` documents it in words: its encoder writes the
# projections' position, head and last error too (not a response model of its own in OpenAPI).


class HealthProjectionDetails(HealthProjection):
    position: int
    head: int
    last_error: str | None


class HealthDetails(Health):
    projections: list[HealthProjectionDetails]  # type: ignore[assignment]
    database: str | None
