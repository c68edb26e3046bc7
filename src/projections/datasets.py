"""The datasets projection: the dataset list, the temporal item revisions and the
versions list, all fed by `Dataset` events.

Tables
- `datasets`: one row per dataset, with its current version and item count.
- `dataset_items`: one row per item revision. A revision is valid for dataset versions
  `valid_from <= v < valid_to` (`valid_to` NULL: still current). Deleting an item closes
  its last revision and adds a marker row (`deleted`, no content) so history shows it.
  `seq` is the item's position in its dataset (creation order), shared by all its
  revisions: listings are ordered by it and page by ranges of it, never by OFFSET.
- `dataset_versions`: one row per dataset version with what it changed.
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import Cursor
from psycopg.sql import SQL, Composed
from psycopg.types.json import Jsonb

from evalledger.domain.content import decode_content
from evalledger.domain.datasets import Dataset
from evalledger.projections.view import BatchingView

DATASET_TOPICS = tuple(
    f"evalledger.domain.datasets:Dataset.{name}"
    for name in ("Created", "DetailsChanged", "ItemsAdded", "ItemsUpdated", "ItemsDeleted", "Deleted")
)

_DETAIL_COLUMNS = {
    "name": "name",
    "description": "description",
    "metadata": "metadata",
    "inputSchema": "input_schema",
    "expectedOutputSchema": "expected_output_schema",
}


# The version row of an item-changing event (an import's several events add to one row).
# Needs a CTE `d` returning the dataset's item_count after the event.
_VERSION_ROW = (
    " v AS (INSERT INTO {versions} (dataset_id, version, aggregate_version, created_at,"
    "  added, updated, removed, item_count, actor, reason)"
    "  SELECT %(id)s, %(v)s, %(av)s, %(ts)s, %(added)s, %(updated)s, %(removed)s, d.item_count,"
    "  %(actor)s, %(reason)s FROM d"
    " ON CONFLICT (dataset_id, version) DO UPDATE SET added = {versions}.added + excluded.added,"
    "  updated = {versions}.updated + excluded.updated, removed = {versions}.removed + excluded.removed,"
    "  item_count = excluded.item_count, aggregate_version = excluded.aggregate_version)"
)


def _version_params(e: Any, *, added: int = 0, updated: int = 0, removed: int = 0) -> dict[str, Any]:
    return {
        "id": e.originator_id,
        "v": e.dataset_version,
        "av": e.originator_version,
        "ts": e.timestamp,
        "actor": e.actor,
        "reason": e.reason,
        "added": added,
        "updated": updated,
        "removed": removed,
    }


def _json_or_none(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _rows_json(entries: list[dict[str, Any]]) -> str:
    """Item entries of an event as a JSON array of read-model rows, for jsonb_to_recordset."""
    rows = []
    for entry in entries:
        content = decode_content(entry["content"])
        rows.append(
            {
                "item_id": entry["id"],
                "external_id": entry.get("externalId"),
                "input": content.input,
                "expected_output": content.expected_output,
                "metadata": content.metadata,
                "source": entry.get("source"),
            }
        )
    return orjson.dumps(rows).decode()


class DatasetsView(BatchingView):
    read_model_tables = ("datasets", "dataset_items", "dataset_versions")

    def table_statements(self) -> list[Composed]:
        t = self.table
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " dataset_id uuid PRIMARY KEY,"
                " name text NOT NULL,"
                " description text NOT NULL,"
                " metadata jsonb NOT NULL,"
                " input_schema jsonb,"
                " expected_output_schema jsonb,"
                " version integer NOT NULL,"
                " item_count integer NOT NULL,"
                " next_seq bigint NOT NULL,"
                " aggregate_version integer NOT NULL,"
                " created_at timestamptz NOT NULL,"
                " updated_at timestamptz NOT NULL,"
                " deleted_at timestamptz)"
            ).format(t("datasets")),
            SQL(
                "CREATE INDEX IF NOT EXISTS datasets_live_idx ON {} (created_at DESC, dataset_id)"
                " WHERE deleted_at IS NULL"
            ).format(t("datasets")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " dataset_id uuid NOT NULL,"
                " item_id uuid NOT NULL,"
                " valid_from integer NOT NULL,"
                " valid_to integer,"
                " seq bigint NOT NULL,"
                " deleted boolean NOT NULL,"
                " external_id text,"
                " input jsonb,"
                " expected_output jsonb,"
                " metadata jsonb,"
                " source jsonb,"
                " created_at timestamptz NOT NULL,"
                " updated_at timestamptz NOT NULL,"
                " PRIMARY KEY (dataset_id, item_id, valid_from))"
            ).format(t("dataset_items")),
            SQL(
                "CREATE INDEX IF NOT EXISTS dataset_items_seq_idx ON {}"
                " (dataset_id, seq) INCLUDE (valid_from, valid_to, deleted)"
            ).format(t("dataset_items")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " dataset_id uuid NOT NULL,"
                " version integer NOT NULL,"
                " aggregate_version integer NOT NULL,"
                " created_at timestamptz NOT NULL,"
                " added integer NOT NULL,"
                " updated integer NOT NULL,"
                " removed integer NOT NULL,"
                " item_count integer NOT NULL,"
                " actor text NOT NULL,"
                " reason text,"
                " PRIMARY KEY (dataset_id, version))"
            ).format(t("dataset_versions")),
            SQL(
                "CREATE INDEX IF NOT EXISTS dataset_versions_time_idx ON {} (dataset_id, created_at)"
            ).format(t("dataset_versions")),
        ]

    def tables(self) -> dict[str, Composed]:
        return {name: self.table(table) for name, table in
                (("datasets", "datasets"), ("versions", "dataset_versions"), ("items", "dataset_items"))}

    def apply(self, curs: Cursor[Any], event: Any) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, curs, event)

    # -- one method per event type ----------------------------------------------------

    def _created(self, curs: Cursor[Any], e: Dataset.Created) -> None:
        curs.execute(
            SQL(
                "WITH d AS (INSERT INTO {} (dataset_id, name, description, metadata, input_schema,"
                " expected_output_schema, version, item_count, next_seq, aggregate_version,"
                " created_at, updated_at) VALUES (%(id)s, %(name)s, %(description)s, %(metadata)s,"
                " %(input_schema)s, %(output_schema)s, 0, 0, 0, %(av)s, %(ts)s, %(ts)s))"
                " INSERT INTO {} (dataset_id, version, aggregate_version, created_at, added, updated,"
                " removed, item_count, actor, reason)"
                " VALUES (%(id)s, 0, %(av)s, %(ts)s, 0, 0, 0, 0, %(actor)s, %(reason)s)"
            ).format(self.table("datasets"), self.table("dataset_versions")),
            {
                "id": e.originator_id,
                "name": e.name,
                "description": e.description,
                "metadata": Jsonb(e.metadata),
                "input_schema": _json_or_none(e.input_schema),
                "output_schema": _json_or_none(e.expected_output_schema),
                "av": e.originator_version,
                "ts": e.timestamp,
                "actor": e.actor,
                "reason": e.reason,
            },
            prepare=True,
        )

    def _details_changed(self, curs: Cursor[Any], e: Dataset.DetailsChanged) -> None:
        assignments = [SQL("aggregate_version = %(av)s"), SQL("updated_at = %(ts)s")]
        params: dict[str, Any] = {"id": e.originator_id, "av": e.originator_version, "ts": e.timestamp}
        for wire_name, value in e.changes.items():
            column = _DETAIL_COLUMNS[wire_name]
            assignments.append(SQL("{} = %({})s").format(SQL(column), SQL(column)))
            params[column] = value if column in ("name", "description") else _json_or_none(value)
        curs.execute(
            SQL("UPDATE {} SET {} WHERE dataset_id = %(id)s").format(
                self.table("datasets"), SQL(", ").join(assignments)
            ),
            params,
        )

    def _items_added(self, curs: Cursor[Any], e: Dataset.ItemsAdded) -> None:
        curs.execute(
            SQL(
                "WITH d AS (UPDATE {datasets} SET next_seq = next_seq + %(n)s, version = %(v)s,"
                "  item_count = item_count + %(n)s, aggregate_version = %(av)s, updated_at = %(ts)s"
                "  WHERE dataset_id = %(id)s RETURNING next_seq - %(n)s AS base, item_count),"
                + _VERSION_ROW +
                " INSERT INTO {items} (dataset_id, item_id, valid_from, valid_to, seq, deleted,"
                "  external_id, input, expected_output, metadata, source, created_at, updated_at)"
                " SELECT %(id)s, r.item_id, %(v)s, NULL, d.base + r.ord, false, r.external_id,"
                "  r.input, r.expected_output, r.metadata, r.source, %(ts)s, %(ts)s"
                " FROM d, ROWS FROM (jsonb_to_recordset(%(rows)s::jsonb) AS (item_id uuid,"
                "  external_id text, input jsonb, expected_output jsonb, metadata jsonb, source jsonb))"
                "  WITH ORDINALITY AS r(item_id, external_id, input, expected_output, metadata, source, ord)"
            ).format(**self.tables()),
            {**_version_params(e, added=len(e.items)), "n": len(e.items), "rows": _rows_json(e.items)},
            prepare=True,
        )

    def _items_updated(self, curs: Cursor[Any], e: Dataset.ItemsUpdated) -> None:
        curs.execute(
            SQL(
                "WITH r AS (SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS (item_id uuid,"
                "  external_id text, input jsonb, expected_output jsonb, metadata jsonb, source jsonb)),"
                " closed AS (UPDATE {items} SET valid_to = %(v)s"
                "  WHERE dataset_id = %(id)s AND item_id = ANY(%(ids)s::uuid[])"
                "  AND valid_to IS NULL AND NOT deleted"
                "  RETURNING item_id, seq, created_at, source),"
                " d AS (UPDATE {datasets} SET version = %(v)s, aggregate_version = %(av)s,"
                "  updated_at = %(ts)s WHERE dataset_id = %(id)s RETURNING item_count),"
                + _VERSION_ROW +
                " INSERT INTO {items} (dataset_id, item_id, valid_from, valid_to, seq, deleted,"
                "  external_id, input, expected_output, metadata, source, created_at, updated_at)"
                " SELECT %(id)s, r.item_id, %(v)s, NULL, c.seq, false, r.external_id,"
                "  r.input, r.expected_output, r.metadata, coalesce(r.source, c.source), c.created_at, %(ts)s"
                " FROM r JOIN closed c ON c.item_id = r.item_id"
            ).format(**self.tables()),
            {**_version_params(e, updated=len(e.items)), "rows": _rows_json(e.items),
             "ids": [entry["id"] for entry in e.items]},
            prepare=True,
        )

    def _items_deleted(self, curs: Cursor[Any], e: Dataset.ItemsDeleted) -> None:
        curs.execute(
            SQL(
                "WITH closed AS (UPDATE {items} SET valid_to = %(v)s"
                "  WHERE dataset_id = %(id)s AND item_id = ANY(%(ids)s::uuid[])"
                "  AND valid_to IS NULL AND NOT deleted"
                "  RETURNING item_id, seq, external_id, created_at),"
                " d AS (UPDATE {datasets} SET version = %(v)s, aggregate_version = %(av)s,"
                "  item_count = item_count - %(n)s, updated_at = %(ts)s"
                "  WHERE dataset_id = %(id)s RETURNING item_count),"
                + _VERSION_ROW +
                " INSERT INTO {items} (dataset_id, item_id, valid_from, valid_to, seq, deleted,"
                "  external_id, input, expected_output, metadata, created_at, updated_at)"
                " SELECT %(id)s, c.item_id, %(v)s, NULL, c.seq, true, c.external_id,"
                "  NULL, NULL, NULL, c.created_at, %(ts)s FROM closed c"
            ).format(**self.tables()),
            {**_version_params(e, removed=len(e.item_ids)), "n": len(e.item_ids), "ids": e.item_ids},
            prepare=True,
        )

    def _deleted(self, curs: Cursor[Any], e: Dataset.Deleted) -> None:
        curs.execute(
            SQL(
                "UPDATE {} SET deleted_at = %(ts)s, updated_at = %(ts)s, aggregate_version = %(av)s"
                " WHERE dataset_id = %(id)s"
            ).format(self.table("datasets")),
            {"id": e.originator_id, "ts": e.timestamp, "av": e.originator_version},
        )


_HANDLERS = {
    Dataset.Created: DatasetsView._created,
    Dataset.DetailsChanged: DatasetsView._details_changed,
    Dataset.ItemsAdded: DatasetsView._items_added,
    Dataset.ItemsUpdated: DatasetsView._items_updated,
    Dataset.ItemsDeleted: DatasetsView._items_deleted,
    Dataset.Deleted: DatasetsView._deleted,
}
