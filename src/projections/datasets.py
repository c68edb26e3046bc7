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

from collections.abc import Callable
from typing import Any

import orjson
from psycopg import Cursor
from psycopg.sql import SQL, Composed, Identifier, Literal
from psycopg.types.json import Jsonb

from evalledger.domain.content import decode_content
from evalledger.domain.access import DEFAULT_PROJECT_ID
from evalledger.domain.datasets import Dataset, project_of
from evalledger.projections.bulk import NULL, content_columns, copy_id, copy_json, copy_text, copy_time
from evalledger.projections.view import BatchingView, Handler, one_at_a_time

DATASET_TOPICS = tuple(
    f"evalledger.domain.datasets:Dataset.{name}"
    for name in ("Created", "DetailsChanged", "ItemsAdded", "ItemsUpdated", "ItemsDeleted", "Deleted", "ItemPurged")
)

_DETAIL_COLUMNS = {
    "name": "name",
    "description": "description",
    "metadata": "metadata",
    "inputSchema": "input_schema",
    "expectedOutputSchema": "expected_output_schema",
}


# Each item-changing handler's statement ends with these two CTEs (and needs their
# parameters from `_dataset_changes`): `d` moves each dataset's row on by what the run did
# to it and returns, per dataset, the item seq and item count from before the run; `v`
# writes the run's version rows. An import's several events of one version add to one row
# (here or in an earlier statement): it keeps the time, actor and reason of the first.
_DATASET_AND_VERSION_ROWS = (
    " x AS (SELECT * FROM jsonb_to_recordset(%(datasets)s::jsonb) AS x(dataset_id uuid, v integer,"
    "  av integer, ts timestamptz, added integer, delta integer)),"
    " d AS (UPDATE {datasets} t SET version = x.v, aggregate_version = x.av, updated_at = x.ts,"
    "  next_seq = t.next_seq + x.added, item_count = t.item_count + x.delta"
    "  FROM x WHERE t.dataset_id = x.dataset_id"
    "  RETURNING t.dataset_id, t.next_seq - x.added AS base, t.item_count - x.delta AS count_before),"
    " v AS (INSERT INTO {versions} (dataset_id, version, aggregate_version, created_at,"
    "  added, updated, removed, item_count, actor, reason)"
    "  SELECT y.dataset_id, y.v, y.av, y.ts, y.added, y.updated, y.removed, d.count_before + y.count_delta,"
    "  y.actor, y.reason"
    "  FROM jsonb_to_recordset(%(versions)s::jsonb) AS y(dataset_id uuid, v integer, av integer,"
    "  ts timestamptz, added integer, updated integer, removed integer, count_delta integer, actor text,"
    "  reason text) JOIN d USING (dataset_id)"
    " ON CONFLICT (dataset_id, version) DO UPDATE SET added = {versions}.added + excluded.added,"
    "  updated = {versions}.updated + excluded.updated, removed = {versions}.removed + excluded.removed,"
    "  item_count = excluded.item_count, aggregate_version = excluded.aggregate_version)"
)

# Runs of ItemsAdded with at least this many items are written with COPY.
COPY_ADDED_FROM = 200
# The columns of an item revision as COPY writes them (`revision_line`).
REVISION_COLUMNS = ("dataset_id", "item_id", "valid_from", "valid_to", "seq", "deleted", "external_id", "input",
                    "expected_output", "metadata", "source", "created_at", "updated_at")
NO_CONTENT = (NULL, NULL, NULL)  # a deletion marker's input, expected_output and metadata


def revision_head(dataset_id: bytes, item_id: str, valid_from: bytes) -> bytes:
    """A revision's columns before `valid_to`, in COPY's text format."""
    return dataset_id + b"\t" + item_id.encode() + b"\t" + valid_from + b"\t"


def revision_line(head: bytes, valid_to: bytes, seq: int, deleted: bool, external_id: bytes,
                  content: tuple[bytes, bytes, bytes], source: bytes, created: bytes, updated: bytes) -> bytes:
    """An item revision (`REVISION_COLUMNS`) as one line of COPY's text format; the
    values come encoded (`bulk.copy_*`, `content_columns`), `head` from `revision_head`."""
    return head + valid_to + b"\t".join((b"", b"%d" % seq, b"t" if deleted else b"f", external_id, *content,
                                          source, created, updated)) + b"\n"

# The item columns of a row of `_item_row`, for jsonb_to_recordset.
_ITEM_ROW_TYPE = (
    "dataset_id uuid, item_id uuid, v integer, ts timestamptz, external_id text, input jsonb,"
    " expected_output jsonb, metadata jsonb, source jsonb"
)


