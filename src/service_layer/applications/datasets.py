"""The dataset application: commands on datasets and their items."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import Recording

from evalledger.domain import schemas
from evalledger.domain.datasets import DETAIL_NAMES, Dataset, ImportOutcome, Item, ItemChange, NewItem
from evalledger.domain.errors import DatasetNotFoundError, ItemNotFoundError
from evalledger.domain.storable import ensure_items_storable, ensure_storable
from evalledger.service_layer.applications.ledger import LedgerApplication, Written, last_notification_id


class Datasets(LedgerApplication):
    """Commands on datasets and their items."""

    def _load(self, dataset_id: UUID) -> Dataset:
        dataset = self._load_including_deleted(dataset_id)
        if dataset.is_deleted:
            raise DatasetNotFoundError(f"dataset {dataset_id} not found")
        return dataset

    def get_dataset(self, dataset_id: UUID, *, aggregate_version: int | None = None) -> Dataset:
        """The aggregate, replayed from its events (to `aggregate_version` if given).
        Callers must not change it."""
        if aggregate_version is None:
            with self._lock_for(dataset_id):
                return self._load(dataset_id)
        return self._get(dataset_id, Dataset, DatasetNotFoundError, "dataset", aggregate_version)

    def _written(self, dataset: Dataset, recordings: list[Recording[UUID]], **extra: Any) -> Written:
        return Written(
            aggregate_id=dataset.id,
            aggregate_version=dataset.version,
            notification_id=last_notification_id(recordings),
            recordings=recordings,
            dataset_version=dataset.dataset_version,
            changed=bool(recordings),
            **extra,
        )

    # -- commands -------------------------------------------------------------------

    def create_dataset(
        self,
        *,
        name: str,
        description: str = "",
        metadata: dict[str, Any] | None = None,
        input_schema: dict[str, Any] | None = None,
        expected_output_schema: dict[str, Any] | None = None,
        dataset_id: UUID | None = None,
        project_id: UUID | None = None,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        ensure_storable({"name": name, "description": description, "metadata": metadata,
                         "inputSchema": input_schema, "expectedOutputSchema": expected_output_schema})
        schemas.check_schema("inputSchema", input_schema)
        schemas.check_schema("expectedOutputSchema", expected_output_schema)
        dataset = Dataset.create(
            name=name,
            description=description,
            metadata=metadata,
            input_schema=input_schema,
            expected_output_schema=expected_output_schema,
            dataset_id=dataset_id,
            project_id=project_id,
            actor=actor,
            reason=reason,
        )
        recordings = self.save(dataset)
        return self._written(dataset, recordings)

    def change_details(
        self,
        dataset_id: UUID,
        changes: dict[str, Any],
        *,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        ensure_storable({DETAIL_NAMES.get(name, name): value for name, value in changes.items()})
        for name in ("input_schema", "expected_output_schema"):
            if name in changes:
                schemas.check_schema(DETAIL_NAMES[name], changes[name])

        def decide(dataset: Dataset) -> bool:
            input_schema = changes.get("input_schema", dataset.input_schema)
            output_schema = changes.get("expected_output_schema", dataset.expected_output_schema)
            if input_schema != dataset.input_schema or output_schema != dataset.expected_output_schema:
                schemas.check_current_items(dataset.items.values(), input_schema, output_schema)
            return dataset.change_details(changes, actor=actor, reason=reason)

        dataset, _, recordings = self._command(dataset_id, decide)
        return self._written(dataset, recordings)

    def add_items(
        self,
        dataset_id: UUID,
        new_items: list[NewItem],
        *,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        ensure_items_storable((index, new.content, new.external_id) for index, new in enumerate(new_items))

        def decide(dataset: Dataset) -> list[Item]:
            schemas.check_items(dataset.input_schema, dataset.expected_output_schema,
                                ((index, new.content) for index, new in enumerate(new_items)))
            return dataset.add_items(new_items, actor=actor, reason=reason)

        dataset, items, recordings = self._command(dataset_id, decide)
        return self._written(dataset, recordings, items=items)

    def update_items(
        self,
        dataset_id: UUID,
        changes: list[ItemChange],
        *,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        """Partial updates of one or more items: one version, or none when nothing changes."""
        ensure_storable({
            f"items/{index}/{name}": value
            for index, change in enumerate(changes)
            for name, value in (("input", change.input), ("expectedOutput", change.expected_output),
                                ("metadata", change.metadata), ("externalId", change.external_id))
            if name in change.fields
        })

        def decide(dataset: Dataset) -> list[Item]:
            new_states = dataset.changed_items(changes)
            positions = {change.item_id: index for index, change in enumerate(changes)}
            schemas.check_items(dataset.input_schema, dataset.expected_output_schema,
                                ((positions[item.id], item.content) for item in new_states))
            if new_states:
                dataset.update_items(new_states, actor=actor, reason=reason)
            # The caller gets every item it named, changed or not.
            return [dataset.items[change.item_id] for change in changes]

        dataset, items, recordings = self._command(dataset_id, decide)
        return self._written(dataset, recordings, items=items)

    def delete_items(
        self,
        dataset_id: UUID,
        item_ids: list[str],
        *,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        dataset, _, recordings = self._command(
            dataset_id, lambda dataset: dataset.delete_items(item_ids, actor=actor, reason=reason)
        )
        return self._written(dataset, recordings)

    def import_items(
        self,
        dataset_id: UUID,
        rows: list[NewItem],
        *,
        mode: str = "append",
        actor: str = "anonymous",
        reason: str | None = None,
        checked: bool = False,
    ) -> tuple[Written, ImportOutcome]:
        """A whole import as one version (see Dataset.import_items). `checked`: every row
        already passed `storable.problems` (the importer checks each row as it reads it)."""
        if not checked:
            ensure_items_storable((index, row.content, row.external_id) for index, row in enumerate(rows))

        def decide(dataset: Dataset) -> ImportOutcome:
            schemas.check_items(dataset.input_schema, dataset.expected_output_schema,
                                ((index, row.content) for index, row in enumerate(rows)))
            return dataset.import_items(rows, mode=mode, actor=actor, reason=reason)

        dataset, outcome, recordings = self._command(dataset_id, decide)
        return self._written(dataset, recordings, items=outcome.added), outcome

    def purge_item(
        self, dataset_id: UUID, item_id: str, *, actor: str = "anonymous", reason: str | None = None
    ) -> Written:
        """Erase an item's content from the whole history (crypto-shredding).

        The key is destroyed first, so once this returns the content is unreadable even
        if recording the `ItemPurged` event then fails (purging again records it). Works
        on deleted items and on deleted datasets."""
        with self._lock_for(dataset_id):
            dataset = self._load_including_deleted(dataset_id)
            if item_id not in dataset.known_item_ids:
                raise ItemNotFoundError(f"item {item_id} not found in dataset {dataset_id}")
            self.item_keys.destroy(item_id)
            self._evict(dataset_id)  # the cached aggregate holds the plain content
            dataset, _, recordings = self._command(
                dataset_id,
                lambda dataset: dataset.purge_item(item_id, actor=actor, reason=reason),
                load=self._load_including_deleted,
            )
        self.item_keys.vacuum()
        return self._written(dataset, recordings)

    def tag_version(self, dataset_id: UUID, tag: str, version: int | None, *, move: bool = False,
                    actor: str = "anonymous", reason: str | None = None) -> tuple[Written, str, int]:
        """Name a version with a tag (default: the current version); see Dataset.tag_version.
        Returns what was written, what happened and the version the tag names."""

        def decide(dataset: Dataset) -> tuple[str, int]:
            at = dataset.dataset_version if version is None else version
            return dataset.tag_version(tag, at, move=move, actor=actor, reason=reason), at

        dataset, (outcome, at), recordings = self._command(dataset_id, decide)
        return self._written(dataset, recordings), outcome, at

    def delete_tag(self, dataset_id: UUID, tag: str, *, actor: str = "anonymous",
                   reason: str | None = None) -> tuple[Written, int]:
        dataset, previous, recordings = self._command(
            dataset_id, lambda dataset: dataset.delete_tag(tag, actor=actor, reason=reason))
        return self._written(dataset, recordings), previous

    def _load_including_deleted(self, dataset_id: UUID) -> Dataset:
        return self._get(dataset_id, Dataset, DatasetNotFoundError, "dataset")

    def delete_dataset(self, dataset_id: UUID, *, actor: str = "anonymous", reason: str | None = None) -> Written:
        dataset, _, recordings = self._command(
            dataset_id, lambda dataset: dataset.delete(actor=actor, reason=reason)
        )
        self._evict(dataset_id)
        return self._written(dataset, recordings)
