"""The datasets view's bulk load: the log folded (datasets_fold.py, the fold live catch-up
uses too) into the rows of empty `datasets`, `dataset_items`, `dataset_versions` and
`dataset_tags` tables, sent with COPY (see bulk.py).

What is written when:
- an item revision once it is closed (the item updated or deleted) or, for a deletion
  marker, at once; open revisions are held until the end (or spilled);
- a version's row once its dataset has moved on to another version;
- dataset and tag rows at the end.
Only a purge changes a revision already written: the fold purges the revisions it still
holds, and at the end the view's live path purges those written before the purge (valid
from the dataset's version at the purge or before), with the fold's own rule. A spilled
open revision (bulk.py) that is closed later gets an UPDATE of its `valid_to`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor

from evalledger.domain.content import Sealed
from evalledger.domain.datasets import Dataset
from evalledger.projections.bulk import BulkLoad, copy_id, copy_json, copy_text, copy_time
from evalledger.projections.datasets import (
    DATASET_COLUMNS,
    REVISION_COLUMNS,
    TAG_COLUMNS,
    VERSION_COLUMNS,
    DatasetsView,
    revision_lines,
)
from evalledger.projections.datasets_fold import (
    FOLDS,
    DatasetRow,
    DatasetsState,
    ItemRevision,
    TagRow,
    VersionRow,
)


def dataset_line(row: DatasetRow) -> bytes:
    return b"\t".join((
        copy_id(row.dataset_id), copy_text(row.name), copy_text(row.description), copy_json(row.metadata),
        copy_json(row.input_schema), copy_json(row.expected_output_schema), b"%d" % row.version,
        b"%d" % row.item_count, b"%d" % row.next_seq, b"%d" % row.aggregate_version, copy_time(row.created_at),
        copy_time(row.updated_at), copy_time(row.deleted_at), copy_id(row.project_id))) + b"\n"


def version_line(row: VersionRow) -> bytes:
    return b"\t".join((
        copy_id(row.dataset_id), b"%d" % row.version, b"%d" % row.aggregate_version, copy_time(row.created_at),
        b"%d" % row.added, b"%d" % row.updated, b"%d" % row.removed, b"%d" % row.item_count,
        copy_text(row.actor), copy_text(row.reason))) + b"\n"


def tag_line(row: TagRow) -> bytes:
    return b"\t".join((
        copy_id(row.dataset_id), copy_text(row.tag), b"%d" % row.version, b"%d" % row.aggregate_version,
        copy_time(row.tagged_at), copy_text(row.actor), copy_text(row.reason))) + b"\n"


def _size(row: ItemRevision) -> int:
    """About how many bytes a held revision takes, for the memory budget."""
    content = row.content
    return 200 + (content.size if isinstance(content, Sealed) else 500)


class DatasetsBulkLoad(BulkLoad):
    view: DatasetsView

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = DatasetsState()
        self.items_out = self.rows("dataset_items", REVISION_COLUMNS)
        self.versions_out = self.rows("dataset_versions", VERSION_COLUMNS)
        self.current_version: dict[UUID, tuple[UUID, int]] = {}  # dataset -> its version row's key
        self.closings: list[tuple[UUID, str, int, int]] = []  # spilled revisions closed since
        self.purges: list[tuple[UUID, str, datetime, int]] = []  # dataset, item, when, dataset version
        # Open revisions held, and their sizes: by dataset, then (item id, valid_from).
        self.sizes: dict[UUID, dict[tuple[str, int], int]] = {}

    def fold(self, events: Any) -> None:
        state = self.state
        for event in events:
            apply = FOLDS.get(type(event))
            if apply is None:
                continue
            if type(event) is Dataset.ItemPurged:
                dataset = state.datasets.get(event.originator_id)
                if dataset is not None:
                    self.purges.append((dataset.dataset_id, event.item_id, event.timestamp, dataset.version))
            apply(state, event)
        self._settle()
        if self.held > self.memory_budget:
            self.spill()
            self.held = 0

    def _settle(self) -> None:
        """Write the rows the fold has made final, and forget them."""
        state = self.state
        final = []
        for dataset_id, changed in state.changed.items():
            sizes = self.sizes.get(dataset_id)
            if sizes is None:
                sizes = self.sizes[dataset_id] = {}
            for key, row in changed.items():
                if row.stored:  # written already (spilled)
                    if row.valid_to is not None:
                        self.closings.append((row.dataset_id, row.item_id, row.valid_from, row.valid_to))
                        self._forget(row)
                elif row.valid_to is not None or row.deleted:
                    final.append(row)
                    self.held -= sizes.pop(key, 0)
                    self._forget(row)
                elif key not in sizes:
                    size = sizes[key] = _size(row)
                    self.held += size
        state.changed = {}
        self.items_out.add_encoded(final, revision_lines)
        versions = state.versions
        for key in state.changed_versions:
            dataset_id, version = key
            if version != state.datasets[dataset_id].version:
                if key in versions:
                    self.versions_out.add(version_line(versions.pop(key)))
                continue
            before = self.current_version.get(dataset_id)
            if before is not None and before != key and before in versions:
                self.versions_out.add(version_line(versions.pop(before)))
            self.current_version[dataset_id] = key
        state.changed_versions = set()

    def _forget(self, row: ItemRevision) -> None:
        items = self.state.revisions_of[row.dataset_id]
        rows = items[row.item_id]
        rows[:] = [other for other in rows if other is not row]
        if not rows:
            del items[row.item_id]

    def _unwritten(self) -> list[ItemRevision]:
        """The revisions held and not written yet, one per key (the last made, as the
        state's `revisions` has them)."""
        return [row for items in self.state.revisions_of.values()
                for row in {(row.item_id, row.valid_from): row for rows in items.values() for row in rows
                            if not row.stored}.values()]

    def spill(self) -> None:
        self.items_out.add_encoded(self._unwritten(), revision_lines)
        for items in self.state.revisions_of.values():
            for rows in items.values():
                for row in rows:
                    row.stored = True
                    row.content = None  # what an update or deletion takes over from it stays
        self.sizes = {}

    def finish(self) -> None:
        state = self.state
        self.items_out.add_encoded(self._unwritten(), revision_lines)
        for row in state.versions.values():
            self.versions_out.add(version_line(row))
        datasets_out = self.rows("datasets", DATASET_COLUMNS)
        for dataset in state.datasets.values():
            datasets_out.add(dataset_line(dataset))
        tags_out = self.rows("dataset_tags", TAG_COLUMNS)
        for tag in state.tags.values():
            if tag is not None:
                tags_out.add(tag_line(tag))
        for out in (self.items_out, self.versions_out, datasets_out, tags_out):
            out.flush()
        view, closings, purges = self.view, self.closings, self.purges

        def close_and_purge(curs: Cursor[Any]) -> None:
            if closings:
                curs.execute(view._close_revisions, [list(column) for column in zip(*closings, strict=True)])
            if purges:
                view.purge_written(curs, purges)

        self.writer.after(close_and_purge)

