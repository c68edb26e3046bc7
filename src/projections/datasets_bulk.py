"""The datasets view's bulk load: `Dataset` events folded into the rows of empty
`datasets`, `dataset_items` and `dataset_versions` tables (see bulk.py).

The rows come out exactly as `DatasetsView`'s handlers write them:
- an item's revision is final when the item is next updated or deleted: it is written
  then, already closed (`valid_to`); its open revision is held until the end;
- a version's row is final when its dataset reaches the next version;
- dataset rows are held until the end (one per dataset);
- a purge becomes, at the end, the handler's UPDATE of the rows the item had when it was
  purged (those valid from that dataset version or before).
A spilled open revision (bulk.py) that is closed later gets an UPDATE of its `valid_to`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import Cursor
from psycopg.sql import SQL

from evalledger.domain.content import Sealed
from evalledger.domain.datasets import Dataset, project_of
from evalledger.projections.bulk import (
    NULL,
    BulkLoad,
    content_columns,
    copy_id,
    copy_int,
    copy_json,
    copy_text,
    copy_time,
)
from evalledger.projections.datasets import _DETAIL_COLUMNS, NO_CONTENT, REVISION_COLUMNS, revision_head, revision_line

_DATASET_COLUMNS = ("dataset_id", "name", "description", "metadata", "input_schema", "expected_output_schema",
                    "version", "item_count", "next_seq", "aggregate_version", "created_at", "updated_at", "deleted_at", "project_id")
_VERSION_COLUMNS = ("dataset_id", "version", "aggregate_version", "created_at", "added", "updated", "removed",
                    "item_count", "actor", "reason")


class _Item:
    """What the fold keeps of a live item: what its next revision takes over from it, and
    its open revision (valid from `open_from`), not yet written: the row's columns before
    `valid_to` (`head`) and the content and update time of the rest, encoded only when the
    row is written (in the final spill, while the database parses what went before). Once
    the open revision has been written, `head` is None."""

    __slots__ = ("seq", "created", "source", "external", "open_from", "head", "content", "updated")

    def __init__(self, seq: int, created: bytes, source: bytes, external: bytes, open_from: int,
                 head: bytes, content: Any, updated: bytes) -> None:
        self.seq, self.created, self.source, self.external = seq, created, source, external
        self.open_from: int = open_from
        self.head: bytes | None = head
        self.content = content
        self.updated = updated

    def row(self, valid_to: bytes) -> bytes:
        """The open revision's row, ending at `valid_to` (NULL: still open)."""
        return revision_line(self.head, valid_to, self.seq, False, self.external,  # type: ignore[arg-type]
                             content_columns(self.content), self.source, self.created, self.updated)

    @property
    def size(self) -> int:
        content = self.content
        return 200 + (content.size if isinstance(content, Sealed) else 500)


class _Dataset:
    __slots__ = ("id", "id_bytes", "columns", "version", "item_count", "next_seq", "items", "version_row")

    def __init__(self, dataset_id: Any, columns: dict[str, bytes]) -> None:
        self.id = dataset_id
        self.id_bytes = copy_id(dataset_id)
        self.columns = columns  # the `datasets` columns other than the counters, encoded
        self.version = 0
        self.item_count = 0
        self.next_seq = 0
        self.items: dict[str, _Item] = {}
        # The row of the dataset's latest version, written once the next version starts.
        self.version_row: dict[str, Any] | None = None