def _json(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows).decode()


def _dataset_changes(events: list[Any], added: Callable[[Any], int] = lambda e: 0,
                     updated: Callable[[Any], int] = lambda e: 0,
                     removed: Callable[[Any], int] = lambda e: 0) -> dict[str, str]:
    """The parameters of `_DATASET_AND_VERSION_ROWS` for a run of item-changing events:
    per dataset, its last version, aggregate version and time, how many items the run
    added (next_seq moves on by that) and how it changed the item count; per dataset
    version, what it added, updated and removed, and the item count change from the start
    of the run up to its last event (the version's item count, given the count before)."""
    datasets: dict[Any, dict[str, Any]] = {}
    versions: dict[tuple[Any, int], dict[str, Any]] = {}
    for e in events:
        more, changed, fewer = added(e), updated(e), removed(e)
        dataset = datasets.setdefault(e.originator_id, {"dataset_id": e.originator_id, "added": 0, "delta": 0})
        dataset.update(v=e.dataset_version, av=e.originator_version, ts=e.timestamp)
        dataset["added"] += more
        dataset["delta"] += more - fewer
        version = versions.get((e.originator_id, e.dataset_version))
        if version is None:
            version = versions[(e.originator_id, e.dataset_version)] = {
                "dataset_id": e.originator_id, "v": e.dataset_version, "ts": e.timestamp, "actor": e.actor,
                "reason": e.reason, "added": 0, "updated": 0, "removed": 0,
            }
        version["added"] += more
        version["updated"] += changed
        version["removed"] += fewer
        version["av"] = e.originator_version
        version["count_delta"] = dataset["delta"]
    return {"datasets": _json(list(datasets.values())), "versions": _json(list(versions.values()))}


