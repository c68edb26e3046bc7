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
- `dataset_tags`: one row per version tag (`golden`): the version it names now, and who
  pointed it there, when and why (the tag's whole story is in the dataset's events).

What each event does to these rows is said once, in datasets_fold.py; this view reads the
rows a batch touches, folds the batch into them and writes back what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import orjson
from psycopg import Cursor
from psycopg.sql import SQL, Composed, Identifier, Literal

from evalledger.domain.access import DEFAULT_PROJECT_ID
from evalledger.domain.content import Sealed
from evalledger.projections.bulk import NULL, content_columns, copy_id, copy_json, copy_text, copy_time
from evalledger.projections import datasets_fold
from evalledger.projections.datasets_fold import (
    DatasetRow,
    DatasetsState,
    ItemRevision,
    StoredContent,
    TagRow,
    Touched,
    VersionRow,
    purge_revision,
)
from evalledger.projections.view import BatchingView, Statement, json_rows, names, rendered, upsert

DATASET_TOPICS = tuple(
    f"evalledger.domain.datasets:Dataset.{name}"
    for name in ("Created", "DetailsChanged", "ItemsAdded", "ItemsUpdated", "ItemsDeleted", "Deleted", "ItemPurged",
                 "VersionTagged", "TagMoved", "TagDeleted")
)

# At least this many new item revisions in one write go with COPY, which PostgreSQL
# parses about twice as fast as rows of a JSON document; fewer go as one INSERT.
COPY_ADDED_FROM = 200
# The columns of an item revision as COPY writes them (`revision_line`).
REVISION_COLUMNS = ("dataset_id", "item_id", "valid_from", "valid_to", "seq", "deleted", "external_id", "input",
                    "expected_output", "metadata", "source", "created_at", "updated_at", "purged_at")
DATASET_COLUMNS = tuple(DatasetRow.__dataclass_fields__)
VERSION_COLUMNS = tuple(VersionRow.__dataclass_fields__)
TAG_COLUMNS = tuple(TagRow.__dataclass_fields__)
NO_CONTENT = (NULL, NULL, NULL)  # a deletion marker's input, expected_output and metadata


def revision_content(content: Any) -> tuple[bytes, bytes, bytes]:
    """A revision's input, expected_output and metadata in COPY's text format."""
    if content is None:
        return NO_CONTENT
    if isinstance(content, StoredContent):
        return copy_json(content.input), copy_json(content.expected_output), copy_json(content.metadata)
    return content_columns(content)


def revision_lines(rows: list[ItemRevision]) -> list[bytes]:
    """Item revisions (`REVISION_COLUMNS`) as lines of COPY's text format. Consecutive
    revisions of one event share their dataset id and times: each is encoded once."""
    lines = []
    dataset_id = created_at = updated_at = None
    encoded_id = created = updated = b""
    for row in rows:
        if row.dataset_id is not dataset_id:
            dataset_id = row.dataset_id
            encoded_id = copy_id(dataset_id)
        if row.created_at is not created_at:
            created_at = row.created_at
            created = copy_time(created_at)
        if row.updated_at is not updated_at:
            updated_at = row.updated_at
            updated = copy_time(updated_at)
        external_id, valid_to, purged_at = row.external_id, row.valid_to, row.purged_at
        lines.append(b"\t".join((
            encoded_id, row.item_id.encode(), b"%d" % row.valid_from, NULL if valid_to is None else b"%d" % valid_to,
            b"%d" % row.seq, b"t" if row.deleted else b"f", NULL if external_id is None else copy_text(external_id),
            *revision_content(row.content), copy_json(row.source), created, updated,
            NULL if purged_at is None else copy_time(purged_at))) + b"\n")
    return lines


def _fragment(text: bytes, null: Any = None) -> Any:
    return null if text == b"null" else orjson.Fragment(text)


