"""A materialised view that applies many events per transaction.

Each batch's read-model rows and its tracking position commit in one transaction, so a
projection can be stopped, restarted or rebuilt at any time without loss or double
counting. Several processes may follow the same log: a transaction-scoped advisory lock
serialises them, and events at or below the recorded position are skipped.

How a view applies a batch is its own (`apply`). The runs view folds it into the rows it
touches (runs_fold.py): the same fold a rebuild runs over the whole log. The datasets view
still applies it set-based: the batch is cut into runs of consecutive events that one
handler takes, each written with a few statements, in log order, every statement seeing
what the earlier ones wrote, so the rows come out as if each event had been applied alone;
its rebuild folds the log separately (datasets_bulk.py), and tests hold the two equal.
"""

from __future__ import annotations

import zlib
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.sql import SQL, Composed, Identifier


# A handler writes the rows of a run of consecutive events (one or more) it takes:
# handler(view, cursor, events).
Handler = Callable[[Any, Cursor[Any], list[Any]], None]

# Most items (or results) one handler call is given, so that one statement's JSON stays a
# few megabytes (PostgreSQL refuses a jsonb value over 255 MB); a longer run is split.
MAX_RUN_WEIGHT = 20_000


def one_at_a_time(handle_one: Callable[[Any, Cursor[Any], Any], None]) -> Handler:
    """A handler that applies its events one by one, for rare events whose statement
    differs from one event to the next."""

    def handle(view: Any, curs: Cursor[Any], events: list[Any]) -> None:
        for event in events:
            handle_one(view, curs, event)

    return handle


def runs_of(events: Sequence[Any], handler_of: Callable[[Any], Handler | None],
            weight_of: Callable[[Any], int], max_weight: int = MAX_RUN_WEIGHT) -> Iterator[tuple[Handler, list[Any]]]:
    """(handler, run) for each run of consecutive events one handler takes, in log order.
    Events without a handler are left out; a run is cut before the event that would take
    its weight over `max_weight` (a single heavier event still makes a run of its own)."""
    handler: Handler | None = None
    run: list[Any] = []
    weight = 0
    for event in events:
        this = handler_of(event)
        if this is None:
            continue
        size = weight_of(event)
        if run and (this is not handler or weight + size > max_weight):
            yield handler, run  # type: ignore[misc]
            run, weight = [], 0
        handler = this
        run.append(event)
        weight += size
    if run:
        yield handler, run  # type: ignore[misc]


def parts_of(events: Sequence[Any], weight_of: Callable[[Any], int],
             max_weight: int = MAX_RUN_WEIGHT) -> Iterator[list[Any]]:
    """The events in consecutive parts of at most `max_weight` (a heavier event alone)."""
    for _, part in runs_of(events, lambda event: one_at_a_time, weight_of, max_weight):
        yield part


class BatchingView(PostgresTrackingRecorder):
    # The tables this view writes (besides its tracking table), for rebuilds.
    read_model_tables: tuple[str, ...] = ()
    # Where runs of events are cut (see `runs_of`).
    max_run_weight: int = MAX_RUN_WEIGHT

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

    def handler_of(self, event: Any) -> Handler | None:
        """The handler of the event's class (None: this view ignores the event), for the
        set-based `apply`."""
        return None

    def weight_of(self, event: Any) -> int:
        """How many rows the event writes, about (runs are cut at MAX_RUN_WEIGHT)."""
        return 1

    def apply(self, curs: Cursor[Any], events: Sequence[Any]) -> None:
        """Write the rows the events imply, in order, inside the batch's transaction."""
        for handler, run in runs_of(events, self.handler_of, self.weight_of, self.max_run_weight):
            handler(self, curs, run)

    def process(self, events: Sequence[tuple[Any, int]], position: Tracking) -> int:
        """Apply a batch of (event, notification id) and record `position` (at or after the
        last of them) in the same transaction. Returns how many events were new here."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (self.advisory_key,), prepare=True)
            done = self._max_tracking_id(position.application_name, curs) or 0
            if position.notification_id <= done:
                return 0
            fresh = [event for event, notification_id in events if notification_id > done]
            self.apply(curs, fresh)
            self._insert_tracking(curs, position)
        return len(fresh)
