"""Reads over the datasets projection's tables (see projections/datasets.py).

Answers are typed snake_case objects (the dataclasses below); `api/` puts them on the wire.

Listing items "as of version V" pages by ranges of `seq`, not by OFFSET: the items of a
version never change once the version exists, so the ordered `seq`s of (dataset, V) are
read once (an index-only scan) and cached; each page is then one range scan, as fast
for the last page of an old version as for the first page of the current one.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier

from evalledger.domain.datasets import TagNotFoundError
from evalledger.domain.errors import (
    DatasetNotFoundError,
    InvalidRequestError,
    ItemNotFoundError,
    VersionNotFoundError,
)

_VALID_AT = "valid_from <= %(v)s AND (valid_to IS NULL OR valid_to > %(v)s) AND NOT deleted"

_ITEM_COLUMNS = (
    "item_id, dataset_id, external_id, input, expected_output, metadata, source, valid_from, valid_to,"
    " deleted, seq, created_at, updated_at, purged_at"
)


@dataclass(slots=True)
class DatasetView:
    id: UUID
    name: str
    description: str
    metadata: dict[str, Any]
    input_schema: dict[str, Any] | None
    expected_output_schema: dict[str, Any] | None
    version: int
    item_count: int
    created_at: datetime
    updated_at: datetime
    project_id: UUID


@dataclass(slots=True)
class DatasetOverview(DatasetView):
    last_actor: str | None = None


@dataclass(slots=True)
class ItemView:
    """One revision of an item: what it held from version `valid_from` until `valid_to`."""

    id: UUID
    dataset_id: UUID
    external_id: str | None
    input: Any
    expected_output: Any
    metadata: dict[str, Any] | None
    source: dict[str, Any] | None
    version: int
    valid_from: int
    valid_to: int | None
    created_at: datetime
    updated_at: datetime
    purged_at: datetime | None


@dataclass(slots=True)
class ItemRevision(ItemView):
    deleted: bool = False


@dataclass(slots=True)
class VersionView:
    version: int
    created_at: datetime
    added: int
    updated: int
    removed: int
    item_count: int
    actor: str
    reason: str | None
    tags: list[str]


@dataclass(slots=True)
class TagView:
    tag: str
    version: int
    tagged_at: datetime
    actor: str
    reason: str | None


@dataclass(slots=True)
class FieldChange:
    """One changed field of an item: `path` from the item's field (snake_case) down into its JSON."""

    path: tuple[str, ...]
    before: Any
    after: Any
    kind: str | None = None  # "added" / "removed" when the field exists on one side only


@dataclass(slots=True)
class ItemDiff:
    item_id: UUID
    change: str  # added, removed, changed
    before: ItemView | None = None
    after: ItemView | None = None
    changes: list[FieldChange] | None = None


@dataclass(slots=True)
class DiffSummary:
    added: int = 0
    removed: int = 0
    changed: int = 0


@dataclass(slots=True)
class DiffPage:
    dataset_id: UUID
    from_version: int
    to_version: int
    summary: DiffSummary
    changes: list[ItemDiff]
    total: int


def _dataset_fields(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["dataset_id"], row["name"], row["description"], row["metadata"], row["input_schema"],
        row["expected_output_schema"], row["version"], row["item_count"], row["created_at"], row["updated_at"],
        row["project_id"],
    )


def dataset_view(row: dict[str, Any]) -> DatasetView:
    return DatasetView(*_dataset_fields(row))


def item_view(row: dict[str, Any]) -> ItemView:
    return ItemView(
        row["item_id"], row["dataset_id"], row["external_id"], row["input"], row["expected_output"],
        row["metadata"], row["source"], row["valid_from"], row["valid_from"], row["valid_to"], row["created_at"],
        row["updated_at"], row["purged_at"],
    )


def item_revision(row: dict[str, Any]) -> ItemRevision:
    return ItemRevision(
        row["item_id"], row["dataset_id"], row["external_id"], row["input"], row["expected_output"],
        row["metadata"], row["source"], row["valid_from"], row["valid_from"], row["valid_to"], row["created_at"],
        row["updated_at"], row["purged_at"], row["deleted"],
    )