def revision_json(row: ItemRevision) -> dict[str, Any]:
    """An item revision as a JSON object for `jsonb_to_recordset` (sealed content goes as
    the JSON texts it was sealed as, without being parsed)."""
    content = row.content
    if content is None:
        values: tuple[Any, Any, Any] = (None, None, None)
    elif isinstance(content, StoredContent):
        values = content
    elif isinstance(content, Sealed):
        input_json, expected_json, metadata_json = content.open_json()
        values = (_fragment(input_json), _fragment(expected_json), _fragment(metadata_json, {}))
    else:
        values = (content["input"], content.get("expectedOutput"), content.get("metadata") or {})
    return {"dataset_id": row.dataset_id, "item_id": row.item_id, "valid_from": row.valid_from,
            "valid_to": row.valid_to, "seq": row.seq, "deleted": row.deleted, "external_id": row.external_id,
            "input": values[0], "expected_output": values[1], "metadata": values[2], "source": row.source,
            "created_at": row.created_at, "updated_at": row.updated_at, "purged_at": row.purged_at}


# Each column's type, for jsonb_to_recordset (in the rows' field order).
_DATASET_TYPES = (
    "dataset_id uuid, name text, description text, metadata jsonb, input_schema jsonb,"
    " expected_output_schema jsonb, version integer, item_count integer, next_seq bigint,"
    " aggregate_version integer, created_at timestamptz, updated_at timestamptz, deleted_at timestamptz,"
    " project_id uuid")
_VERSION_TYPES = (
    "dataset_id uuid, version integer, aggregate_version integer, created_at timestamptz, added integer,"
    " updated integer, removed integer, item_count integer, actor text, reason text")
_TAG_TYPES = (
    "dataset_id uuid, tag text, version integer, aggregate_version integer, tagged_at timestamptz, actor text,"
    " reason text")
_REVISION_TYPES = (
    "dataset_id uuid, item_id uuid, valid_from integer, valid_to integer, seq bigint, deleted boolean,"
    " external_id text, input jsonb, expected_output jsonb, metadata jsonb, source jsonb,"
    " created_at timestamptz, updated_at timestamptz, purged_at timestamptz")
_REVISION_SELECT = SQL(", ").join(
    SQL("i.item_id::text AS item_id") if name == "item_id" else SQL("i.{}").format(Identifier(name))
    for name in REVISION_COLUMNS)


def _columns(keys: Any) -> list[list[Any]]:
    """Keys (tuples) as one list per column, for unnest."""
    return [list(column) for column in zip(*keys, strict=True)]


_VERSION_FIELDS = tuple((f"version_{c}", c) for c in VERSION_COLUMNS)


def _seed_dataset(state: DatasetsState, row: dict[str, Any]) -> None:
    """A dataset's row and its current version's, read together (`_read_datasets`)."""
    version = {name: row.pop(alias) for alias, name in _VERSION_FIELDS}
    dataset = state.datasets[row["dataset_id"]] = DatasetRow(**row)
    if version["version"] is not None:
        state.versions[(dataset.dataset_id, dataset.version)] = VersionRow(**version)


def _stored_revision(row: dict[str, Any]) -> ItemRevision:
    """A revision read from the table (`_REVISION_SELECT`)."""
    content = StoredContent(row.pop("input"), row.pop("expected_output"), row.pop("metadata"))
    return ItemRevision(**row, content=content, stored=True)


