"""The datasets read model's past: each version with what it changed, the field-level diff
between two versions, and every revision of an item."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.sql import SQL

from evalledger.domain.errors import ItemNotFoundError
from evalledger.projections.dataset_tables import ITEM_COLUMNS, VALID_AT, DatasetTables
from evalledger.projections.dataset_views import (
    DiffPage,
    DiffSummary,
    ItemDiff,
    ItemRevision,
    VersionView,
    field_changes,
    item_revision,
    item_view,
    version_view,
)


class DatasetHistory(DatasetTables):
    def revisions(self, dataset_id: UUID) -> list[dict[str, Any]]:
        """Every item revision of a dataset (for the audit)."""
        return self._fetch(
            SQL(
                "SELECT item_id::text AS item_id, valid_from, valid_to, deleted, input, expected_output, metadata,"
                " external_id FROM {} WHERE dataset_id = %s"
            ).format(self._items),
            (dataset_id,),
        )

    def purged_at(self, dataset_id: UUID, item_id: UUID) -> Any:
        rows = self._fetch(
            SQL("SELECT max(purged_at) AS purged_at FROM {} WHERE dataset_id = %s AND item_id = %s").format(self._items),
            (dataset_id, item_id),
        )
        return rows[0]["purged_at"] if rows else None

    def item_history(self, dataset_id: UUID, item_id: UUID) -> list[ItemRevision]:
        rows = self._fetch(
            SQL(
                "SELECT " + ITEM_COLUMNS + " FROM {} WHERE dataset_id = %s AND item_id = %s"
                " ORDER BY valid_from DESC"
            ).format(self._items),
            (dataset_id, item_id),
        )
        if not rows:
            raise ItemNotFoundError(f"item {item_id} not found in dataset {dataset_id}")
        return [item_revision(r) for r in rows]

    def list_versions(self, dataset_id: UUID, page: int, per_page: int) -> tuple[list[VersionView], int]:
        current = self.dataset_row(dataset_id)["version"]
        # Versions are 0..current without gaps: page by range, newest first.
        high = current - page * per_page
        low = max(0, high - per_page + 1)
        if high < 0:
            return [], current + 1
        rows = self._fetch(
            SQL("{} WHERE v.dataset_id = %s AND v.version BETWEEN %s AND %s ORDER BY v.version DESC").format(
                self._versions_tagged),
            (dataset_id, low, high),
        )
        return [version_view(r) for r in rows], current + 1

    def diff(
        self, dataset_id: UUID, from_version: int, to_version: int, page: int, per_page: int
    ) -> DiffPage:
        """Items added, removed and changed between two versions (either order), with the
        changed fields' before and after values."""
        params = {"d": dataset_id, "a": from_version, "b": to_version, "limit": per_page, "offset": page * per_page}
        valid_a = VALID_AT.replace("%(v)s", "%(a)s")
        valid_b = VALID_AT.replace("%(v)s", "%(b)s")
        classified = SQL(
            "WITH a AS (SELECT * FROM {items} WHERE dataset_id = %(d)s AND " + valid_a + "),"
            " b AS (SELECT * FROM {items} WHERE dataset_id = %(d)s AND " + valid_b + "),"
            " j AS (SELECT coalesce(a.item_id, b.item_id) AS item_id, coalesce(b.seq, a.seq) AS seq,"
            "  CASE WHEN a.item_id IS NULL THEN 'added' WHEN b.item_id IS NULL THEN 'removed'"
            "   ELSE 'changed' END AS change,"
            "  a.valid_from AS a_rev, b.valid_from AS b_rev"
            "  FROM a FULL JOIN b ON a.item_id = b.item_id"
            "  WHERE a.valid_from IS DISTINCT FROM b.valid_from AND (a.item_id IS NULL OR b.item_id IS NULL"
            "   OR a.input IS DISTINCT FROM b.input OR a.expected_output IS DISTINCT FROM b.expected_output"
            "   OR a.metadata IS DISTINCT FROM b.metadata OR a.external_id IS DISTINCT FROM b.external_id))"
        ).format(items=self._items)
        summary = DiffSummary()
        for row in self._fetch(classified + SQL(" SELECT change, count(*) AS n FROM j GROUP BY change"), params):
            setattr(summary, row["change"], row["n"])
        page_rows = self._fetch(
            classified
            + SQL(" SELECT * FROM j ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s"),
            params,
        )
        revisions: dict[tuple[Any, int], dict[str, Any]] = {}
        wanted = [(r["item_id"], rev) for r in page_rows for rev in (r["a_rev"], r["b_rev"]) if rev is not None]
        if wanted:
            for row in self._fetch(
                SQL(
                    "SELECT " + ITEM_COLUMNS + " FROM {} WHERE dataset_id = %s AND (item_id, valid_from)"
                    " IN (SELECT * FROM unnest(%s::uuid[], %s::int[]))"
                ).format(self._items),
                (dataset_id, [w[0] for w in wanted], [w[1] for w in wanted]),
            ):
                revisions[(row["item_id"], row["valid_from"])] = row
        entries = []
        for r in page_rows:
            before = revisions.get((r["item_id"], r["a_rev"])) if r["a_rev"] is not None else None
            after = revisions.get((r["item_id"], r["b_rev"])) if r["b_rev"] is not None else None
            entry = ItemDiff(r["item_id"], r["change"])
            if r["change"] != "added":
                entry.before = item_view(before)
            if r["change"] != "removed":
                entry.after = item_view(after)
            if r["change"] == "changed":
                entry.changes = [change for column in ("external_id", "input", "expected_output", "metadata")
                                 for change in field_changes(before[column], after[column], (column,))]
            entries.append(entry)
        total = summary.added + summary.removed + summary.changed
        return DiffPage(dataset_id, from_version, to_version, summary, entries, total)

    def version_row(self, dataset_id: UUID, version: int) -> VersionView | None:
        """One version's summary (when it was made, by whom, what it changed)."""
        rows = self._fetch(
            SQL("{} WHERE v.dataset_id = %s AND v.version = %s").format(self._versions_tagged),
            (dataset_id, version),
        )
        return version_view(rows[0]) if rows else None

    def recent_versions(self, dataset_id: UUID, current: int, limit: int) -> list[VersionView]:
        """The `limit` newest versions, newest first, for a dataset whose current version the
        caller already read (one range scan, no second read of the dataset row)."""
        rows = self._fetch(
            SQL("{} WHERE v.dataset_id = %s AND v.version BETWEEN %s AND %s ORDER BY v.version DESC").format(
                self._versions_tagged),
            (dataset_id, max(0, current - limit + 1), current),
        )
        return [version_view(r) for r in rows]