def version_view(row: dict[str, Any]) -> VersionView:
    return VersionView(row["version"], row["created_at"], row["added"], row["updated"], row["removed"],
                       row["item_count"], row["actor"], row["reason"], row.get("tags") or [])


def tag_view(row: dict[str, Any]) -> TagView:
    return TagView(row["tag"], row["version"], row["tagged_at"], row["actor"], row["reason"])


def field_changes(before: Any, after: Any, path: tuple[str, ...]) -> list[FieldChange]:
    """Field-level differences between two JSON values: objects are compared key by key
    (recursively, the path growing by the key); anything else is compared whole."""
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        changes = []
        for key in list(before) + [k for k in after if k not in before]:
            changes += field_changes(before.get(key, _ABSENT), after.get(key, _ABSENT), (*path, key))
        return changes
    return [FieldChange(
        path,
        None if before is _ABSENT else before,
        None if after is _ABSENT else after,
        "added" if before is _ABSENT else "removed" if after is _ABSENT else None,
    )]


def _like_pattern(text: str) -> str:
    """`text` anywhere, with LIKE's wildcards and escape character taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


class DatasetQueries:
    SEQ_CACHE_SIZE = 32

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
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
        self._seq_cache: OrderedDict[tuple[UUID, int], array[int]] = OrderedDict()
        self._seq_cache_lock = threading.Lock()

    def _fetch(self, query: Composed | str, params: Any = None) -> list[dict[str, Any]]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=dict_row) as curs:
            curs.execute(query, params, prepare=True)
            return curs.fetchall()

    # -- datasets -------------------------------------------------------------------------

    def list_datasets(self, page: int, per_page: int, project_id: UUID | None = None) -> tuple[list[DatasetView], int]:
        """Datasets not deleted, newest first: a project's, or (None) every project's."""
        rows = self._fetch(
            SQL(
                "SELECT *, count(*) OVER () AS total FROM {} WHERE deleted_at IS NULL"
                " AND (%(project)s::uuid IS NULL OR project_id = %(project)s)"
                " ORDER BY created_at DESC, dataset_id LIMIT %(n)s OFFSET %(o)s"
            ).format(self._datasets),
            {"project": project_id, "n": per_page, "o": page * per_page},
        )
        if rows:
            return [dataset_view(r) for r in rows], rows[0]["total"]
        return [], self.count_datasets(project_id)

    def count_datasets(self, project_id: UUID | None = None) -> int:
        return self._fetch(
            SQL("SELECT count(*) AS n FROM {} WHERE deleted_at IS NULL"
                " AND (%(project)s::uuid IS NULL OR project_id = %(project)s)").format(self._datasets),
            {"project": project_id},
        )[0]["n"]

    def project_of_dataset(self, dataset_id: UUID) -> UUID | None:
        """The project a dataset belongs to (deleted or not); None for an unknown id."""
        rows = self._fetch(SQL("SELECT project_id FROM {} WHERE dataset_id = %s").format(self._datasets),
                           (dataset_id,))
        return rows[0]["project_id"] if rows else None

    def dataset_row(self, dataset_id: UUID) -> dict[str, Any]:
        rows = self._fetch(
            SQL("SELECT * FROM {} WHERE dataset_id = %s AND deleted_at IS NULL").format(self._datasets),
            (dataset_id,),
        )
        if not rows:
            raise DatasetNotFoundError(f"dataset {dataset_id} not found")
        return rows[0]

    def get_dataset(self, dataset_id: UUID) -> DatasetView:
        return dataset_view(self.dataset_row(dataset_id))

    def resolve_version(self, dataset_id: UUID, version: int | None = None, as_of: datetime | None = None,
                        tag: str | None = None) -> int:
        """The dataset version a read is about: `version`, the version current at `as_of`,
        the version `tag` names, or the current one. Raises when the dataset, the version or
        the tag does not exist, or when a tag is given with a version or an instant."""
        if tag is not None:
            if version is not None or as_of is not None:
                raise InvalidRequestError("give a version, an instant (asOf) or a tag, not more than one")
            return self.tagged_version(dataset_id, tag)
        current = self.dataset_row(dataset_id)["version"]
        if version is not None:
            if version < 0 or version > current:
                raise VersionNotFoundError(
                    f"dataset {dataset_id} has no version {version} (current version is {current})"
                )
            return version
        if as_of is not None:
            rows = self._fetch(
                SQL(
                    "SELECT max(version) AS v FROM {} WHERE dataset_id = %s AND created_at <= %s"
                ).format(self._versions),
                (dataset_id, as_of),
            )
            if rows[0]["v"] is None:
                raise VersionNotFoundError(f"dataset {dataset_id} did not exist at {as_of.isoformat()}")
            return rows[0]["v"]
        return current

    # -- version tags -----------------------------------------------------------------------

    def list_tags(self, dataset_id: UUID) -> list[TagView]:
        """The dataset's tags, by name."""
        self.dataset_row(dataset_id)
        return [tag_view(r) for r in self._fetch(
            SQL("SELECT * FROM {} WHERE dataset_id = %s ORDER BY tag").format(self._tags), (dataset_id,))]

    def get_tag(self, dataset_id: UUID, tag: str) -> TagView:
        self.dataset_row(dataset_id)
        rows = self._fetch(SQL("SELECT * FROM {} WHERE dataset_id = %s AND tag = %s").format(self._tags),
                           (dataset_id, tag))
        if not rows:
            raise TagNotFoundError(f"dataset {dataset_id} has no tag {tag!r}", tag=tag)
        return tag_view(rows[0])

    def tagged_version(self, dataset_id: UUID, tag: str) -> int:
        """The version `tag` names (TagNotFoundError when the dataset has no such tag)."""
        return self.get_tag(dataset_id, tag).version

    # -- items ----------------------------------------------------------------------------

    def _seqs_at(self, dataset_id: UUID, version: int) -> array[int]:
        key = (dataset_id, version)
        with self._seq_cache_lock:
            seqs = self._seq_cache.get(key)
            if seqs is not None:
                self._seq_cache.move_to_end(key)
                return seqs
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT seq FROM {} WHERE dataset_id = %(d)s AND " + _VALID_AT + " ORDER BY seq").format(
                    self._items
                ),
                {"d": dataset_id, "v": version},
                prepare=True,
            )
            seqs = array("q", (row["seq"] for row in curs))
        with self._seq_cache_lock:
            self._seq_cache[key] = seqs
            while len(self._seq_cache) > self.SEQ_CACHE_SIZE:
                self._seq_cache.popitem(last=False)
        return seqs

    def list_items(
        self,
        dataset_id: UUID,
        version: int,
        page: int,
        per_page: int,
        search: str | None = None,
        *,
        external_id: str | None = None,
    ) -> tuple[list[ItemView], int]:
        if search or external_id is not None:
            if "\x00" in (search or "") + (external_id or ""):
                return [], 0  # nothing stored can hold a NUL character
            conditions, params = [], {"d": dataset_id, "v": version}
            if search:
                # The query is a substring of the JSON text as users see it (`"q"` finds {"q": 2}),
                # or of a string inside it (`say "hi"` finds the string `say "hi"`, stored escaped).
                escaped = orjson.dumps(search).decode()[1:-1]
                conditions.append(
                    "(input::text ILIKE ANY(%(p)s) OR coalesce(expected_output::text, '') ILIKE ANY(%(p)s))"
                )
                params["p"] = [_like_pattern(text) for text in dict.fromkeys((search, escaped))]
            if external_id is not None:
                conditions.append("external_id = %(e)s")
                params["e"] = external_id
            where = " AND ".join(conditions)
            rows = self._fetch(
                SQL(
                    "SELECT " + _ITEM_COLUMNS + ", count(*) OVER () AS total FROM {}"
                    " WHERE dataset_id = %(d)s AND " + _VALID_AT + " AND " + where +
                    " ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s"
                ).format(self._items),
                {**params, "limit": per_page, "offset": page * per_page},
            )
            if rows:
                return [item_view(r) for r in rows], rows[0]["total"]
            if page == 0:
                return [], 0
            count = self._fetch(
                SQL(
                    "SELECT count(*) AS n FROM {} WHERE dataset_id = %(d)s AND " + _VALID_AT + " AND " + where
                ).format(self._items),
                params,
            )
            return [], count[0]["n"]
        seqs = self._seqs_at(dataset_id, version)
        start = page * per_page
        chunk = seqs[start : start + per_page]
        if not chunk:
            return [], len(seqs)
        rows = self._fetch(
            SQL(
                "SELECT " + _ITEM_COLUMNS + " FROM {} WHERE dataset_id = %(d)s"
                " AND seq BETWEEN %(lo)s AND %(hi)s AND " + _VALID_AT + " ORDER BY seq"
            ).format(self._items),
            {"d": dataset_id, "v": version, "lo": chunk[0], "hi": chunk[-1]},
        )
        return [item_view(r) for r in rows], len(seqs)

    def count_items(self, dataset_id: UUID, version: int) -> int:
        return len(self._seqs_at(dataset_id, version))

    def iter_item_pages(self, dataset_id: UUID, version: int, page_size: int = 1000) -> Iterator[list[ItemView]]:
        """Every item at a version, a page at a time (memory stays flat)."""
        page = 0
        while True:
            rows, total = self.list_items(dataset_id, version, page, page_size)
            if rows:
                yield rows
            if (page + 1) * page_size >= total:
                return
            page += 1

    def existing_item_ids(self, dataset_id: UUID, version: int, item_ids: list[UUID]) -> set[UUID]:
        """Which of `item_ids` are items of the dataset at `version`."""
        rows = self._fetch(
            SQL(
                "SELECT item_id FROM {} WHERE dataset_id = %(d)s AND item_id = ANY(%(ids)s) AND " + _VALID_AT
            ).format(self._items),
            {"d": dataset_id, "ids": item_ids, "v": version},
        )
        return {row["item_id"] for row in rows}

    def get_item(self, dataset_id: UUID, item_id: UUID, version: int) -> ItemView:
        rows = self._fetch(
            SQL(
                "SELECT " + _ITEM_COLUMNS + " FROM {} WHERE dataset_id = %(d)s AND item_id = %(i)s AND "
                + _VALID_AT
            ).format(self._items),
            {"d": dataset_id, "i": item_id, "v": version},
        )
        if not rows:
            raise ItemNotFoundError(f"item {item_id} not found in dataset {dataset_id} at version {version}")
        return item_view(rows[0])

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
                "SELECT " + _ITEM_COLUMNS + " FROM {} WHERE dataset_id = %s AND item_id = %s"
                " ORDER BY valid_from DESC"
            ).format(self._items),
            (dataset_id, item_id),
        )
        if not rows:
            raise ItemNotFoundError(f"item {item_id} not found in dataset {dataset_id}")
        return [item_revision(r) for r in rows]

    # -- versions and diffs ---------------------------------------------------------------

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
        valid_a = _VALID_AT.replace("%(v)s", "%(a)s")
        valid_b = _VALID_AT.replace("%(v)s", "%(b)s")
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
                    "SELECT " + _ITEM_COLUMNS + " FROM {} WHERE dataset_id = %s AND (item_id, valid_from)"
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

    def list_datasets_overview(
        self, *, search: str | None, page: int, per_page: int, project_id: UUID | None = None
    ) -> tuple[list[DatasetOverview], int]:
        """Datasets for an overview (newest first, optionally those whose name holds `search`,
        case-insensitively), each with who made its latest version."""
        rows = self._fetch(
            SQL(
                "SELECT d.*, v.actor AS last_actor, count(*) OVER () AS total"
                " FROM {datasets} d LEFT JOIN LATERAL (SELECT actor FROM {versions} x"
                "  WHERE x.dataset_id = d.dataset_id ORDER BY x.version DESC LIMIT 1) v ON true"
                " WHERE d.deleted_at IS NULL AND (%(s)s::text IS NULL OR d.name ILIKE %(p)s)"
                " AND (%(project)s::uuid IS NULL OR d.project_id = %(project)s)"
                " ORDER BY d.created_at DESC, d.dataset_id LIMIT %(n)s OFFSET %(o)s"
            ).format(datasets=self._datasets, versions=self._versions),
            {"s": search, "p": like_pattern(search or ""), "n": per_page, "o": page * per_page,
             "project": project_id},
        )
        total = rows[0]["total"] if rows else 0
        return [DatasetOverview(*_dataset_fields(r), last_actor=r["last_actor"]) for r in rows], total


    # -- the web UI's items table: filters and selections at a version ----------------------

    def _filter_sql(self, search: str | None, meta_key: str | None, meta_value: str | None) -> tuple[str, dict[str, Any]]:
        """SQL conditions (and their parameters) for a text search of input / expectedOutput
        (as the text appears in the stored JSON) and a metadata key = value filter (the value
        compared as text, so `lang=en` and `tier=2` both match)."""
        clauses, params = "", {}
        if search:
            clauses += " AND (input::text ILIKE %(p)s OR coalesce(expected_output::text, '') ILIKE %(p)s)"
            params["p"] = like_pattern(orjson.dumps(search).decode()[1:-1])
        if meta_key:
            clauses += " AND metadata ->> %(mk)s = %(mv)s"
            params.update(mk=meta_key, mv=meta_value or "")
        return clauses, params

    def find_items(self, dataset_id: UUID, version: int, *, page: int, per_page: int, search: str | None = None,
                   meta_key: str | None = None, meta_value: str | None = None) -> tuple[list[ItemView], int]:
        """Items at a version, optionally searched and filtered by one metadata key = value.
        Unfiltered reads take the seq-range path of `list_items` (fast at any version)."""
        if not meta_key:
            return self.list_items(dataset_id, version, page, per_page, search or None)
        if "\x00" in (search or "") + meta_key + (meta_value or ""):
            return [], 0  # nothing stored can hold a NUL character
        clauses, params = self._filter_sql(search, meta_key, meta_value)
        rows = self._fetch(
            SQL(
                "SELECT " + _ITEM_COLUMNS + ", count(*) OVER () AS total FROM {} WHERE dataset_id = %(d)s AND "
                + _VALID_AT + clauses + " ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s"
            ).format(self._items),
            {"d": dataset_id, "v": version, "limit": per_page, "offset": page * per_page, **params},
        )
        if rows:
            return [item_view(r) for r in rows], rows[0]["total"]
        return [], len(self.matching_item_ids(dataset_id, version, search=search, meta_key=meta_key,
                                              meta_value=meta_value)) if page else 0

    def matching_item_ids(self, dataset_id: UUID, version: int, *, search: str | None = None,
                          meta_key: str | None = None, meta_value: str | None = None,
                          limit: int = 100_000) -> list[UUID]:
        """The ids of the items a search / filter matches at a version, in item order."""
        if "\x00" in (search or "") + (meta_key or "") + (meta_value or ""):
            return []
        clauses, params = self._filter_sql(search, meta_key, meta_value)
        rows = self._fetch(
            SQL("SELECT item_id FROM {} WHERE dataset_id = %(d)s AND " + _VALID_AT + clauses
                + " ORDER BY seq LIMIT %(limit)s").format(self._items),
            {"d": dataset_id, "v": version, "limit": limit, **params},
        )
        return [row["item_id"] for row in rows]

    def items_by_ids(self, dataset_id: UUID, version: int, item_ids: list[UUID]) -> list[ItemView]:
        """The named items as they were at a version, in item order (unknown ids are left out)."""
        rows = self._fetch(
            SQL("SELECT " + _ITEM_COLUMNS + " FROM {} WHERE dataset_id = %(d)s AND item_id = ANY(%(ids)s) AND "
                + _VALID_AT + " ORDER BY seq").format(self._items),
            {"d": dataset_id, "ids": item_ids, "v": version},
        )
        return [item_view(r) for r in rows]

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

def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
