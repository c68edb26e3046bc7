"""The datasets read model's tables as its queries read them: their names in the schema, the
columns of an item revision, which revisions hold at a version, one fetch, and the dataset's
row every other read starts from."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from evalledger.domain.errors import DatasetNotFoundError
from evalledger.projections.tables import Tables

# The item revisions valid at version %(v)s.
VALID_AT = "valid_from <= %(v)s AND (valid_to IS NULL OR valid_to > %(v)s) AND NOT deleted"

ITEM_COLUMNS = (
    "item_id, dataset_id, external_id, input, expected_output, metadata, source, valid_from, valid_to,"
    " deleted, seq, created_at, updated_at, purged_at"
)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class DatasetTables(Tables):
    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        schema = Identifier(datastore.schema)
        self._datasets = SQL("{}.datasets").format(schema)
        self._items = SQL("{}.dataset_items").format(schema)
        self._versions = SQL("{}.dataset_versions").format(schema)
        self._tags = SQL("{}.dataset_tags").format(schema)
        # A version row with the tags that name it (`tags`, sorted).
        self._versions_tagged = SQL(
            "SELECT v.*, coalesce((SELECT array_agg(t.tag ORDER BY t.tag) FROM {} t"
            " WHERE t.dataset_id = v.dataset_id AND t.version = v.version), '{{}}') AS tags FROM {} v"
        ).format(self._tags, self._versions)

    def dataset_row(self, dataset_id: UUID) -> dict[str, Any]:
        rows = self._fetch(
            SQL("SELECT * FROM {} WHERE dataset_id = %s AND deleted_at IS NULL").format(self._datasets),
            (dataset_id,),
        )
        if not rows:
            raise DatasetNotFoundError(f"dataset {dataset_id} not found")
        return rows[0]
