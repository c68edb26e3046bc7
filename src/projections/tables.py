"""What the query classes of the read models share: one fetch (a statement's rows, as dicts
unless told otherwise)."""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import RowFactory, dict_row
from psycopg.sql import Composed


class Tables:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    def _fetch(self, query: Composed | str, params: Any = None, row_factory: RowFactory[Any] = dict_row) -> list[Any]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=row_factory) as curs:
            curs.execute(query, params, prepare=True)
            return curs.fetchall()
