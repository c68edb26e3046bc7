"""A materialised view that applies many events per transaction.

Each batch's read-model rows and its tracking position commit in one transaction, so a
projection can be stopped, restarted or rebuilt at any time without loss or double
counting. Several processes may apply the same log (one follows it in the background, the
others apply their own commands' writes): a transaction-scoped advisory lock serialises
them, and events at or below the recorded position are skipped.

A view applies a batch (`apply`) with its read model's fold (datasets_fold.py,
runs_fold.py), the one a rebuild runs over the whole log (bulk.py): it reads the rows the
batch touches, by key, in one round trip, folds the batch into them and writes back the
rows that changed in another, with the tracking record and the commit (`process`). A long
batch goes in parts (`parts_of`), each seeing what the one before wrote.
"""

from __future__ import annotations

import hashlib
import zlib
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import orjson
import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.pq import TransactionStatus
from psycopg.sql import SQL, Composed, Identifier, Literal


class ViewBehind(Exception):  # noqa: N818 - a condition the caller handles, not a failure
    """The view's recorded position is behind the one a batch goes on from."""

    def __init__(self, position: int) -> None:
        super().__init__(f"the view is at {position}")
        self.position = position


# Most items (or results) one part of a batch holds, so that one statement's JSON stays a
# few megabytes (PostgreSQL refuses a jsonb value over 255 MB); a longer batch is split.
MAX_RUN_WEIGHT = 20_000


def parts_of(events: Sequence[Any], weight_of: Callable[[Any], int],
             max_weight: int = MAX_RUN_WEIGHT) -> Iterator[list[Any]]:
    """The events, in log order, in consecutive parts; a part is cut before the event that
    would take its weight over `max_weight` (a single heavier event makes a part alone)."""
    part: list[Any] = []
    weight = 0
    for event in events:
        size = weight_of(event)
        if part and weight + size > max_weight:
            yield part
            part, weight = [], 0
        part.append(event)
        weight += size
    if part:
        yield part


# -- reading and writing a fold's rows -------------------------------------------------------

Statement = tuple[bytes | Composed, Any]  # a statement and its parameters


def rendered(statement: Composed) -> bytes:
    """A composed statement as the bytes psycopg sends, made once: composing it again on
    every execute (quoting identifiers, joining parts) was a measurable part of a single
    edit's catch-up (see benchmarks/README.md)."""
    return statement.as_bytes(None)


def run_together(curs: Cursor[Any], statements: Sequence[Statement], *, rows: bool = False) -> list[list[Any]]:
    """Run the statements, in order, in one round trip (pipeline mode); with `rows`, return
    each one's rows. A view reads the rows a batch touches from several tables, and writes
    several tables back: waiting for each statement in turn would cost a round trip each."""
    if not statements:
        return []
    if len(statements) == 1:
        curs.execute(*statements[0], prepare=True)
        return [curs.fetchall()] if rows else []
    conn = curs.connection
    cursors = []
    with conn.pipeline():
        for statement, params in statements:
            cursor = conn.cursor() if rows else curs
            cursor.execute(statement, params, prepare=True)
            cursors.append(cursor)
    return [cursor.fetchall() for cursor in cursors] if rows else []



def json_rows(rows: Sequence[Any]) -> str:
    """Rows (dataclasses or dicts) as one JSON array, for `jsonb_to_recordset`."""
    return orjson.dumps(rows).decode()


def names(columns: Sequence[str]) -> Composed:
    return SQL(", ").join(map(Identifier, columns))


def updates(columns: Sequence[str], keys: Sequence[str]) -> Composed:
    """`column = excluded.column` for every column but the keys, for ON CONFLICT."""
    return SQL(", ").join(SQL("{} = excluded.{}").format(Identifier(c), Identifier(c))
                          for c in columns if c not in keys)


def upsert(table: Composed, columns: Sequence[str], types: str, keys: Sequence[str], *,
           update: bool = True) -> Composed:
    """Insert rows given as one JSON array (`json_rows`; `types`: each column's type, for
    `jsonb_to_recordset`); a row whose key is there replaces it (`update`) or is left out."""
    conflict = SQL("DO UPDATE SET ") + updates(columns, keys) if update else SQL("DO NOTHING")
    return SQL("INSERT INTO {} ({}) SELECT {} FROM jsonb_to_recordset(%s::jsonb) AS r({}) ON CONFLICT ({}) {}").format(
        table, names(columns), names(columns), SQL(types), names(keys), conflict)


