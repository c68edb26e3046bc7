"""Reads over the datasets projection's tables (see projections/datasets.py): datasets, tags,
the items of a version, and the web UI's item filters; the past (versions, diffs, item
histories) is in dataset_history.py, the answers' types in dataset_views.py.

Answers are typed snake_case objects; `api/` puts them on the wire.

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
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL

from evalledger.domain.datasets import TagNotFoundError
from evalledger.domain.errors import InvalidRequestError, ItemNotFoundError, VersionNotFoundError
from evalledger.projections.dataset_history import DatasetHistory
from evalledger.projections.dataset_tables import ITEM_COLUMNS, VALID_AT, like_pattern
# The answers' types, also importable from here (the module that answers with them).
from evalledger.projections.dataset_views import (  # noqa: F401
    DatasetOverview,
    DatasetView,
    DiffPage,
    DiffSummary,
    FieldChange,
    ItemDiff,
    ItemRevision,
    ItemView,
    TagView,
    VersionView,
    dataset_overview,
    dataset_view,
    field_changes,
    item_view,
    tag_view,
)


class DatasetQueries(DatasetHistory):
    """Every read of the datasets read model (its versions, diffs and item histories: DatasetHistory)."""

    SEQ_CACHE_SIZE = 32

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        self._seq_cache: OrderedDict[tuple[UUID, int], array[int]] = OrderedDict()
        self._seq_cache_lock = threading.Lock()

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
                SQL("SELECT seq FROM {} WHERE dataset_id = %(d)s AND " + VALID_AT + " ORDER BY seq").format(
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
                params["p"] = [like_pattern(text) for text in dict.fromkeys((search, escaped))]
            if external_id is not None:
                conditions.append("external_id = %(e)s")
                params["e"] = external_id
            where = " AND ".join(conditions)
            rows = self._fetch(
                SQL(
                    "SELECT " + ITEM_COLUMNS + ", count(*) OVER () AS total FROM {}"
                    " WHERE dataset_id = %(d)s AND " + VALID_AT + " AND " + where +
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
                    "SELECT count(*) AS n FROM {} WHERE dataset_id = %(d)s AND " + VALID_AT + " AND " + where
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
                "SELECT " + ITEM_COLUMNS + " FROM {} WHERE dataset_id = %(d)s"
                " AND seq BETWEEN %(lo)s AND %(hi)s AND " + VALID_AT + " ORDER BY seq"
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
                "SELECT item_id FROM {} WHERE dataset_id = %(d)s AND item_id = ANY(%(ids)s) AND " + VALID_AT
            ).format(self._items),
            {"d": dataset_id, "ids": item_ids, "v": version},
        )
        return {row["item_id"] for row in rows}

    def get_item(self, dataset_id: UUID, item_id: UUID, version: int) -> ItemView:
        rows = self._fetch(
            SQL(
                "SELECT " + ITEM_COLUMNS + " FROM {} WHERE dataset_id = %(d)s AND item_id = %(i)s AND "
                + VALID_AT
            ).format(self._items),
            {"d": dataset_id, "i": item_id, "v": version},
        )
        if not rows:
            raise ItemNotFoundError(f"item {item_id} not found in dataset {dataset_id} at version {version}")
        return item_view(rows[0])

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
        return [dataset_overview(r) for r in rows], total


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
                "SELECT " + ITEM_COLUMNS + ", count(*) OVER () AS total FROM {} WHERE dataset_id = %(d)s AND "
                + VALID_AT + clauses + " ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s"
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
            SQL("SELECT item_id FROM {} WHERE dataset_id = %(d)s AND " + VALID_AT + clauses
                + " ORDER BY seq LIMIT %(limit)s").format(self._items),
            {"d": dataset_id, "v": version, "limit": limit, **params},
        )
        return [row["item_id"] for row in rows]

    def items_by_ids(self, dataset_id: UUID, version: int, item_ids: list[UUID]) -> list[ItemView]:
        """The named items as they were at a version, in item order (unknown ids are left out)."""
        rows = self._fetch(
            SQL("SELECT " + ITEM_COLUMNS + " FROM {} WHERE dataset_id = %(d)s AND item_id = ANY(%(ids)s) AND "
                + VALID_AT + " ORDER BY seq").format(self._items),
            {"d": dataset_id, "ids": item_ids, "v": version},
        )
        return [item_view(r) for r in rows]
