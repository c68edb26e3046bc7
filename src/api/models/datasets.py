"""Datasets, items, versions, tags, diffs and event streams on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field, field_validator
from pydantic.alias_generators import to_camel

from evalledger.api.models.base import *  # noqa: F403
from evalledger.api.wire import ABSENT_IF_NONE, encode
from evalledger.domain.datasets import TAG_PATTERN


# -- requests ----------------------------------------------------------------------------


class DatasetDetails(WireModel):
    name: str = Name
    description: str = Field(default="", max_length=10_000)
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    input_schema: dict[str, JSONValue] | None = None
    expected_output_schema: dict[str, JSONValue] | None = None


class DatasetCreate(DatasetDetails):
    project: str | None = Field(
        default=None, max_length=63,
        description="The project's slug. A project key creates in its own project (naming another is refused); "
                    "an instance key may name any project (default: `default`).")


class DatasetReplace(DatasetDetails):
    """PUT: every detail is set; those left out take their defaults."""


class DatasetPatch(WireModel):
    """PATCH: only the details given change. `null` clears a schema. (`None` defaults mean
    "left out": a given `null` name, description or metadata fails their type.)"""

    name: str = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    description: str = Field(default=None, max_length=10_000)  # type: ignore[assignment]
    metadata: dict[str, JSONValue] = Field(default=None)  # type: ignore[assignment]
    input_schema: dict[str, JSONValue] | None = None
    expected_output_schema: dict[str, JSONValue] | None = None


# In the OpenAPI document: any JSON value but null (the validators below refuse null).
NOT_NULL = {"not": {"type": "null"}}


class ItemCreate(WireModel):
    input: JSONValue = Field(description="Any JSON value except null.", json_schema_extra=NOT_NULL)
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

    input: JSONValue = Field(default=None, description="Any JSON value except null.", json_schema_extra=NOT_NULL)
    expected_output: JSONValue = None
    metadata: dict[str, JSONValue] = Field(default=None)  # type: ignore[assignment]
    external_id: str | None = ExternalId

    @field_validator("input")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out but not null")
        return value


class ItemsBatchDelete(WireModel):
    item_ids: list[UUID] = Field(min_length=1)


# -- responses ---------------------------------------------------------------------------


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
    project_id: UUID = Field(description="The project the dataset and its runs belong to.")


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
    source: dict[str, JSONValue] | None = Field(
        default=None, description="Where the item came from: an import (file, format, row) or a copy (dataset, item)."
    )
    version: int = Field(description="The dataset version that produced this revision.")
    valid_from: int
    valid_to: int | None = Field(description="First version where this revision no longer holds; null if current.")
    created_at: datetime
    updated_at: datetime
    purged_at: datetime | None = Field(
        default=None, description="When the item's content was purged (erased from every version); null if never."
    )


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
    tags: list[str] = Field(default_factory=list, description="The tags that name this version.")


class VersionList(ResponseModel):
    versions: list[DatasetVersion]
    pagination: Pagination


TagName = Annotated[str, Field(pattern=TAG_PATTERN, max_length=100)]


class TagSet(WireModel):
    """Point a tag at a version."""

    version: Version | None = Field(default=None, description="The version to tag (default: the current one).")
    move: Bool = Field(default=False, description="Move the tag when it names another version (else 409).")


class DatasetTag(ResponseModel):
    tag: str
    version: int = Field(description="The dataset version the tag names.")
    tagged_at: datetime = Field(description="When the tag came to name this version.")
    actor: str
    reason: str | None


class TagList(ResponseModel):
    dataset_id: UUID
    tags: list[DatasetTag]


class TagWritten(DatasetTag):
    dataset_id: UUID
    outcome: Literal["tagged", "moved", "unchanged"]
    previous_version: int | None = Field(description="The version a moved tag named before; else null.")


class TagDeleted(ResponseModel):
    dataset_id: UUID
    tag: str
    version: int = Field(description="The version the tag named (it stays).")
    deleted: bool


def _field_path(change: Any) -> str:
    """A changed field's path as the wire names it: the item field in camelCase, then the JSON keys."""
    return ".".join((to_camel(change.path[0]), *change.path[1:]))


class FieldChange(ResponseModel):
    wire_sources: ClassVar[dict[str, Any]] = {"field": _field_path}

    field: str
    before: JSONValue
    after: JSONValue
    kind: Annotated[Literal["added", "removed"] | None, ABSENT_IF_NONE] = None


class ItemDiff(ResponseModel):
    item_id: UUID
    change: Literal["added", "removed", "changed"]
    before: Annotated[Item | None, ABSENT_IF_NONE] = None
    after: Annotated[Item | None, ABSENT_IF_NONE] = None
    changes: Annotated[list[FieldChange] | None, ABSENT_IF_NONE] = None


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


class EventItem(ResponseModel):
    """An item as an event recorded it (inside an event's `payload.items`)."""

    id: UUID
    external_id: str | None
    input: JSONValue
    expected_output: JSONValue
    metadata: JSONValue


def _payload(event: Any) -> dict[str, Any]:
    """The event's fields named as the API names them (camelCase), their values as recorded."""
    return {to_camel(name): [encode(EventItem, item) for item in value] if name == "items" else value
            for name, value in event.payload.items()}


class Event(ResponseModel):
    wire_sources: ClassVar[dict[str, Any]] = {"payload": _payload}

    type: str
    aggregate_version: int = Field(description="Position of the event in the dataset's own stream (1-based).")
    version: int | None = Field(description="Dataset version after the event (item-changing events only).")
    timestamp: datetime
    actor: str
    reason: str | None
    payload: dict[str, JSONValue]


class EventList(ResponseModel):
    events: list[Event]
    next_after: int | None = Field(default=None, description="Pass as `after` for the next events; null at the end.")
    pagination: Pagination


class FeedEvent(Event):
    position: int = Field(description="Position in the global log (ascending, gap-free order of commits).")
    aggregate_id: UUID
    aggregate_type: str


class EventFeed(ResponseModel):
    events: list[FeedEvent]
    next_after: int | None
    head: int


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
    skipped_item_ids: Annotated[list[UUID] | None, ABSENT_IF_NONE] = Field(
        default=None, description="Copy with onConflict=skip: the source items left out.")


class ItemsDeleted(ResponseModel):
    dataset_id: UUID
    version: int
    count: int
    item_ids: list[UUID]


class ItemPurged(ResponseModel):
    dataset_id: UUID
    item_id: UUID
    purged_at: datetime
    changed: bool = Field(description="False when the item had been purged before.")
    aggregate_version: int
