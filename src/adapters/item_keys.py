"""Per-item content keys: what makes an item's content erasable from an append-only log.

Every item gets its own random 256-bit AES-GCM key when it is first written. Events hold
the item's content only sealed with that key (see `sealing.py`); the keys live in one
small table beside the events, `evalledger_item_keys`. Purging an item destroys its key:
from then on every event that mentions the item still replays (ids, versions, counts and
scores are in the clear), but its content cannot be read by anyone, including a rebuild
of the read model or a `pg_dump` of the database ("crypto-shredding").

A key is committed before any event sealed with it is saved (`ensure`), so a crash never
leaves an event whose key was lost; a crash in between leaves at most an unused key.

Keys are cached in memory, with the ciphers built from them. A cache miss for an item of
a dataset loads the whole dataset's keys in one query, so replaying a dataset costs one
round trip, not one per event. `destroy` drops the key from this process's cache; other
processes forget it when their projection followers read the `ItemPurged` event
(`sealing.SealingMapper`), within about a second.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

TABLE = "evalledger_item_keys"

# New keys for at least this many items at once are sent with COPY.
COPY_FROM = 500
# Cached keys beyond this many are dropped, oldest first (about 200 bytes each).
CACHE_LIMIT = 1_000_000


class ItemKeys:
    """The key store: create keys for new items, find the cipher of an item, destroy it."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self.table = SQL("{}.{}").format(Identifier(datastore.schema), Identifier(TABLE))
        self._guard = threading.Lock()
        # item id -> its key, or None once the key is destroyed. Keys, not ciphers: an
        # AESGCM object holds OpenSSL state of about 2 KB, a key 32 bytes.
        self._keys: dict[str, bytes | None] = {}
        self._loaded_datasets: set[str] = set()

    # -- schema -----------------------------------------------------------------------

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    " item_id uuid PRIMARY KEY,"
                    " dataset_id uuid NOT NULL,"
                    " key bytea,"
                    " created_at timestamptz NOT NULL DEFAULT now(),"
                    " destroyed_at timestamptz)"
                ).format(self.table)
            )
            curs.execute(
                SQL("CREATE INDEX IF NOT EXISTS evalledger_item_keys_dataset_idx ON {} (dataset_id)").format(self.table)
            )

    # -- writing ----------------------------------------------------------------------

    def ensure(self, dataset_id: str, item_ids: Iterable[str]) -> None:
        """Give every item that has none a new key, committed before this returns.

        Items whose key exists (or was destroyed) keep it: a destroyed key is never
        replaced, so content written after a purge could not be read either."""
        missing = [item_id for item_id in item_ids if item_id not in self._keys]
        if not missing:
            return
        if dataset_id not in self._loaded_datasets:
            self._load_dataset(dataset_id)
            missing = [item_id for item_id in missing if item_id not in self._keys]
            if not missing:
                return
        keys = [AESGCM.generate_key(bit_length=256) for _ in missing]
        with self.datastore.transaction(commit=True) as curs:
            if len(missing) < COPY_FROM:
                stored = self._insert_new(curs, dataset_id, missing, keys)
            else:
                # Many new items (a batch, an import): COPY them straight in. Item ids are
                # fresh UUIDs, so a clash means another process raced us: then undo the COPY
                # and insert what is not there yet.
                try:
                    with curs.connection.transaction():
                        with curs.copy(SQL("COPY {} (item_id, dataset_id, key) FROM STDIN").format(self.table)) as copy:
                            # COPY's text format, written whole: a bytea as \\x and its hex digits.
                            copy.write("".join(f"{item_id}\t{dataset_id}\t\\\\x{key.hex()}\n"
                                               for item_id, key in zip(missing, keys, strict=True)).encode())
                    stored = set(missing)
                except psycopg.errors.UniqueViolation:
                    stored = self._insert_new(curs, dataset_id, missing, keys)
        self._remember([(item_id, key) for item_id, key in zip(missing, keys, strict=True) if item_id in stored])
        if len(stored) < len(missing):
            # Another process stored some of these keys first: use what it stored.
            raced = [item_id for item_id in missing if item_id not in stored]
            self._remember(self._fetch(SQL("item_id = ANY(%s::uuid[])"), raced))

    def _insert_new(self, curs: Any, dataset_id: str, item_ids: list[str], keys: list[bytes]) -> set[str]:
        """Insert the keys of items that have none; returns the ids whose key was stored."""
        curs.execute(
            SQL(
                "INSERT INTO {} (item_id, dataset_id, key)"
                " SELECT i, %s, k FROM unnest(%s::uuid[], %b::bytea[]) AS t(i, k)"
                " ON CONFLICT (item_id) DO NOTHING RETURNING item_id::text AS item_id"
            ).format(self.table),
            (dataset_id, item_ids, keys),
            prepare=True,
        )
        return {row["item_id"] for row in curs.fetchall()}

    def destroy(self, item_id: str) -> datetime | None:
        """Destroy an item's key. Returns when it was destroyed (the first time), or None
        when the item never had a key."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "UPDATE {} SET key = NULL, destroyed_at = coalesce(destroyed_at, now())"
                    " WHERE item_id = %s RETURNING destroyed_at"
                ).format(self.table),
                (item_id,),
            )
            row = curs.fetchone()
        self.forget(item_id)
        return None if row is None else row["destroyed_at"]

    def vacuum(self) -> None:
        """Remove dead row versions of the key table, so a destroyed key does not linger
        in the table's files until autovacuum comes round."""
        with self.datastore.get_connection() as conn:
            previous = conn.autocommit
            conn.autocommit = True
            try:
                conn.execute(SQL("VACUUM {}").format(self.table))
            finally:
                conn.autocommit = previous

    def forget(self, item_id: str) -> None:
        with self._guard:
            self._keys[item_id] = None

    # -- reading ----------------------------------------------------------------------

    def ciphers(self, item_ids: Iterable[str], *, dataset_id: str | None = None) -> dict[str, AESGCM | None]:
        """The cipher of each item: None where its key was destroyed; items that never
        had a key are left out."""
        wanted = list(item_ids)
        missing = [item_id for item_id in wanted if item_id not in self._keys]
        if missing:
            self._load(missing, dataset_id=dataset_id)
        keys = self._keys
        return {item_id: None if (key := keys[item_id]) is None else AESGCM(key)
                for item_id in wanted if item_id in keys}

    def key(self, item_id: str, dataset_id: str) -> bytes | None:
        """One item's raw key (None: destroyed, or the item never had one); a cache miss
        loads the dataset's keys. The fast path for opening content one item at a time."""
        try:
            return self._keys[item_id]
        except KeyError:
            self._load([item_id], dataset_id=dataset_id)
            return self._keys.get(item_id)

    def preload(self, dataset_id: str) -> None:
        """Cache a dataset's keys (one query, the first time)."""
        if dataset_id not in self._loaded_datasets:
            self._load_dataset(dataset_id)

    def _load(self, item_ids: list[str], *, dataset_id: str | None) -> None:
        if dataset_id is None:
            self._load_datasets_of(item_ids)
        elif dataset_id not in self._loaded_datasets:
            self._load_dataset(dataset_id)
        item_ids = [item_id for item_id in item_ids if item_id not in self._keys]
        if item_ids:
            self._remember(self._fetch(SQL("item_id = ANY(%s::uuid[])"), item_ids))

    def _load_datasets_of(self, item_ids: list[str]) -> None:
        """Cache the keys of the datasets the items belong to, whole: a run's results name
        items, not their dataset, and a replay of the run then costs one query, not one
        per event."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT item_id::text AS item_id, key, dataset_id::text AS dataset_id FROM {} WHERE dataset_id IN"
                    " (SELECT dataset_id FROM {} WHERE item_id = ANY(%s::uuid[])) AND NOT dataset_id = ANY(%s::uuid[])"
                    ).format(self.table, self.table),
                (item_ids, list(self._loaded_datasets)),
            )
            rows = curs.fetchall()
        self._remember([(row["item_id"], row["key"]) for row in rows])
        with self._guard:
            self._loaded_datasets.update(row["dataset_id"] for row in rows)

    def _load_dataset(self, dataset_id: str) -> None:
        rows = self._fetch(SQL("dataset_id = %s"), dataset_id)
        self._remember(rows)
        with self._guard:
            self._loaded_datasets.add(dataset_id)

    def _fetch(self, condition: SQL, value: Any) -> list[tuple[str, bytes | None]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT item_id::text AS item_id, key FROM {} WHERE ").format(self.table) + condition,
                (value,),
            )
            return [(row["item_id"], row["key"]) for row in curs.fetchall()]

    def _remember(self, rows: list[tuple[str, bytes | None]]) -> None:
        with self._guard:
            if len(self._keys) + len(rows) > CACHE_LIMIT:
                for stale in list(self._keys)[: len(self._keys) // 2]:
                    del self._keys[stale]
                self._loaded_datasets.clear()
            for item_id, key in rows:
                self._keys[item_id] = None if key is None else bytes(key)


class MemoryItemKeys:
    """The key store in a dict, for applications on the library's in-memory (POPO)
    persistence: the fast test tier runs dataset and run commands, purges included,
    without PostgreSQL. Same answers as ItemKeys; nothing survives the process."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._keys: dict[str, bytes | None] = {}
        self._destroyed: dict[str, datetime] = {}

    def ensure(self, dataset_id: str, item_ids: Iterable[str]) -> None:
        with self._guard:
            for item_id in item_ids:
                if item_id not in self._keys:
                    self._keys[item_id] = AESGCM.generate_key(bit_length=256)

    def destroy(self, item_id: str) -> datetime | None:
        with self._guard:
            if item_id not in self._keys:
                return None
            self._keys[item_id] = None
            return self._destroyed.setdefault(item_id, datetime.now(UTC))

    def vacuum(self) -> None:
        """Nothing lingers in a dict."""

    def forget(self, item_id: str) -> None:
        with self._guard:
            self._keys[item_id] = None

    def ciphers(self, item_ids: Iterable[str], *, dataset_id: str | None = None) -> dict[str, AESGCM | None]:
        keys = self._keys
        return {item_id: None if (key := keys[item_id]) is None else AESGCM(key)
                for item_id in item_ids if item_id in keys}

    def key(self, item_id: str, dataset_id: str) -> bytes | None:
        return self._keys.get(item_id)

    def preload(self, dataset_id: str) -> None:
        """Every key is in memory already."""


def new_nonce() -> bytes:
    return os.urandom(12)
