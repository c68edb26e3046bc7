"""A materialised view that applies many events per transaction.

Each batch's read-model rows and its tracking position commit in one transaction, so a
projection can be stopped, restarted or rebuilt at any time without loss or double
counting. Several processes may follow the same log: a transaction-scoped advisory lock
serialises them, and events at or below the recorded position are skipped.
"""

from __future__ import annotations

import zlib
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.sql import SQL, Composed, Identifier


class BatchingView(PostgresTrackingRecorder):
    # The tables this view writes (besides its tracking table), for rebuilds.
    read_model_tables: tuple[str, ...] = ()

    def __init__(self, datastore: PostgresDatastore, *, tracking_table_name: str,
                 other_views_schema: str | None = None, **kwargs: Any) -> None:
        super().__init__(datastore, tracking_table_name=tracking_table_name, **kwargs)
        self.schema = datastore.schema
        # Where tables of other views live (a rebuild builds this view in a schema of its own).
        self.other_views_schema = other_views_schema or self.schema
        self.advisory_key = zlib.crc32(f"{self.schema}.{tracking_table_name}".encode()) - 2**31
        self.sql_create_statements.extend(self.table_statements())

    def table(self, name: str) -> Composed:
        """A schema-qualified table name for SQL composition."""
        return SQL("{}.{}").format(Identifier(self.schema), Identifier(name))

    def other_view_table(self, name: str) -> Composed:
        """A table another view owns (read, never written, by this one)."""
        return SQL("{}.{}").format(Identifier(self.other_views_schema), Identifier(name))

    @abstractmethod
    def table_statements(self) -> list[Composed]:
        """CREATE TABLE / INDEX statements of this view (idempotent)."""

    @abstractmethod
    def apply(self, curs: Cursor[Any], event: Any) -> None:
        """Write the rows one event implies, inside the batch's transaction."""

    def process(self, events: Sequence[tuple[Any, int]], position: Tracking) -> int:
        """Apply a batch of (event, notification id) and record `position` (at or after the
        last of them) in the same transaction. Returns how many events were new here."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (self.advisory_key,), prepare=True)
            done = self._max_tracking_id(position.application_name, curs) or 0
            if position.notification_id <= done:
                return 0
            fresh = [event for event, notification_id in events if notification_id > done]
            for event in fresh:
                self.apply(curs, event)
            self._insert_tracking(curs, position)
        return len(fresh)