class DatasetsView(BatchingView):
    read_model_tables = ("datasets", "dataset_items", "dataset_versions", "dataset_tags")
    # What each event does to the rows (apply, first_reads and read_rows in view.py use it).
    rules = datasets_fold

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
            self.add_column("datasets", "project_id", "uuid NOT NULL", Literal(str(DEFAULT_PROJECT_ID))),
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
            self.add_column("dataset_items", "purged_at", "timestamptz"),
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
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " dataset_id uuid NOT NULL,"
                " tag text NOT NULL,"
                " version integer NOT NULL,"
                " aggregate_version integer NOT NULL,"
                " tagged_at timestamptz NOT NULL,"
                " actor text NOT NULL,"
                " reason text,"
                " PRIMARY KEY (dataset_id, tag))"
            ).format(t("dataset_tags")),
        ]

    def weight_of(self, event: Any) -> int:
        rows = getattr(event, "items", None)
        if rows is None:
            rows = getattr(event, "item_ids", None)
        return len(rows) if isinstance(rows, list) else 1

    def reads(self, keys: Touched) -> tuple[list[Statement], Callable[[list[list[Any]]], DatasetsState]]:
        """The statements that read the rows the keys name, and what makes the fold's state
        of their answers (see `BatchingView.process`, which sends them with the lock)."""
        state = DatasetsState()
        reads: list[tuple[Statement, Any]] = []
        if keys.dataset_ids:
            reads.append(((self._read_datasets, (list(keys.dataset_ids),)), lambda row: _seed_dataset(state, row)))
        if keys.tags:
            reads.append(((self._read_tags, _columns(keys.tags)),
                          lambda row: state.tags.__setitem__((row["dataset_id"], row["tag"]), TagRow(**row))))
        if keys.open_items or keys.purged_items:
            params = _columns(keys.open_items) if keys.open_items else []
            params += _columns(keys.purged_items) if keys.purged_items else []
            shape = (bool(keys.open_items), bool(keys.purged_items))
            reads.append(((self.statement(("revisions", shape), lambda: self._revisions_read(*shape)), params),
                          lambda row: state.seed_revision(_stored_revision(row))))

        def state_of(answers: list[list[Any]]) -> DatasetsState:
            for (_, add), found in zip(reads, answers, strict=True):
                for row in found:
                    add(row)
            return state

        return [read for read, _ in reads], state_of

    def write_rows(self, curs: Cursor[Any], state: DatasetsState) -> list[Statement]:
        """The rows the fold changed: new revisions inserted (with COPY when many: that is
        sent at once), revisions read from the table updated, the other tables' rows
        upserted; returns the statements that write them, to be run in one round trip."""
        new, closed, purged = [], [], []
        for row in state.changed_revisions.values():
            if not row.stored:
                new.append(row)
            elif row.purged_at is None:
                closed.append(row)
            else:
                purged.append(row)
        writes: list[Statement] = []
        if len(new) >= COPY_ADDED_FROM:
            with curs.copy(self._copy_revisions) as copy:
                copy.write(b"".join(revision_lines(new)))
        elif new:
            writes.append((self._insert_revisions, (json_rows([revision_json(row) for row in new]),)))
        if closed:
            writes.append((self._close_revisions, [
                [row.dataset_id for row in closed], [row.item_id for row in closed],
                [row.valid_from for row in closed], [row.valid_to for row in closed]]))
        if purged:
            writes.append((self._update_revisions, (json_rows([revision_json(row) for row in purged]),)))
        if state.changed_datasets:
            writes.append((self._upsert_datasets, (json_rows([state.datasets[k] for k in state.changed_datasets]),)))
        if state.changed_versions:
            writes.append((self._upsert_versions, (json_rows([state.versions[k] for k in state.changed_versions]),)))
        kept = [tag for tag in (state.tags[k] for k in state.changed_tags) if tag is not None]
        if kept:
            writes.append((self._upsert_tags, (json_rows(kept),)))
        gone = [k for k in state.changed_tags if state.tags[k] is None]
        if gone:
            writes.append((self.statement("delete tags", lambda: SQL(
                "DELETE FROM {} t USING unnest(%s::uuid[], %s::text[]) AS k(dataset_id, tag)"
                " WHERE t.dataset_id = k.dataset_id AND t.tag = k.tag").format(self.table("dataset_tags"))),
                           _columns(gone)))
        return writes

    def purge_written(self, curs: Cursor[Any], purges: Sequence[tuple[Any, str, Any, int]]) -> None:
        """Purge, with the fold's rule, the revisions each (dataset, item, time, dataset
        version) names that are valid from that version or before: those the item had when
        it was purged (a rebuild's revisions written before the fold came to the purge)."""
        for dataset_id, item_id, at, version in purges:
            curs.execute(SQL("SELECT {} FROM {} i WHERE dataset_id = %s AND item_id = %s AND valid_from <= %s").format(
                _REVISION_SELECT, self.table("dataset_items")), (dataset_id, item_id, version))
            rows = []
            for row in curs.fetchall():
                revision = _stored_revision(row)
                purge_revision(revision, at)
                rows.append(revision_json(revision))
            if rows:
                curs.execute(self._update_revisions, (json_rows(rows),))

    def _revisions_read(self, open_items: bool, purged_items: bool) -> Composed:
        """Reads the open revisions of some items and every revision of others (purged)."""
        statements = []
        if open_items:
            statements.append(SQL(
                "SELECT {} FROM {} i JOIN unnest(%s::uuid[], %s::uuid[]) AS k(dataset_id, item_id)"
                " USING (dataset_id, item_id) WHERE i.valid_to IS NULL AND NOT i.deleted").format(
                    _REVISION_SELECT, self.table("dataset_items")))
        if purged_items:
            statements.append(SQL(
                "SELECT {} FROM {} i JOIN unnest(%s::uuid[], %s::uuid[]) AS k(dataset_id, item_id)"
                " USING (dataset_id, item_id)").format(_REVISION_SELECT, self.table("dataset_items")))
        return SQL(" UNION ").join(statements)

    @cached_property
    def _read_datasets(self) -> bytes:
        """Each dataset's row with its current version's (see datasets_fold.Touched)."""
        version_columns = SQL(", ").join(SQL("v.{} AS {}").format(Identifier(c), Identifier(f"version_{c}"))
                                         for c in VERSION_COLUMNS)
        return rendered(SQL(
            "SELECT {}, {} FROM {} d LEFT JOIN {} v ON v.dataset_id = d.dataset_id AND v.version = d.version"
            " WHERE d.dataset_id = ANY(%s)").format(
                SQL(", ").join(SQL("d.{}").format(Identifier(c)) for c in DATASET_COLUMNS), version_columns,
                self.table("datasets"), self.table("dataset_versions")))

    @cached_property
    def _read_tags(self) -> bytes:
        return rendered(SQL("SELECT {} FROM {} JOIN unnest(%s::uuid[], %s::text[]) AS k(dataset_id, tag)"
                            " USING (dataset_id, tag)").format(names(TAG_COLUMNS), self.table("dataset_tags")))

    @cached_property
    def _copy_revisions(self) -> Composed:
        return SQL("COPY {} ({}) FROM STDIN").format(self.table("dataset_items"), names(REVISION_COLUMNS))

    @cached_property
    def _insert_revisions(self) -> bytes:
        return rendered(SQL("INSERT INTO {} ({}) SELECT {} FROM jsonb_to_recordset(%s::jsonb) AS r({})").format(
            self.table("dataset_items"), names(REVISION_COLUMNS), names(REVISION_COLUMNS), SQL(_REVISION_TYPES)))

    @cached_property
    def _close_revisions(self) -> bytes:
        return rendered(SQL(
            "UPDATE {} i SET valid_to = c.valid_to"
            " FROM unnest(%s::uuid[], %s::uuid[], %s::int[], %s::int[]) AS c(dataset_id, item_id, valid_from,"
            " valid_to) WHERE i.dataset_id = c.dataset_id AND i.item_id = c.item_id"
            " AND i.valid_from = c.valid_from").format(self.table("dataset_items")))

    @cached_property
    def _update_revisions(self) -> bytes:
        return rendered(SQL(
            "UPDATE {} i SET valid_to = r.valid_to, input = r.input, expected_output = r.expected_output,"
            " metadata = r.metadata, purged_at = r.purged_at FROM jsonb_to_recordset(%s::jsonb) AS r({})"
            " WHERE i.dataset_id = r.dataset_id AND i.item_id = r.item_id"
            " AND i.valid_from = r.valid_from").format(self.table("dataset_items"), SQL(_REVISION_TYPES)))

    @cached_property
    def _upsert_datasets(self) -> bytes:
        return rendered(upsert(self.table("datasets"), DATASET_COLUMNS, _DATASET_TYPES, ("dataset_id",)))

    @cached_property
    def _upsert_versions(self) -> bytes:
        return rendered(upsert(self.table("dataset_versions"), VERSION_COLUMNS, _VERSION_TYPES,
                               ("dataset_id", "version")))

    @cached_property
    def _upsert_tags(self) -> bytes:
        return rendered(upsert(self.table("dataset_tags"), TAG_COLUMNS, _TAG_TYPES, ("dataset_id", "tag")))