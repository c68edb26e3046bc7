"""The Dataset aggregate: a named, versioned collection of test cases ("items").

Versioning (DESIGN.md): a dataset is created at version 0; every command that changes
items (add, update, delete, in ones or in batches) produces exactly one new version,
however many items it touches; changes to details (name, description, metadata,
schemas) are events too but do not bump the version. Each item-changing event carries
the `dataset_version` it produced, so the aggregate can be replayed to any version.

Event payloads hold only JSON-native values (ids as strings) and item content only in
the form `content.encode_content` gives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from evalledger.domain.access import DEFAULT_PROJECT_ID
from evalledger.domain.audited import AuditedEvent
from evalledger.domain.content import PURGED_CONTENT, ItemContent
from evalledger.domain.errors import (
    DatasetNotFoundError,
    ExternalIdTakenError,
    InvalidRequestError,
    ItemNotFoundError,
    ItemPurgedError,
    VersionNotFoundError,
)
# An item's types and its recorded entry (items.py) and the tag rules (tags.py) are the
# aggregate's parts; they are importable from here too, where most callers look for them.
from evalledger.domain.items import Item, ItemChange, NewItem, item_entry, item_from_entry  # noqa: F401
from evalledger.domain.tags import TAG_PATTERN, TagExistsError, TagNotFoundError, check_tag_name  # noqa: F401

JSON = Any

# The details a dataset has besides its items (its attributes, and its read model's columns).
DETAIL_FIELDS = ("name", "description", "metadata", "input_schema", "expected_output_schema")


# An import is one version, saved as events of at most this many items each.
IMPORT_EVENT_ITEMS = 5_000


@dataclass(frozen=True)
class ImportOutcome:
    added: list[Item]
    updated: list[Item]
    removed: list[str]
    unchanged: int


def project_of(project_id: str | None) -> UUID:
    """A dataset's project: the recorded one, or the default project for datasets created
    before projects existed."""
    return DEFAULT_PROJECT_ID if project_id is None else UUID(project_id)


class Dataset(Aggregate):
    # Every event class states its version (`class_version`); see AuditedEvent for upcasting.
    class Event(AuditedEvent):
        pass

    class Created(Event, Aggregate.Created):
        class_version = 3
        name: str
        description: str
        metadata: dict[str, JSON]
        input_schema: dict[str, JSON] | None
        expected_output_schema: dict[str, JSON] | None
        # The project the dataset (and its runs) belongs to. Version 2 predates projects:
        # such datasets belong to the default project (`project_of`).
        project_id: str | None

        @staticmethod
        def upcast_v2_v3(state: dict[str, JSON]) -> None:
            state.setdefault("project_id", None)


    class DetailsChanged(Event):
        class_version = 2

        # Only the changed details, by their recorded names (DETAIL_NAMES), so that the events
        # already stored keep their meaning without an upcast.
        changes: dict[str, JSON]

        def apply(self, dataset: Dataset) -> None:
            for recorded_name, value in self.changes.items():
                setattr(dataset, DETAIL_ATTRIBUTES[recorded_name], value)

    class ItemsAdded(Event):
        class_version = 2

        dataset_version: int
        items: list[dict[str, JSON]]

        def apply(self, dataset: Dataset) -> None:
            for entry in self.items:
                item = item_from_entry(entry)
                dataset.items[item.id] = item
                dataset.known_item_ids.add(item.id)
                if item.external_id is not None:
                    dataset.external_ids[item.external_id] = item.id
            dataset.dataset_version = self.dataset_version

    class ItemsUpdated(Event):
        class_version = 2

        dataset_version: int
        # Each entry is the item's whole new state, not a patch.
        items: list[dict[str, JSON]]

        def apply(self, dataset: Dataset) -> None:
            for entry in self.items:
                item = item_from_entry(entry)
                old = dataset.items[item.id]
                if old.external_id is not None and old.external_id != item.external_id:
                    del dataset.external_ids[old.external_id]
                if item.external_id is not None:
                    dataset.external_ids[item.external_id] = item.id
                dataset.items[item.id] = item
            dataset.dataset_version = self.dataset_version

    class ItemsDeleted(Event):
        class_version = 2

        dataset_version: int
        item_ids: list[str]

        def apply(self, dataset: Dataset) -> None:
            for item_id in self.item_ids:
                item = dataset.items.pop(item_id)
                if item.external_id is not None:
                    dataset.external_ids.pop(item.external_id, None)
            dataset.dataset_version = self.dataset_version

    class Deleted(Event):
        class_version = 2

        def apply(self, dataset: Dataset) -> None:
            dataset.is_deleted = True

    class ItemPurged(Event):
        """The item's content was erased from the whole history: its key is destroyed, so
        every earlier event now reads its content as PURGED_CONTENT. Versions, counts and
        run scores are untouched; the item can no longer be changed."""

        class_version = 1
        item_id: str

        def apply(self, dataset: Dataset) -> None:
            dataset.purged.add(self.item_id)
            item = dataset.items.get(self.item_id)
            if item is not None:
                dataset.items[self.item_id] = Item(id=item.id, external_id=item.external_id,
                                                   content=PURGED_CONTENT, source=item.source)

    # Version tags: a name for a dataset version (`golden`). Tagging, moving and deleting a
    # tag are events of their own, so the audit trail says who pointed a tag where, and
    # when; none changes items or the dataset version (their fields are not called
    # `dataset_version`, which marks item-changing events).

    class VersionTagged(Event):
        """A new tag names `tagged_version`."""

        class_version = 1
        tag: str
        tagged_version: int

        def apply(self, dataset: Dataset) -> None:
            dataset.tags[self.tag] = self.tagged_version

    class TagMoved(Event):
        """A tag moved from `previous_version` to `tagged_version`."""

        class_version = 1
        tag: str
        tagged_version: int
        previous_version: int

        def apply(self, dataset: Dataset) -> None:
            dataset.tags[self.tag] = self.tagged_version

    class TagDeleted(Event):
        """A tag that named `previous_version` was removed (the version stays)."""

        class_version = 1
        tag: str
        previous_version: int

        def apply(self, dataset: Dataset) -> None:
            dataset.tags.pop(self.tag, None)

    def __init__(
        self,
        name: str,
        description: str,
        metadata: dict[str, JSON],
        input_schema: dict[str, JSON] | None,
        expected_output_schema: dict[str, JSON] | None,
        project_id: str | None,
    ) -> None:
        self.project_id = project_of(project_id)
        self.name = name
        self.description = description
        self.metadata = metadata
        self.input_schema = input_schema
        self.expected_output_schema = expected_output_schema
        self.dataset_version = 0
        self.items: dict[str, Item] = {}
        self.external_ids: dict[str, str] = {}  # externalId -> item id
        self.known_item_ids: set[str] = set()  # every item ever added, deleted ones too
        self.purged: set[str] = set()
        self.tags: dict[str, int] = {}  # tag -> the dataset version it names
        self.is_deleted = False

    @classmethod
    def create(
        cls,
        *,
        name: str,
        description: str = "",
        metadata: dict[str, JSON] | None = None,
        input_schema: dict[str, JSON] | None = None,
        expected_output_schema: dict[str, JSON] | None = None,
        dataset_id: UUID | None = None,
        project_id: UUID | None = None,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Dataset:
        return cls._create(
            cls.Created,
            id=dataset_id or uuid4(),
            project_id=str(project_id or DEFAULT_PROJECT_ID),
            name=name,
            description=description,
            metadata=metadata or {},
            input_schema=input_schema,
            expected_output_schema=expected_output_schema,
            actor=actor,
            reason=reason,
        )

    # -- commands -------------------------------------------------------------------

    def change_details(self, changes: dict[str, JSON], *, actor: str, reason: str | None) -> bool:
        """Record the details (by attribute: DETAIL_FIELDS) that differ from the current ones.
        Returns whether any did."""
        self._check_not_deleted()
        unknown = set(changes) - set(DETAIL_FIELDS)
        if unknown:
            raise InvalidRequestError(f"unknown dataset fields: {sorted(unknown)}")
        effective = {DETAIL_NAMES[key]: value for key, value in changes.items() if getattr(self, key) != value}
        if not effective:
            return False
        self.trigger_event(self.DetailsChanged, changes=effective, actor=actor, reason=reason)
        return True

    def add_items(self, new_items: list[NewItem], *, actor: str, reason: str | None) -> list[Item]:
        self._check_not_deleted()
        if not new_items:
            raise InvalidRequestError("no items given")
        seen: dict[str, int] = {}
        items = []
        for index, new in enumerate(new_items):
            if new.external_id is not None:
                if new.external_id in self.external_ids:
                    raise ExternalIdTakenError(
                        f"externalId {new.external_id!r} is already used by item "
                        f"{self.external_ids[new.external_id]}",
                        errors=[{"field": f"items/{index}/externalId", "message": "already used in this dataset"}],
                    )
                if new.external_id in seen:
                    raise ExternalIdTakenError(
                        f"externalId {new.external_id!r} appears twice in the batch "
                        f"(items {seen[new.external_id]} and {index})",
                        errors=[{"field": f"items/{index}/externalId", "message": "repeated in this batch"}],
                    )
                seen[new.external_id] = index
            item_id = new.id or str(uuid4())
            if new.id is not None and new.id in self.items:
                raise ExternalIdTakenError(f"item id {new.id} already exists")
            items.append(Item(id=item_id, external_id=new.external_id, content=new.content, source=new.source))
        self.trigger_event(
            self.ItemsAdded,
            dataset_version=self.dataset_version + 1,
            items=[item_entry(item) for item in items],
            actor=actor,
            reason=reason,
        )
        return items

    def changed_items(self, changes: list[ItemChange]) -> list[Item]:
        """The new state of each item a batch of partial updates would change (no-ops left
        out). Raises when an item is unknown or an externalId would clash."""
        self._check_not_deleted()
        if not changes:
            raise InvalidRequestError("no item changes given")
        claimed: dict[str, str] = {}
        result: dict[str, Item] = {}
        for change in changes:
            if change.item_id in result:
                raise InvalidRequestError(f"item {change.item_id} appears twice in the batch")
            old = self.items.get(change.item_id)
            if old is None:
                raise ItemNotFoundError(f"item {change.item_id} not found in dataset {self.id}")
            if change.item_id in self.purged:
                raise ItemPurgedError(f"item {change.item_id} was purged and cannot be changed")
            fields = change.fields
            content = ItemContent(
                input=change.input if "input" in fields else old.content.input,
                expected_output=(
                    change.expected_output if "expected_output" in fields else old.content.expected_output
                ),
                metadata=change.metadata if "metadata" in fields else old.content.metadata,
            )
            external_id = change.external_id if "external_id" in fields else old.external_id
            if external_id is not None and external_id != old.external_id:
                owner = self.external_ids.get(external_id) or claimed.get(external_id)
                if owner is not None and owner != change.item_id:
                    raise ExternalIdTakenError(f"externalId {external_id!r} is already used by item {owner}")
                claimed[external_id] = change.item_id
            new = Item(id=old.id, external_id=external_id, content=content, source=old.source)
            if new != old:
                result[new.id] = new
        return list(result.values())

    def update_items(self, items: list[Item], *, actor: str, reason: str | None) -> None:
        """Record the new states computed by `changed_items`."""
        self._check_not_deleted()
        self.trigger_event(
            self.ItemsUpdated,
            dataset_version=self.dataset_version + 1,
            items=[item_entry(item) for item in items],
            actor=actor,
            reason=reason,
        )

    def delete_items(self, item_ids: list[str], *, actor: str, reason: str | None) -> None:
        self._check_not_deleted()
        if not item_ids:
            raise InvalidRequestError("no item ids given")
        unique = list(dict.fromkeys(item_ids))
        missing = [item_id for item_id in unique if item_id not in self.items]
        if missing:
            raise ItemNotFoundError(
                f"{len(missing)} item(s) not found in dataset {self.id}: {', '.join(missing[:10])}",
                missing=missing[:100],
            )
        self.trigger_event(
            self.ItemsDeleted,
            dataset_version=self.dataset_version + 1,
            item_ids=unique,
            actor=actor,
            reason=reason,
        )

    def import_items(self, rows: list[NewItem], *, mode: str, actor: str, reason: str | None) -> ImportOutcome:
        """One new version holding a whole import (none when it changes nothing).

        append: every row is a new item. upsert: rows whose externalId names an item
        update it (identical ones are left alone), the others are added. replace: as
        upsert, and every current item the file does not name is deleted."""
        self._check_not_deleted()
        if mode not in ("append", "upsert", "replace"):
            raise InvalidRequestError(f"mode must be append, upsert or replace, not {mode!r}")
        seen: set[str] = set()
        for index, row in enumerate(rows):
            if row.external_id is not None:
                if row.external_id in seen:
                    raise ExternalIdTakenError(f"externalId {row.external_id!r} appears twice in the import "
                                               f"(second at entry {index})")
                seen.add(row.external_id)
        added: list[Item] = []
        updated: list[Item] = []
        kept: set[str] = set()
        for row in rows:
            existing_id = self.external_ids.get(row.external_id) if row.external_id is not None else None
            if existing_id is None:
                added.append(Item(id=str(uuid4()), external_id=row.external_id, content=row.content, source=row.source))
            elif mode == "append":
                raise ExternalIdTakenError(f"externalId {row.external_id!r} is already used by item {existing_id}; "
                                           "import with mode=upsert to update it")
            elif existing_id in self.purged:
                raise ItemPurgedError(f"externalId {row.external_id!r} names item {existing_id}, which was purged "
                                      "and cannot be changed")
            else:
                kept.add(existing_id)
                old = self.items[existing_id]
                if old.content != row.content:
                    updated.append(Item(id=existing_id, external_id=row.external_id, content=row.content,
                                        source=row.source))
        removed = [item_id for item_id in self.items if item_id not in kept] if mode == "replace" else []
        outcome = ImportOutcome(added=added, updated=updated, removed=removed,
                                unchanged=len(kept) - len(updated))
        if not (added or updated or removed):
            return outcome
        version = self.dataset_version + 1
        for start in range(0, len(removed), IMPORT_EVENT_ITEMS):
            self.trigger_event(self.ItemsDeleted, dataset_version=version,
                               item_ids=removed[start : start + IMPORT_EVENT_ITEMS], actor=actor, reason=reason)
        for start in range(0, len(updated), IMPORT_EVENT_ITEMS):
            self.trigger_event(self.ItemsUpdated, dataset_version=version,
                               items=[item_entry(i) for i in updated[start : start + IMPORT_EVENT_ITEMS]],
                               actor=actor, reason=reason)
        for start in range(0, len(added), IMPORT_EVENT_ITEMS):
            self.trigger_event(self.ItemsAdded, dataset_version=version,
                               items=[item_entry(i) for i in added[start : start + IMPORT_EVENT_ITEMS]],
                               actor=actor, reason=reason)
        return outcome

    def purge_item(self, item_id: str, *, actor: str, reason: str | None) -> bool:
        """Record that an item's content is erased (its key is destroyed by the caller).
        Allowed on deleted items and deleted datasets: erasure is owed regardless.
        Returns False when it was purged already."""
        if item_id not in self.known_item_ids:
            raise ItemNotFoundError(f"item {item_id} not found in dataset {self.id}")
        if item_id in self.purged:
            return False
        self.trigger_event(self.ItemPurged, item_id=item_id, actor=actor, reason=reason)
        return True

    def tag_version(self, tag: str, version: int, *, move: bool, actor: str, reason: str | None) -> str:
        """Name `version` with `tag`. A tag that names another version is moved only when
        `move` is given (else TagExistsError). Returns what happened: "tagged", "moved" or
        "unchanged" (the tag already names that version: no event)."""
        self._check_not_deleted()
        check_tag_name(tag)
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= self.dataset_version:
            raise VersionNotFoundError(f"dataset {self.id} has no version {version} "
                                       f"(current version is {self.dataset_version})")
        previous = self.tags.get(tag)
        if previous == version:
            return "unchanged"
        if previous is None:
            self.trigger_event(self.VersionTagged, tag=tag, tagged_version=version, actor=actor, reason=reason)
            return "tagged"
        if not move:
            raise TagExistsError(f"tag {tag!r} names version {previous} of dataset {self.id}; "
                                 f"move it to version {version} explicitly (move: true)",
                                 tag=tag, tagged_version=previous)
        self.trigger_event(self.TagMoved, tag=tag, tagged_version=version, previous_version=previous,
                           actor=actor, reason=reason)
        return "moved"

    def delete_tag(self, tag: str, *, actor: str, reason: str | None) -> int:
        """Remove a tag; returns the version it named."""
        self._check_not_deleted()
        previous = self.tags.get(tag)
        if previous is None:
            raise TagNotFoundError(f"dataset {self.id} has no tag {tag!r}")
        self.trigger_event(self.TagDeleted, tag=tag, previous_version=previous, actor=actor, reason=reason)
        return previous

    def delete(self, *, actor: str, reason: str | None) -> None:
        self._check_not_deleted()
        self.trigger_event(self.Deleted, actor=actor, reason=reason)

    def _check_not_deleted(self) -> None:
        if self.is_deleted:
            raise DatasetNotFoundError(f"dataset {self.id} not found")


# A detail's attribute -> its name in a recorded DetailsChanged event. The first version of the
# event took the API's names, and the stored events keep them: translating here (and back with
# DETAIL_ATTRIBUTES) leaves every stored event readable, with no upcast and no second shape.
# They are also the names problems give a detail (errors speak the API's names).
DETAIL_NAMES = {
    "name": "name",
    "description": "description",
    "metadata": "metadata",
    "input_schema": "inputSchema",
    "expected_output_schema": "expectedOutputSchema",
}
# A recorded name -> the attribute (and the datasets read model's column) it sets.
DETAIL_ATTRIBUTES = {recorded: attribute for attribute, recorded in DETAIL_NAMES.items()}
