"""Dataset use cases (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from evalledger.service_layer.applications import Datasets, Written
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import ItemChange, NewItem
from evalledger.domain.errors import ExternalIdTakenError, InvalidRequestError, ItemPurgedError
from evalledger.projections.dataset_queries import DatasetQueries, DatasetView, ItemView, TagView
from evalledger.transfer.copying import OnConflict, settle_external_ids

ITEM_FIELDS = frozenset({"input", "expected_output", "metadata", "external_id"})
# How often a copy is tried again when the target takes an externalId between the check and the write.
COPY_ATTEMPTS = 3


# The use cases' answers: typed, snake_case; `api/` (and the UI) put them into words.


@dataclass(slots=True)
class DatasetDeleted:
    dataset_id: UUID
    version: int
    deleted: bool = True


@dataclass(slots=True)
class ItemWritten:
    dataset_id: UUID
    version: int  # the version the write made (the current one when nothing changed)
    changed: bool
    item: ItemView


@dataclass(slots=True)
class ItemsWritten:
    dataset_id: UUID
    version: int
    count: int
    items: list[Any]  # each with `id` and `external_id`
    skipped_item_ids: list[str] | None = None  # copies only: the source items left out


@dataclass(slots=True)
class ItemsDeleted:
    dataset_id: UUID
    version: int
    count: int
    item_ids: list[str]


@dataclass(slots=True)
class ItemPurged:
    dataset_id: UUID
    item_id: UUID
    purged_at: Any
    changed: bool
    aggregate_version: int


@dataclass(slots=True)
class TagWritten(TagView):
    dataset_id: UUID | None = None
    outcome: str = "tagged"  # tagged, moved, unchanged
    previous_version: int | None = None


@dataclass(slots=True)
class TagDeleted:
    dataset_id: UUID
    tag: str
    version: int
    deleted: bool = True


@dataclass
class DatasetUseCases:
    datasets: Datasets
    queries: DatasetQueries
    read_your_writes: Any  # Callable[[Written], None]

    def _settled(self, written: Written) -> Written:
        self.read_your_writes(written)
        return written

    def create_dataset(
        self,
        *,
        name: str,
        description: str = "",
        metadata: dict[str, Any] | None = None,
        input_schema: dict[str, Any] | None = None,
        expected_output_schema: dict[str, Any] | None = None,
        project_id: UUID | None = None,
        actor: str,
        reason: str | None = None,
    ) -> DatasetView:
        """A new, empty dataset at version 0 in `project_id` (default: the default project)."""
        written = self._settled(self.datasets.create_dataset(
            name=name, description=description, metadata=metadata or {}, input_schema=input_schema,
            expected_output_schema=expected_output_schema, project_id=project_id, actor=actor, reason=reason,
        ))
        return self.queries.get_dataset(written.aggregate_id)

    def change_details(self, dataset_id: UUID, changes: dict[str, Any], *, actor: str,
                       reason: str | None = None) -> DatasetView:
        self._settled(self.datasets.change_details(dataset_id, changes, actor=actor, reason=reason))
        return self.queries.get_dataset(dataset_id)

    def delete_dataset(self, dataset_id: UUID, *, actor: str, reason: str | None = None) -> DatasetDeleted:
        written = self._settled(self.datasets.delete_dataset(dataset_id, actor=actor, reason=reason))
        return DatasetDeleted(dataset_id, written.dataset_version)

    # -- items (the same semantics and answers as the JSON API's item routes) ---------------

    def add_item(self, dataset_id: UUID, *, input: Any, expected_output: Any = None,
                 metadata: dict[str, Any] | None = None, external_id: str | None = None, actor: str,
                 reason: str | None = None) -> ItemWritten:
        """One item, one new version."""
        new = NewItem(content=ItemContent(input=input, expected_output=expected_output, metadata=metadata or {}),
                      external_id=external_id)
        written = self._settled(self.datasets.add_items(dataset_id, [new], actor=actor, reason=reason))
        item = self.queries.get_item(dataset_id, UUID(written.items[0].id), written.dataset_version)
        return ItemWritten(dataset_id, written.dataset_version, True, item)

    def add_items(self, dataset_id: UUID, items: list[NewItem], *, actor: str,
                  reason: str | None = None) -> ItemsWritten:
        """Many items, one new version for the batch; all or nothing."""
        written = self._settled(self.datasets.add_items(dataset_id, items, actor=actor, reason=reason))
        return ItemsWritten(dataset_id, written.dataset_version, len(written.items), written.items)

    def update_item(self, dataset_id: UUID, item_id: UUID, fields: dict[str, Any], *, actor: str,
                    reason: str | None = None) -> ItemWritten:
        """Change the fields named in `fields` (input, expected_output, metadata, external_id);
        one new version, none when nothing changes."""
        unknown = set(fields) - ITEM_FIELDS
        if unknown:
            raise InvalidRequestError(f"unknown item field(s): {', '.join(sorted(unknown))}")
        change = ItemChange(
            item_id=str(item_id), input=fields.get("input"), expected_output=fields.get("expected_output"),
            metadata=fields.get("metadata"), external_id=fields.get("external_id"),
            fields=frozenset(fields),
        )
        written = self._settled(self.datasets.update_items(dataset_id, [change], actor=actor, reason=reason))
        item = self.queries.get_item(dataset_id, item_id, written.dataset_version)
        return ItemWritten(dataset_id, written.dataset_version, written.changed, item)

    def delete_items(self, dataset_id: UUID, item_ids: list[UUID], *, actor: str,
                     reason: str | None = None) -> ItemsDeleted:
        """Delete items (one new version); the answer names each item once."""
        ids = [str(item_id) for item_id in item_ids]
        written = self._settled(self.datasets.delete_items(dataset_id, ids, actor=actor, reason=reason))
        unique = list(dict.fromkeys(ids))
        return ItemsDeleted(dataset_id, written.dataset_version, len(unique), unique)

    def purge_item(self, dataset_id: UUID, item_id: UUID, *, actor: str, reason: str | None = None) -> ItemPurged:
        """Erase an item's content everywhere (crypto-shredding); idempotent."""
        written = self._settled(self.datasets.purge_item(dataset_id, str(item_id), actor=actor, reason=reason))
        return ItemPurged(dataset_id, item_id, self.queries.purged_at(dataset_id, item_id), written.changed,
                          written.aggregate_version)

    # -- version tags ----------------------------------------------------------------------

    def tag_version(self, dataset_id: UUID, tag: str, *, version: int | None = None, move: bool = False,
                    actor: str, reason: str | None = None) -> TagWritten:
        """Name a version (default: the current one) with a tag; a tag naming another version
        moves only with `move` (else 409 tag-exists). Tagging it again where it is changes nothing."""
        before = self.datasets.get_dataset(dataset_id).tags.get(tag)
        written, outcome, _ = self.datasets.tag_version(dataset_id, tag, version, move=move, actor=actor,
                                                        reason=reason)
        self._settled(written)
        now = self.queries.get_tag(dataset_id, tag)
        return TagWritten(now.tag, now.version, now.tagged_at, now.actor, now.reason, dataset_id, outcome,
                          before if outcome == "moved" else None)

    def delete_tag(self, dataset_id: UUID, tag: str, *, actor: str, reason: str | None = None) -> TagDeleted:
        """Remove a tag (the version it named stays)."""
        written, previous = self.datasets.delete_tag(dataset_id, tag, actor=actor, reason=reason)
        self._settled(written)
        return TagDeleted(dataset_id, tag, previous)

    # -- copies (the same semantics and answers as the JSON API's transfer routes) ----------

    def items_of(self, dataset_id: UUID, version: int | None, item_ids: list[UUID] | None,
                 origin: dict[str, Any]) -> list[NewItem]:
        """Items of a dataset version (all, or the named ones) as new items that record their origin.

        Purged items have no content to copy: naming one is refused (409 item-purged); a copy of
        a whole version leaves them out."""
        at = self.queries.resolve_version(dataset_id, version)
        wanted = {str(i) for i in item_ids} if item_ids is not None else None
        items = []
        for page in self.queries.iter_item_pages(dataset_id, at):
            for item in page:
                if wanted is not None and str(item.id) not in wanted:
                    continue
                if item.purged_at is not None:
                    if wanted is not None:
                        raise ItemPurgedError(f"item {item.id} was purged; there is no content to copy")
                    continue
                items.append(NewItem(
                    content=ItemContent(item.input, item.expected_output, item.metadata or {}),
                    external_id=item.external_id,
                    source={**origin, "datasetId": str(dataset_id), "version": at, "itemId": str(item.id)},
                ))
        if wanted is not None and len(items) != len(wanted):
            found = {item.source["itemId"] for item in items if item.source}
            missing = sorted(wanted - found)
            raise InvalidRequestError(f"{len(missing)} item(s) are not in dataset {dataset_id} at version {at}: "
                                      f"{', '.join(missing[:10])}")
        return items

    def duplicate_dataset(self, dataset_id: UUID, *, name: str | None = None, version: int | None = None,
                          actor: str, reason: str | None = None) -> DatasetView:
        """A new dataset with a version's items (one version), recording their origin."""
        source = self.queries.dataset_row(dataset_id)
        items = self.items_of(dataset_id, version, None, {"kind": "duplicate"})
        created = self.datasets.create_dataset(
            name=name or f"{source['name']} (copy)", description=source["description"],
            metadata={**source["metadata"], "duplicatedFrom": {"datasetId": str(dataset_id)}},
            input_schema=source["input_schema"], expected_output_schema=source["expected_output_schema"],
            project_id=source["project_id"], actor=actor, reason=reason,
        )
        written = created
        if items:
            written, _ = self.datasets.import_items(created.aggregate_id, items, mode="append", actor=actor,
                                                    reason=reason)
        self._settled(written)
        return self.queries.get_dataset(created.aggregate_id)

    def duplicate_item(self, dataset_id: UUID, item_id: UUID, *, actor: str,
                       reason: str | None = None) -> ItemsWritten:
        """A copy of one item in its own dataset (without its externalId), in a new version."""
        [item] = self.items_of(dataset_id, None, [item_id], {"kind": "duplicate"})
        copy = NewItem(content=item.content, external_id=None, source=item.source)
        return self.add_items(dataset_id, [copy], actor=actor, reason=reason)

    def copy_items(self, dataset_id: UUID, *, target_dataset_id: UUID, item_ids: list[UUID],
                   version: int | None = None, on_conflict: OnConflict = "refuse", actor: str,
                   reason: str | None = None) -> ItemsWritten:
        """Copy selected items into another dataset (one version there). Items whose externalId
        the target already uses are refused, skipped or copied without it (`on_conflict`)."""
        items = self.items_of(dataset_id, version, item_ids, {"kind": "copy"})
        for attempt in range(COPY_ATTEMPTS):
            taken = self.datasets.get_dataset(target_dataset_id).external_ids
            copied, skipped = settle_external_ids(items, taken, target_dataset_id, on_conflict)
            if not copied:  # every item was skipped: nothing written, no new version
                return ItemsWritten(target_dataset_id, self.queries.resolve_version(target_dataset_id), 0, [],
                                    skipped)
            try:
                written, _ = self.datasets.import_items(target_dataset_id, copied, mode="append", actor=actor,
                                                        reason=reason)
            except ExternalIdTakenError:
                if attempt == COPY_ATTEMPTS - 1:
                    raise
                continue
            self._settled(written)
            return ItemsWritten(target_dataset_id, written.dataset_version, len(written.items), written.items,
                                skipped)
        raise AssertionError("unreachable")

    def dataset_from_items(self, *, name: str, source_dataset_id: UUID, item_ids: list[UUID],
                           version: int | None = None, actor: str, reason: str | None = None) -> DatasetView:
        """A new dataset (in the source's project) from selected items of another."""
        items = self.items_of(source_dataset_id, version, item_ids, {"kind": "copy"})
        project_id = self.queries.dataset_row(source_dataset_id)["project_id"]
        created = self.datasets.create_dataset(name=name, project_id=project_id, actor=actor, reason=reason)
        written, _ = self.datasets.import_items(created.aggregate_id, items, mode="append", actor=actor,
                                                reason=reason)
        self._settled(written)
        return self.queries.get_dataset(created.aggregate_id)
