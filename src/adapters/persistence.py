"""The event store's PostgreSQL recorder.

eventsourcing's `PostgresApplicationRecorder.insert_events` sends its statements in
psycopg pipeline mode, in which a big save never returns (the server waits for the rest of
the statement while the client waits for results). This recorder sends the same statements
in the same transaction (table lock, NOTIFY, INSERT ... RETURNING) without pipeline mode
when they are big: a few more local round trips, no deadlock at any size. Small saves
(single-item edits) keep the library's pipelined path, which is faster.

It also inserts the events from four parallel arrays with the state sent in binary,
instead of one array of a composite type sent as text, which psycopg escapes with a
regular expression. The measurements behind both: benchmarks/README.md ("The event
recorder").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    EventStore,
    InterfaceError,
    Notification,
    OperationalError,
    Recording,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import retry, strtobool
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from evalledger import connections


# Saves below this many bytes of event state use the library's pipelined insert.
PIPELINE_LIMIT = 256 * 1024
# Saves of events holding more than this many items (or run results) in all are mapped
# and inserted one event at a time, inside the one transaction (see LedgerEventStore).
STREAM_ITEMS = 10_000


class EventRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.insert_arrays_statement = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %b::bytea[])"
            " RETURNING notification_id"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        self.insert_one_statement = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state)"
            " VALUES (%s, %s, %s, %b) RETURNING notification_id"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))

    def _insert_stored_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self.insert_arrays_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            prepare=True,
        )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if self.datastore.enable_db_functions or sum(len(e.state) for e in stored_events) < PIPELINE_LIMIT:
            return super().insert_events(stored_events, **kwargs)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events_one_by_one(self, events: Sequence[Any], to_stored: Callable[[Any], StoredEvent]) -> list[Notification]:
        """Map and insert events one at a time in one transaction, so that only two
        events' stored states are in memory at once: the next event is mapped (sealed,
        encoded) in a helper thread while this one is being inserted. The notifications
        returned carry no state (nothing downstream reads it)."""
        notifications = []
        with (ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-mapper") as mapper,
              self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs):
            self._lock_table(curs)
            self._notify_channel(curs)
            upcoming = mapper.submit(to_stored, events[0])
            for index in range(len(events)):
                stored = upcoming.result()
                if index + 1 < len(events):
                    upcoming = mapper.submit(to_stored, events[index + 1])
                curs.execute(self.insert_one_statement,
                             (stored.originator_id, stored.originator_version, stored.topic, stored.state),
                             prepare=True)
                row = curs.fetchone()
                assert row is not None
                notifications.append(Notification(id=row["notification_id"], originator_id=stored.originator_id,
                                                  originator_version=stored.originator_version,
                                                  topic=stored.topic, state=b""))
                del stored
        return notifications


    # -- reading: results in binary format --------------------------------------------
    # The library fetches rows in text format, where `state` (bytea) arrives hex-encoded:
    # twice the bytes, and decoding the hex costs more than the rest of the read.

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True) -> Sequence[Notification]:
        conditions: list[SQL] = []
        params: list[Any] = []
        if start is not None:
            conditions.append(SQL("notification_id >= %s") if inclusive_of_start else SQL("notification_id > %s"))
            params.append(start)
        if stop is not None:
            conditions.append(SQL("notification_id <= %s"))
            params.append(stop)
        if topics:
            conditions.append(SQL("topic = ANY(%s)"))
            params.append(list(topics))
        statement = SQL("SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name))
        if conditions:
            statement += SQL(" WHERE ") + SQL(" AND ").join(conditions)
        statement += SQL(" ORDER BY notification_id LIMIT %s")
        params.append(limit)
        return self._notifications(statement, params)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_project_notifications(self, project_id: UUID, *, start: int, limit: int, stop: int,
                                     topics: Sequence[str] = ()) -> Sequence[Notification]:
        """Notifications after `start` (up to `stop`) of one project's datasets and runs. Which
        aggregates those are comes from the read models' `datasets` and `runs` tables."""
        schema = Identifier(self.datastore.schema)
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{} e"
            " WHERE notification_id > %(start)s AND notification_id <= %(stop)s"
            " AND (%(topics)s::text[] = '{{}}' OR topic = ANY(%(topics)s))"
            " AND (originator_id IN (SELECT dataset_id FROM {}.datasets WHERE project_id = %(project)s)"
            "  OR originator_id IN (SELECT r.run_id FROM {}.runs r JOIN {}.datasets d USING (dataset_id)"
            "   WHERE d.project_id = %(project)s))"
            " ORDER BY notification_id LIMIT %(limit)s"
        ).format(schema, Identifier(self.events_table_name), schema, schema, schema)
        return self._notifications(statement, {"start": start, "stop": stop, "topics": list(topics),
                                               "project": project_id, "limit": limit})

    def _notifications(self, statement: Composed, params: Any) -> list[Notification]:
        """The notifications a statement selects (notification_id, originator_id,
        originator_version, topic, state)."""
        with self.datastore.get_connection() as conn, conn.cursor(binary=True) as curs:
            curs.execute(statement, params, prepare=True)
            return [
                Notification(id=row["notification_id"], originator_id=row["originator_id"],
                             originator_version=row["originator_version"], topic=row["topic"], state=row["state"])
                for row in curs.fetchall()
            ]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events(self, originator_id: UUID | str, *, gt: int | None = None, lte: int | None = None,
                      desc: bool = False, limit: int | None = None) -> Sequence[StoredEvent]:
        statement = self.select_events_statement
        params: list[Any] = [originator_id]
        if gt is not None:
            statement += SQL(" AND originator_version > %s")
            params.append(gt)
        if lte is not None:
            statement += SQL(" AND originator_version <= %s")
            params.append(lte)
        statement += SQL(" ORDER BY originator_version DESC" if desc else " ORDER BY originator_version ASC")
        if limit is not None:
            statement += SQL(" LIMIT %s")
            params.append(limit)
        with self.datastore.get_connection() as conn, conn.cursor(binary=True) as curs:
            curs.execute(statement, params, prepare=True)
            return [
                StoredEvent(originator_id=row["originator_id"], originator_version=row["originator_version"],
                            topic=row["topic"], state=row["state"])
                for row in curs.fetchall()
            ]


RECORDER_TOPIC = f"{__name__}:EventRecorder"


class LedgerFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory, whose pool is made fit for PgBouncer in
    transaction mode (see `connections.transaction_pooled`) when the application's
    environment says so; the pool has not opened yet when the factory is made."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        if strtobool(self.env.get(connections.TRANSACTION_POOLING) or "no"):
            connections.transaction_pooled(self.datastore.pool)


FACTORY_TOPIC = f"{__name__}:LedgerFactory"


class LedgerEventStore(EventStore[UUID]):
    """The library's event store, except that a save of many items (an import, a big
    batch) is mapped and inserted event by event: a 100,000-row import then holds one
    5,000-item event's sealed bytes at a time instead of all of them, twice over."""

    def put(self, domain_events: Sequence[Any], **kwargs: Any) -> list[Recording[UUID]]:
        recorder = self.recorder
        weight = sum(len(getattr(e, "items", None) or getattr(e, "results", None) or ()) for e in domain_events)
        if (len(domain_events) < 2 or weight <= STREAM_ITEMS or kwargs.get("tracking") is not None
                or not isinstance(recorder, EventRecorder) or recorder.datastore.enable_db_functions):
            return super().put(domain_events, **kwargs)
        notifications = recorder.insert_events_one_by_one(domain_events, self.mapper.to_stored_event)
        return [Recording(event, notification) for event, notification in zip(domain_events, notifications, strict=True)]
