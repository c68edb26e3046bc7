"""The datasets read model's answers: typed snake_case objects (`api/` puts them on the wire),
made from the rows of its tables, and the field-level difference of two JSON values that a diff
shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(slots=True)
class DatasetView:
    id: UUID
    name: str
    description: str
    metadata: dict[str, Any]
    input_schema: dict[str, Any] | None
    expected_output_schema: dict[str, Any] | None
    version: int
    item_count: int
    created_at: datetime
    updated_at: datetime
    project_id: UUID


@dataclass(slots=True)
class DatasetOverview(DatasetView):
    last_actor: str | None = None


@dataclass(slots=True)
class ItemView:
    """One revision of an item: what it held from version `valid_from` until `valid_to`."""

    id: UUID
    dataset_id: UUID
    external_id: str | None
    input: Any
    expected_output: Any
    metadata: dict[str, Any] | None
    source: dict[str, Any] | None
    version: int
    valid_from: int
    valid_to: int | None
    created_at: datetime
    updated_at: datetime
    purged_at: datetime | None


@dataclass(slots=True)
class ItemRevision(ItemView):
    deleted: bool = False


@dataclass(slots=True)
class VersionView:
    version: int
    created_at: datetime
    added: int
    updated: int
    removed: int
    item_count: int
    actor: str
    reason: str | None
    tags: list[str]


@dataclass(slots=True)
class TagView:
    tag: str
    version: int
    tagged_at: datetime
    actor: str
    reason: str | None


@dataclass(slots=True)
class FieldChange:
    """One changed field of an item: `path` from the item's field (snake_case) down into its JSON."""

    path: tuple[str, ...]
    before: Any
    after: Any
    kind: str | None = None  # "added" / "removed" when the field exists on one side only


@dataclass(slots=True)
class ItemDiff:
    item_id: UUID
    change: str  # added, removed, changed
    before: ItemView | None = None
    after: ItemView | None = None
    changes: list[FieldChange] | None = None


@dataclass(slots=True)
class DiffSummary:
    added: int = 0
    removed: int = 0
    changed: int = 0


@dataclass(slots=True)
class DiffPage:
    dataset_id: UUID
    from_version: int
    to_version: int
    summary: DiffSummary
    changes: list[ItemDiff]
    total: int


def _dataset_fields(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["dataset_id"], row["name"], row["description"], row["metadata"], row["input_schema"],
        row["expected_output_schema"], row["version"], row["item_count"], row["created_at"], row["updated_at"],
        row["project_id"],
    )


def dataset_view(row: dict[str, Any]) -> DatasetView:
    return DatasetView(*_dataset_fields(row))


def dataset_overview(row: dict[str, Any]) -> DatasetOverview:
    return DatasetOverview(*_dataset_fields(row), last_actor=row["last_actor"])


def item_view(row: dict[str, Any]) -> ItemView:
    return ItemView(
        row["item_id"], row["dataset_id"], row["external_id"], row["input"], row["expected_output"],
        row["metadata"], row["source"], row["valid_from"], row["valid_from"], row["valid_to"], row["created_at"],
        row["updated_at"], row["purged_at"],
    )


def item_revision(row: dict[str, Any]) -> ItemRevision:
    return ItemRevision(
        row["item_id"], row["dataset_id"], row["external_id"], row["input"], row["expected_output"],
        row["metadata"], row["source"], row["valid_from"], row["valid_from"], row["valid_to"], row["created_at"],
        row["updated_at"], row["purged_at"], row["deleted"],
    )


def version_view(row: dict[str, Any]) -> VersionView:
    return VersionView(row["version"], row["created_at"], row["added"], row["updated"], row["removed"],
                       row["item_count"], row["actor"], row["reason"], row.get("tags") or [])


def tag_view(row: dict[str, Any]) -> TagView:
    return TagView(row["tag"], row["version"], row["tagged_at"], row["actor"], row["reason"])


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()



def field_changes(before: Any, after: Any, path: tuple[str, ...]) -> list[FieldChange]:
    """Field-level differences between two JSON values: objects are compared key by key
    (recursively, the path growing by the key); anything else is compared whole."""
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        changes = []
        for key in list(before) + [k for k in after if k not in before]:
            changes += field_changes(before.get(key, _ABSENT), after.get(key, _ABSENT), (*path, key))
        return changes
    return [FieldChange(
        path,
        None if before is _ABSENT else before,
        None if after is _ABSENT else after,
        "added" if before is _ABSENT else "removed" if after is _ABSENT else None,
    )]
