"""The wire format as pydantic models: request bodies (validated on the way in) and
response bodies (documented in OpenAPI, and used by `evalledger.Client` to type what it
returns). camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

JSONValue = Any
T = TypeVar("T")


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


# -- requests ----------------------------------------------------------------------------

Name = Field(min_length=1, max_length=200)
ExternalId = Field(default=None, min_length=1, max_length=256)


class DatasetCreate(WireModel):
    name: str = Name
    description: str = Field(default="", max_length=10_000)
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    input_schema: dict[str, JSONValue] | None = None
    expected_output_schema: dict[str, JSONValue] | None = None


class DatasetReplace(DatasetCreate):
    """PUT: every detail is set; those left out take their defaults."""


class DatasetPatch(WireModel):
    """PATCH: only the details given change. `null` clears a schema."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    metadata: dict[str, JSONValue] | None = None
    input_schema: dict[str, JSONValue] | None = None
    expected_output_schema: dict[str, JSONValue] | None = None

    @field_validator("name", "description", "metadata")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out but not null")
        return value


class ItemCreate(WireModel):
    input: JSONValue = Field(description="Any JSON value except null.")
    expected_output: JSONValue = None
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    external_id: str | None = ExternalId

    @field_validator("input")
    @classmethod
    def _input_not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("input is required and may not be null")
        return value


class ItemsBatchCreate(WireModel):
    items: list[ItemCreate] = Field(min_length=1)


class ItemPatch(WireModel):
    """Only the fields given change; `expectedOutput: null` clears it."""

    input: JSONValue = None
    expected_output: JSONValue = None
    metadata: dict[str, JSONValue] | None = None
    external_id: str | None = ExternalId

    @field_validator("input", "metadata")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out but not null")
        return value


class ItemsBatchDelete(WireModel):
    item_ids: list[UUID] = Field(min_length=1)


# -- responses ---------------------------------------------------------------------------


class Pagination(ResponseModel):
    total: int
    page: int
    per_page: int
    has_more: bool


class Dataset(ResponseModel):
    id: UUID
    name: str
    description: str
    metadata: dict[str, JSONValue]
    input_schema: dict[str, JSONValue] | None
    expected_output_schema: dict[str, JSONValue] | None
    version: int = Field(description="Current dataset version (0 when created; +1 per item change).")
    item_count: int
    created_at: datetime
    updated_at: datetime


class DatasetList(ResponseModel):
    datasets: list[Dataset]
    pagination: Pagination


class Item(ResponseModel):
    id: UUID
    dataset_id: UUID
    external_id: str | None
    input: JSONValue
    expected_output: JSONValue
    metadata: dict[str, JSONValue] | None
    version: int = Field(description="The dataset version that produced this revision.")
    valid_from: int
    valid_to: int | None = Field(description="First version where this revision no longer holds; null if current.")
    created_at: datetime
    updated_at: datetime


class ItemRevision(Item):
    deleted: bool


class ItemList(ResponseModel):
    items: list[Item]
    version: int = Field(description="The dataset version the listing shows.")
    pagination: Pagination


class ItemHistory(ResponseModel):
    item_id: UUID
    history: list[ItemRevision]


class DatasetVersion(ResponseModel):
    version: int
    created_at: datetime
    added: int
    updated: int
    removed: int
    item_count: int
    actor: str
    reason: str | None


class VersionList(ResponseModel):
    versions: list[DatasetVersion]
    pagination: Pagination


class FieldChange(ResponseModel):
    field: str
    before: JSONValue
    after: JSONValue
    kind: Literal["added", "removed"] | None = None


class ItemDiff(ResponseModel):
    item_id: UUID
    change: Literal["added", "removed", "changed"]
    before: Item | None = None
    after: Item | None = None
    changes: list[FieldChange] | None = None


class DiffSummary(ResponseModel):
    added: int
    removed: int
    changed: int


class Diff(ResponseModel):
    dataset_id: UUID
    from_version: int
    to_version: int
    summary: DiffSummary
    changes: list[ItemDiff]
    pagination: Pagination


class Event(ResponseModel):
    type: str
    aggregate_version: int = Field(description="Position of the event in the dataset's own stream (1-based).")
    version: int | None = Field(description="Dataset version after the event (item-changing events only).")
    timestamp: datetime
    actor: str
    reason: str | None
    payload: dict[str, JSONValue]


class EventList(ResponseModel):
    events: list[Event]
    pagination: Pagination


class ItemRef(ResponseModel):
    id: UUID
    external_id: str | None


class DatasetWritten(Dataset):
    """A dataset after a write; `version` is the version it is at."""


class DatasetDeleted(ResponseModel):
    dataset_id: UUID
    version: int
    deleted: bool


class ItemWritten(ResponseModel):
    dataset_id: UUID
    version: int = Field(description="The dataset version this write produced (or the current one if it changed nothing).")
    changed: bool
    item: Item


class ItemsWritten(ResponseModel):
    dataset_id: UUID
    version: int
    count: int
    items: list[ItemRef]


class ItemsDeleted(ResponseModel):
    dataset_id: UUID
    version: int
    count: int
    item_ids: list[UUID]


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


class Health(ResponseModel):
    status: str
    database: str
    projections: list[dict[str, JSONValue]]