class BatchingView(PostgresTrackingRecorder):
    # The tables this view writes (besides its tracking table), for rebuilds.
    read_model_tables: tuple[str, ...] = ()
    # Where a batch is cut into parts (see `parts_of`).
    max_run_weight: int = MAX_RUN_WEIGHT

    def __init__(self, datastore: PostgresDatastore, *, tracking_table_name: str,
                 other_views_schema: str | None = None, **kwargs: Any) -> None:
        super().__init__(datastore, tracking_table_name=tracking_table_name, **kwargs)
        self.schema = datastore.schema
        # Where tables of other views live (a rebuild builds this view in a schema of its own).
        self.other_views_schema = other_views_schema or self.schema
        self.advisory_key = zlib.crc32(f"{self.schema}.{tracking_table_name}".encode()) - 2**31
        # Held at session level by the process that follows this view in the background (its
        # leader, see follower.py). A key of its own: the leader's batches take
        # `advisory_key` from pool connections, which a session lock on it would block.
        # 64 bits, so that schemas on one database practically never share one (a process
        # holding another schema's key would keep this one from leading).
        self.leader_key = int.from_bytes(hashlib.blake2b(f"{self.schema}.{tracking_table_name}".encode(),
                                                         digest_size=8, person=b"leader").digest(), signed=True)
        self.view_statements = self.table_statements()
        self.sql_create_statements.extend(self.view_statements)
        # The library's tracking statements, rendered once too (see `rendered`).
        self.max_tracking_id_statement = rendered(self.max_tracking_id_statement)  # type: ignore[assignment]
        self.insert_tracking_statement = rendered(self.insert_tracking_statement)  # type: ignore[assignment]
        self._statements: dict[Any, bytes] = {}

    def statement(self, key: Any, make: Callable[[], Composed]) -> bytes:
        """The statement `key` names, made (`make`) and rendered the first time it is asked for."""
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = rendered(make())
        return found

    def table(self, name: str) -> Composed:
        """A schema-qualified table name for SQL composition."""
        return SQL("{}.{}").format(Identifier(self.schema), Identifier(name))

    def add_column(self, table: str, column: str, definition: str, default: Composed | None = None) -> Composed:
        """ALTER TABLE ... ADD COLUMN for tables made before the column, run only when the
        column is missing: an ALTER takes the table's exclusive lock even when the column
        exists, and a process starting beside busy ones would then queue every read of the
        table behind it (or deadlock with a writer)."""
        alter = SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
            self.table(table), Identifier(column), SQL(definition))  # type: ignore[arg-type]
        if default is not None:
            alter = SQL("{} DEFAULT {}").format(alter, default)
        # Asked of the catalog itself: information_schema.columns took 1.5-5 ms a column, and
        # a rebuild runs every one of these on its fresh tables (benchmarks/README.md).
        return SQL(
            "DO $add$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a"
            " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = {} AND c.relname = {} AND a.attname = {} AND NOT a.attisdropped) THEN {}; END IF;"
            " END $add$"
        ).format(Literal(self.schema), Literal(table), Literal(column), alter)

    def create_table(self) -> None:
        """The tracking table as the library makes it (with its migration row), then this
        view's statements each in a transaction of its own: a process that starts while
        others write then holds one table's lock at a time, so it cannot deadlock with their
        transactions (which lock several tables); a statement that waits does so briefly."""
        everything = list(self.sql_create_statements)
        mine = {id(statement) for statement in self.view_statements}
        self.sql_create_statements[:] = [s for s in everything if id(s) not in mine]
        try:
            super().create_table()
        finally:
            self.sql_create_statements[:] = everything
        for statement in self.view_statements:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(statement, prepare=False)

    def other_view_table(self, name: str) -> Composed:
        """A table another view owns (read, never written, by this one)."""
        return SQL("{}.{}").format(Identifier(self.other_views_schema), Identifier(name))

    @abstractmethod
    def table_statements(self) -> list[Composed]:
        """CREATE TABLE / INDEX statements of this view (idempotent)."""

    def weight_of(self, event: Any) -> int:
        """How many rows the event writes, about (batches are cut at `max_run_weight`)."""
        return 1

    # The view's fold module (datasets_fold, runs_fold): `FOLDS` (the events it takes),
    # `touched(events)` (the keys of the rows they touch) and `fold(state, events)`.
    rules: Any

    @abstractmethod
    def reads(self, keys: Any) -> tuple[list[Statement], Callable[[list[list[Any]]], Any]]:
        """The statements that read the rows the keys name, and what makes the fold's state
        of their answers."""

    @abstractmethod
    def write_rows(self, curs: Cursor[Any], state: Any) -> list[Statement]:
        """The statements that write the rows the fold changed (some may be run at once)."""

    def read_rows(self, curs: Cursor[Any], keys: Any) -> Any:
        """The rows the keys name, as the fold's state (read in one round trip)."""
        statements, state_of = self.reads(keys)
        return state_of(run_together(curs, statements, rows=True))

    def apply(self, curs: Cursor[Any], events: Sequence[Any], first: Any = None) -> list[Statement]:
        """Read the rows the events touch, fold the events into them and write back the
        changed rows, in order, inside the batch's transaction; a long batch goes in parts,
        each seeing what the last wrote. The last writes are returned, not yet run, for the
        caller to send with its own. `first`: the first part's rows, when read already
        (`first_reads`)."""
        writes: list[Statement] = []
        for part in self._parts(events):
            run_together(curs, writes)  # the part before's, before this part's rows are read
            state = first if first is not None else self.read_rows(curs, self.rules.touched(part))
            first = None
            writes = self.write_rows(curs, self.rules.fold(state, part))
        return writes

    def first_reads(self, events: Sequence[Any]) -> tuple[list[Statement], Callable[[list[list[Any]]], Any]]:
        """The reads of the rows the batch's first part touches, and what turns their
        answers into the fold's state (for `apply`'s `first`)."""
        part = next(self._parts(events), None)
        return self.reads(self.rules.touched(part)) if part else ([], lambda found: None)

    def _parts(self, events: Sequence[Any]) -> Iterator[list[Any]]:
        folds = self.rules.FOLDS
        return parts_of([e for e in events if type(e) in folds], self.weight_of, self.max_run_weight)

    def apply_now(self, curs: Cursor[Any], events: Sequence[Any]) -> None:
        """`apply`, its last writes included."""
        run_together(curs, self.apply(curs, events))

    @contextmanager
    def _batch_transaction(self) -> Iterator[Cursor[Any]]:
        """A cursor on one of the datastore's connections (autocommit, as the library makes
        them) for a batch that sends its own BEGIN and COMMIT inside its first and last
        pipelines, which saves the two round trips `conn.transaction()` spends on them.
        What is left open (an early return, an error) is rolled back here.

        The batch commits without waiting for the WAL to reach the disk (synchronous_commit
        off): its rows and its tracking position are derived from events that are on disk
        already, and commit or vanish together. A database crash can lose the last such
        commits, never part of one; the view is then behind its log, and its followers apply
        the events again (a writer learns it from `ViewBehind`, the leader from its position
        check). The WAL is written in order, so a later synchronous commit (any event
        stored) makes every earlier batch durable too. Measured: a single edit's catch-up
        1.6-1.9 -> 1.3-1.6 ms (benchmarks/README.md)."""
        with self.datastore.get_connection() as conn:
            try:
                yield conn.cursor()
            finally:
                if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
                    # Not in the way of what is being raised: a connection that cannot roll
                    # back is broken, and the pool discards it.
                    with suppress(psycopg.Error):
                        conn.execute(b"ROLLBACK", prepare=False)

    def process(self, events: Sequence[tuple[Any, int]], position: Tracking, *, follows: int | None = None) -> int:
        """Apply a batch of (event, notification id) and record `position` (at or after the
        last of them) in the same transaction. Returns how many events were new here.
        `follows`: the position the batch goes on from (its events are all the view's
        between it and `position`); ViewBehind, and nothing written, if the view is not
        there yet (another process rebuilt it meanwhile), as the events between would be
        lost."""
        batch = [event for event, _ in events]
        reads, state_of = self.first_reads(batch)
        with self._batch_transaction() as curs:
            conn = curs.connection
            # The transaction's start, the lock, the position and the rows the batch touches
            # first, in one round trip: statements run in order, so the reads see the tables
            # as the lock leaves them.
            with conn.pipeline():
                curs.execute(b"BEGIN", prepare=False)
                curs.execute(b"SET LOCAL synchronous_commit TO off", prepare=False)
                curs.execute("SELECT pg_advisory_xact_lock(%s)", (self.advisory_key,), prepare=True)
                tracked = conn.cursor()
                tracked.execute(self.max_tracking_id_statement, (position.application_name,), prepare=True)
                answers = [conn.cursor() for _ in reads]
                for cursor, (statement, params) in zip(answers, reads, strict=True):
                    cursor.execute(statement, params, prepare=True)
            done = (tracked.fetchone() or {}).get("max") or 0  # type: ignore[union-attr]
            if position.notification_id <= done:
                return 0
            if follows is not None and done < follows:
                raise ViewBehind(done)
            fresh = [event for event, notification_id in events if notification_id > done]
            # Rows read for events some of which were applied already are read again.
            first = state_of([cursor.fetchall() for cursor in answers]) if reads and len(fresh) == len(batch) else None
            writes = self.apply(curs, fresh, first)
            with conn.pipeline():  # the last rows, the position and the commit in one round trip
                for statement, params in writes:
                    curs.execute(statement, params, prepare=True)
                self._insert_tracking(curs, position)
                curs.execute(b"COMMIT", prepare=False)
        return len(fresh)