class DatasetsBulkLoad(BulkLoad):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datasets: dict[Any, _Dataset] = {}
        self.items_out = self.rows("dataset_items", REVISION_COLUMNS)
        self.versions_out = self.rows("dataset_versions", _VERSION_COLUMNS)
        self.closings: list[tuple[Any, str, int, int]] = []  # spilled revisions closed since
        self.purges: list[tuple[Any, str, datetime, int]] = []
        self.holding: list[_Item] = []  # items given an open revision since the last spill

    # -- the folds, one per event class -------------------------------------------------

    def _created(self, e: Dataset.Created) -> None:
        ts = copy_time(e.timestamp)
        dataset = self.datasets[e.originator_id] = _Dataset(e.originator_id, {
            "name": copy_text(e.name), "description": copy_text(e.description), "metadata": copy_json(e.metadata),
            "input_schema": copy_json(e.input_schema),
            "expected_output_schema": copy_json(e.expected_output_schema),
            "aggregate_version": copy_int(e.originator_version), "created_at": ts, "updated_at": ts,
            "deleted_at": NULL, "project_id": copy_id(project_of(e.project_id)),
        })
        dataset.version_row = {"version": 0, "aggregate_version": e.originator_version, "created_at": ts,
                               "added": 0, "updated": 0, "removed": 0, "item_count": 0,
                               "actor": e.actor, "reason": e.reason}

    def _details_changed(self, e: Dataset.DetailsChanged) -> None:
        dataset = self.datasets.get(e.originator_id)
        if dataset is None:
            return
        for wire_name, value in e.changes.items():
            column = _DETAIL_COLUMNS[wire_name]
            dataset.columns[column] = copy_text(value) if column in ("name", "description") else copy_json(value)
        self._touch(dataset, e)

    def _deleted(self, e: Dataset.Deleted) -> None:
        dataset = self.datasets.get(e.originator_id)
        if dataset is not None:
            self._touch(dataset, e)
            dataset.columns["deleted_at"] = dataset.columns["updated_at"]

    def _items_added(self, e: Dataset.ItemsAdded) -> None:
        moved = self._moved_on(e, added=len(e.items))
        if moved is None:
            return
        dataset, ts, version = moved
        for entry in e.items:
            item_id = entry["id"]
            earlier = dataset.items.get(item_id)
            if earlier is not None:  # an id added again: the handler leaves its revision open
                self._write_open(earlier)
            dataset.next_seq += 1
            item = dataset.items[item_id] = _Item(
                dataset.next_seq, ts, copy_json(entry.get("source")), copy_text(entry.get("externalId")),
                e.dataset_version, revision_head(dataset.id_bytes, item_id, version), entry["content"], ts)
            self._hold(item)

    def _items_updated(self, e: Dataset.ItemsUpdated) -> None:
        moved = self._moved_on(e, updated=len(e.items))
        if moved is None:
            return
        dataset, ts, version = moved
        for entry in e.items:
            item_id = entry["id"]
            item = dataset.items.get(item_id)
            if item is None:  # deleted, or never added: the handler writes nothing
                continue
            self._close(dataset, item_id, item, e.dataset_version)
            raw_source = entry.get("source")
            if raw_source is not None:
                item.source = copy_json(raw_source)
            item.external = copy_text(entry.get("externalId"))
            item.open_from = e.dataset_version
            item.head = revision_head(dataset.id_bytes, item_id, version)
            item.content, item.updated = entry["content"], ts
            self._hold(item)

    def _items_deleted(self, e: Dataset.ItemsDeleted) -> None:
        moved = self._moved_on(e, removed=len(e.item_ids))
        if moved is None:
            return
        dataset, ts, version = moved
        for item_id in e.item_ids:
            item = dataset.items.pop(item_id, None)
            if item is None:
                continue
            self._close(dataset, item_id, item, e.dataset_version)
            # The deletion marker: open, no content, the last revision's seq and externalId.
            self.items_out.add(revision_line(revision_head(dataset.id_bytes, item_id, version), NULL, item.seq, True,
                                             item.external, NO_CONTENT, NULL, item.created, ts))

    def _item_purged(self, e: Dataset.ItemPurged) -> None:
        dataset = self.datasets.get(e.originator_id)
        if dataset is not None:
            self.purges.append((dataset.id, e.item_id, e.timestamp, dataset.version))
            self._touch(dataset, e)

    folds = {
        Dataset.Created: _created,
        Dataset.DetailsChanged: _details_changed,
        Dataset.Deleted: _deleted,
        Dataset.ItemsAdded: _items_added,
        Dataset.ItemsUpdated: _items_updated,
        Dataset.ItemsDeleted: _items_deleted,
        Dataset.ItemPurged: _item_purged,
    }

    # -- helpers of the folds ---------------------------------------------------------

    def _touch(self, dataset: _Dataset, e: Any) -> bytes:
        ts = copy_time(e.timestamp)
        dataset.columns["aggregate_version"] = copy_int(e.originator_version)
        dataset.columns["updated_at"] = ts
        return ts

    def _moved_on(self, e: Any, **counts: int) -> tuple[_Dataset, bytes, bytes] | None:
        """The event's dataset moved on to the event's version (`_changed`), with the event's
        time and version encoded; None for a dataset the load has no row for (the handlers
        write nothing then)."""
        dataset = self.datasets.get(e.originator_id)
        if dataset is None:
            return None
        return dataset, self._changed(dataset, e, **counts), b"%d" % e.dataset_version

    def _changed(self, dataset: _Dataset, e: Any, *, added: int = 0, updated: int = 0, removed: int = 0) -> bytes:
        """Move the dataset on to the event's version, as the handlers' `d` and `v` do."""
        ts = self._touch(dataset, e)
        dataset.version = e.dataset_version
        dataset.item_count += added - removed
        row = dataset.version_row
        if row is None or row["version"] != e.dataset_version:
            if row is not None:
                self._write_version(dataset, row)
            row = dataset.version_row = {"version": e.dataset_version, "created_at": ts, "added": 0, "updated": 0,
                                         "removed": 0, "actor": e.actor, "reason": e.reason}
        row["added"] += added
        row["updated"] += updated
        row["removed"] += removed
        row["aggregate_version"] = e.originator_version
        row["item_count"] = dataset.item_count
        return ts

    def _hold(self, item: _Item) -> None:
        """Keep the item's new open revision back (written when it is closed, or spilled)."""
        self.held += item.size
        self.holding.append(item)

    def _close(self, dataset: _Dataset, item_id: str, item: _Item, version: int) -> None:
        """End the item's open revision at `version`."""
        if item.head is not None:
            self.items_out.add(item.row(b"%d" % version))
            self.held -= item.size
            item.head = item.content = None
        else:
            self.closings.append((dataset.id, item_id, item.open_from, version))

    def _write_open(self, item: _Item) -> None:
        if item.head is not None:
            self.items_out.add(item.row(NULL))
            self.held -= item.size
            item.head = item.content = None

    def _write_version(self, dataset: _Dataset, row: dict[str, Any]) -> None:
        self.versions_out.add(b"\t".join((
            dataset.id_bytes, b"%d" % row["version"], b"%d" % row["aggregate_version"], row["created_at"],
            b"%d" % row["added"], b"%d" % row["updated"], b"%d" % row["removed"], b"%d" % row["item_count"],
            copy_text(row["actor"]), copy_text(row["reason"]))) + b"\n")

    # -- spilling and finishing -------------------------------------------------------------

    def spill(self) -> None:
        for item in self.holding:
            self._write_open(item)
        self.holding = []

    def finish(self) -> None:
        self.spill()
        datasets_out = self.rows("datasets", _DATASET_COLUMNS)
        for dataset in self.datasets.values():
            if dataset.version_row is not None:
                self._write_version(dataset, dataset.version_row)
            c = dataset.columns
            datasets_out.add(b"\t".join((
                dataset.id_bytes, c["name"], c["description"], c["metadata"], c["input_schema"],
                c["expected_output_schema"], b"%d" % dataset.version, b"%d" % dataset.item_count,
                b"%d" % dataset.next_seq, c["aggregate_version"], c["created_at"], c["updated_at"],
                c["deleted_at"], c["project_id"])) + b"\n")
        for out in (self.items_out, self.versions_out, datasets_out):
            out.flush()
        items = self.view.table("dataset_items")
        closings, purges = self.closings, self.purges

        def close_and_purge(curs: Cursor[Any]) -> None:
            if closings:
                curs.execute(
                    SQL("UPDATE {} i SET valid_to = c.v FROM unnest(%s::uuid[], %s::uuid[], %s::int[], %s::int[])"
                        " AS c(dataset_id, item_id, valid_from, v) WHERE i.dataset_id = c.dataset_id"
                        " AND i.item_id = c.item_id AND i.valid_from = c.valid_from").format(items),
                    [list(column) for column in zip(*closings, strict=True)],
                )
            for dataset_id, item_id, ts, version in purges:  # what DatasetsView._item_purged does
                curs.execute(
                    SQL("UPDATE {} SET input = NULL, expected_output = NULL,"
                        " metadata = CASE WHEN deleted THEN NULL ELSE '{{}}'::jsonb END, purged_at = %s"
                        " WHERE dataset_id = %s AND item_id = %s AND valid_from <= %s").format(items),
                    (ts, dataset_id, item_id, version),
                )

        self.writer.after(close_and_purge)