def _item_row(e: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """An item entry of an event as a read-model row (`_ITEM_ROW_TYPE`)."""
    content = decode_content(entry["content"])
    return {
        "dataset_id": e.originator_id,
        "item_id": entry["id"],
        "v": e.dataset_version,
        "ts": e.timestamp,
        "external_id": entry.get("externalId"),
        "input": content.input,
        "expected_output": content.expected_output,
        "metadata": content.metadata,
        "source": entry.get("source"),
    }


def _added_rows(events: list[Dataset.ItemsAdded]) -> str:
    """The new items of a run of ItemsAdded, each with `ord`: its place among the items the
    run adds to its dataset (1, 2, ...), so its seq is the dataset's next_seq before the run
    plus `ord`, as if the events had been applied one by one."""
    rows = []
    added: dict[Any, int] = {}  # dataset -> items the run added to it so far
    for e in events:
        count = added.get(e.originator_id, 0)
        for entry in e.items:
            count += 1
            row = _item_row(e, entry)
            row["ord"] = count
            rows.append(row)
        added[e.originator_id] = count
    return _json(rows)


def _updated_rows(events: list[Dataset.ItemsUpdated]) -> str:
    """The new revisions of a run of ItemsUpdated. An item updated several times in the run
    gets a chain of revisions: each but the last is closed (`valid_to`) by the next one's
    version, only its first (`first`) closes the revision from before the run, and one that
    brings no source keeps the source of the revision before it."""
    rows = []
    latest: dict[tuple[Any, str], dict[str, Any]] = {}  # (dataset, item) -> its last revision so far
    for e in events:
        for entry in e.items:
            row = _item_row(e, entry)
            before = latest.get((e.originator_id, entry["id"]))
            row["first"] = before is None
            row["valid_to"] = None
            if before is not None:
                before["valid_to"] = e.dataset_version
                if row["source"] is None:
                    row["source"] = before["source"]
            latest[(e.originator_id, entry["id"])] = row
            rows.append(row)
    return _json(rows)


def _deleted_rows(events: list[Dataset.ItemsDeleted]) -> str:
    """The items a run of ItemsDeleted deletes, with the version and time of each deletion.
    (An item is deleted at most once in a run: only an ItemsAdded, which ends the run, can
    bring it back.)"""
    return _json([{"dataset_id": e.originator_id, "item_id": item_id, "v": e.dataset_version, "ts": e.timestamp}
                  for e in events for item_id in e.item_ids])


def _json_or_none(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


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
            # The dataset's project; rows of datasets from before projects hold the default one.
            SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS project_id uuid NOT NULL DEFAULT {}").format(
                t("datasets"), Literal(str(DEFAULT_PROJECT_ID))),
            SQL(
                "CREATE INDEX IF NOT EXISTS datasets_project_idx ON {} (project_id, created_at DESC, dataset_id)"
                " WHERE deleted_at IS NULL"
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
            # When the item's content was purged (all its revisions then hold none).
            SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS purged_at timestamptz").format(t("dataset_items")),
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

    def handler_of(self, event: Any) -> Handler | None:
        return _HANDLERS.get(type(event))

    def weight_of(self, event: Any) -> int:
        rows = getattr(event, "items", None)
        if rows is None:
            rows = getattr(event, "item_ids", None)
        return len(rows) if isinstance(rows, list) else 1

    # -- one handler per event type; each takes a run of consecutive events of its type --

    def _created(self, curs: Cursor[Any], events: list[Dataset.Created]) -> None:
        curs.executemany(
            SQL(
                "WITH d AS (INSERT INTO {} (dataset_id, name, description, metadata, input_schema,"
                " expected_output_schema, version, item_count, next_seq, aggregate_version,"
                " created_at, updated_at, project_id) VALUES (%(id)s, %(name)s, %(description)s, %(metadata)s,"
                " %(input_schema)s, %(output_schema)s, 0, 0, 0, %(av)s, %(ts)s, %(ts)s, %(project)s))"
                " INSERT INTO {} (dataset_id, version, aggregate_version, created_at, added, updated,"
                " removed, item_count, actor, reason)"
                " VALUES (%(id)s, 0, %(av)s, %(ts)s, 0, 0, 0, 0, %(actor)s, %(reason)s)"
            ).format(self.table("datasets"), self.table("dataset_versions")),
            [
                {
                    "id": e.originator_id,
                    "project": project_of(e.project_id),
                    "name": e.name,
                    "description": e.description,
                    "metadata": Jsonb(e.metadata),
                    "input_schema": _json_or_none(e.input_schema),
                    "output_schema": _json_or_none(e.expected_output_schema),
                    "av": e.originator_version,
                    "ts": e.timestamp,
                    "actor": e.actor,
                    "reason": e.reason,
                }
                for e in events
            ],
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

    def _items_added(self, curs: Cursor[Any], events: list[Dataset.ItemsAdded]) -> None:
        if sum(len(e.items) for e in events) >= COPY_ADDED_FROM:
            self._items_added_by_copy(curs, events)
            return
        curs.execute(
            SQL(
                "WITH" + _DATASET_AND_VERSION_ROWS +
                " INSERT INTO {items} (dataset_id, item_id, valid_from, valid_to, seq, deleted,"
                "  external_id, input, expected_output, metadata, source, created_at, updated_at)"
                " SELECT r.dataset_id, r.item_id, r.v, NULL, d.base + r.ord, false, r.external_id,"
                "  r.input, r.expected_output, r.metadata, r.source, r.ts, r.ts"
                " FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(" + _ITEM_ROW_TYPE + ", ord bigint)"
                " JOIN d USING (dataset_id)"
            ).format(**self.tables()),
            {**_dataset_changes(events, added=lambda e: len(e.items)), "rows": _added_rows(events)},
            prepare=True,
        )

    def _items_added_by_copy(self, curs: Cursor[Any], events: list[Dataset.ItemsAdded]) -> None:
        """`_items_added` for many items: the dataset and version rows first (returning
        each dataset's next_seq from before the run), then the items with COPY, which
        PostgreSQL parses about twice as fast as rows of a JSON document."""
        curs.execute(
            SQL("WITH" + _DATASET_AND_VERSION_ROWS + " SELECT dataset_id, base FROM d").format(**self.tables()),
            _dataset_changes(events, added=lambda e: len(e.items)),
            prepare=True,
        )
        bases = {row["dataset_id"]: row["base"] for row in curs.fetchall()}
        added: dict[Any, int] = {}  # dataset -> items the run added to it so far
        lines = []
        for e in events:
            base = bases.get(e.originator_id)
            if base is None:  # no such dataset: the INSERT's join would drop its items
                continue
            dataset_id, version, ts = copy_id(e.originator_id), b"%d" % e.dataset_version, copy_time(e.timestamp)
            count = added.get(e.originator_id, 0)
            for entry in e.items:
                count += 1
                lines.append(revision_line(
                    revision_head(dataset_id, entry["id"], version), NULL, base + count, False,
                    copy_text(entry.get("externalId")), content_columns(entry["content"]),
                    copy_json(entry.get("source")), ts, ts))
            added[e.originator_id] = count
        with curs.copy(SQL("COPY {} ({}) FROM STDIN").format(
                self.table("dataset_items"), SQL(", ").join(map(Identifier, REVISION_COLUMNS)))) as copy:
            copy.write(b"".join(lines))

    def _items_updated(self, curs: Cursor[Any], events: list[Dataset.ItemsUpdated]) -> None:
        # `closed` ends the revisions from before the run (only the first revision of each
        # item in the run does that); every new revision takes the item's seq and creation
        # time from it.
        curs.execute(
            SQL(
                "WITH r AS (SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(" + _ITEM_ROW_TYPE + ","
                "  first boolean, valid_to integer)),"
                " closed AS (UPDATE {items} i SET valid_to = r.v FROM r"
                "  WHERE r.first AND i.dataset_id = r.dataset_id AND i.item_id = r.item_id"
                "  AND i.valid_to IS NULL AND NOT i.deleted"
                "  RETURNING i.dataset_id, i.item_id, i.seq, i.created_at, i.source),"
                + _DATASET_AND_VERSION_ROWS +
                " INSERT INTO {items} (dataset_id, item_id, valid_from, valid_to, seq, deleted,"
                "  external_id, input, expected_output, metadata, source, created_at, updated_at)"
                " SELECT r.dataset_id, r.item_id, r.v, r.valid_to, c.seq, false, r.external_id,"
                "  r.input, r.expected_output, r.metadata, coalesce(r.source, c.source), c.created_at, r.ts"
                " FROM r JOIN closed c USING (dataset_id, item_id)"
            ).format(**self.tables()),
            {**_dataset_changes(events, updated=lambda e: len(e.items)), "rows": _updated_rows(events)},
            prepare=True,
        )

    def _items_deleted(self, curs: Cursor[Any], events: list[Dataset.ItemsDeleted]) -> None:
        # Each deleted item's open revision is closed and a marker row (no content) opened.
        curs.execute(
            SQL(
                "WITH r AS (SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)"
                "  AS r(dataset_id uuid, item_id uuid, v integer, ts timestamptz)),"
                " closed AS (UPDATE {items} i SET valid_to = r.v FROM r"
                "  WHERE i.dataset_id = r.dataset_id AND i.item_id = r.item_id"
                "  AND i.valid_to IS NULL AND NOT i.deleted"
                "  RETURNING i.dataset_id, i.item_id, r.v, r.ts, i.seq, i.external_id, i.created_at),"
                + _DATASET_AND_VERSION_ROWS +
                " INSERT INTO {items} (dataset_id, item_id, valid_from, valid_to, seq, deleted,"
                "  external_id, input, expected_output, metadata, created_at, updated_at)"
                " SELECT c.dataset_id, c.item_id, c.v, NULL, c.seq, true, c.external_id,"
                "  NULL, NULL, NULL, c.created_at, c.ts FROM closed c"
            ).format(**self.tables()),
            {**_dataset_changes(events, removed=lambda e: len(e.item_ids)), "rows": _deleted_rows(events)},
            prepare=True,
        )

    def _item_purged(self, curs: Cursor[Any], e: Dataset.ItemPurged) -> None:
        # The same values the event store's events now read as (content.PURGED_CONTENT),
        # so a rebuild after the purge gives these rows exactly.
        curs.execute(
            SQL(
                "WITH i AS (UPDATE {items} SET input = NULL, expected_output = NULL,"
                "  metadata = CASE WHEN deleted THEN NULL ELSE '{{}}'::jsonb END, purged_at = %(ts)s"
                "  WHERE dataset_id = %(id)s AND item_id = %(item)s)"
                " UPDATE {datasets} SET aggregate_version = %(av)s, updated_at = %(ts)s WHERE dataset_id = %(id)s"
            ).format(**self.tables()),
            {"id": e.originator_id, "item": e.item_id, "ts": e.timestamp, "av": e.originator_version},
        )

    def _deleted(self, curs: Cursor[Any], events: list[Dataset.Deleted]) -> None:
        curs.executemany(
            SQL(
                "UPDATE {} SET deleted_at = %(ts)s, updated_at = %(ts)s, aggregate_version = %(av)s"
                " WHERE dataset_id = %(id)s"
            ).format(self.table("datasets")),
            [{"id": e.originator_id, "ts": e.timestamp, "av": e.originator_version} for e in events],
        )


_HANDLERS = {
    Dataset.Created: DatasetsView._created,
    Dataset.DetailsChanged: one_at_a_time(DatasetsView._details_changed),
    Dataset.ItemsAdded: DatasetsView._items_added,
    Dataset.ItemsUpdated: DatasetsView._items_updated,
    Dataset.ItemsDeleted: DatasetsView._items_deleted,
    Dataset.Deleted: DatasetsView._deleted,
    Dataset.ItemPurged: one_at_a_time(DatasetsView._item_purged),
}
