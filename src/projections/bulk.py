"""Bulk loading: how a rebuild fills a view's empty tables from the log.

Each read model has one fold (`datasets_fold.py`, `runs_fold.py`): live catch-up folds a
batch into the rows it touches, read from the tables. A rebuild folds the whole log into
empty state and streams the rows it leaves with COPY into empty tables: no item revision
is inserted and then closed by an UPDATE, no result is inserted and then replaced.
Each view's bulk load (`datasets_bulk.py`, `runs_bulk.py`) runs its view's fold and writes
rows once they are final; tests/test_projection_batches.py builds the read models both
ways, with and without spilling (below), and requires them to be equal column for column.

Threads share the work, so that Python and PostgreSQL work at the same time on two
cores: a reader fetches and decodes the next batch of events (`read_events`), the
caller's thread folds events into rows and encodes them in COPY's text format, and a
`Writer` sends them with COPY over two connections (the rows of a table are
order-free), then builds the indexes and runs what must come after the rows (updates of
spilled rows, purges, the tracking position).

Memory: rows that may still change (an item's open revision, the results of a run that
has not finished) are held until they are final. When they come to more than the load's
memory budget they are written as they are ("spilled"), and whatever later changes them
is written as an UPDATE, or a DELETE and a new row.
"""

from __future__ import annotations

import math
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.sql import SQL, Composed, Identifier

from evalledger.domain.content import Sealed
from evalledger.projections.follower import FIRST_READ, gc_paused, next_read_limit
from evalledger.projections.view import BatchingView
from evalledger.read_ahead import ReadAhead

# Rows of one table are sent in COPY statements of about this many bytes.
COPY_CHUNK = 2 * 2**20
# Rows encoded at a time by `TableRows.add_encoded`.
ENCODE_SLICE = 1000
# Rows held back (not yet final) may take about this many bytes before they are spilled.
MEMORY_BUDGET = 256 * 2**20
# Most notifications one read of the log asks for (the first asks for FIRST_READ, as the
# follower's does, and each next one for twice as many, up to this, while they stay small).
READ_MOST = 2000

NULL = b"\\N"
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

# A step for the writer's thread: gets the cursor of the load's transaction.
Step = Callable[[Cursor[Any]], None]
# Makes a load's tables; returns the index builds and the constraints for after the rows.
Preparation = Callable[[Cursor[Any]], tuple[Sequence[Composed], Sequence[Composed]]]
# Told how far a load has come: progress(position in the log, position it goes up to).
Progress = Callable[[int, int], None]


# -- values in COPY's text format ----------------------------------------------------------


def copy_text(value: str | None) -> bytes:
    """A text value (None: NULL)."""
    if value is None:
        return NULL
    return value.translate(_TEXT_ESCAPES).encode()


def copy_json(value: Any) -> bytes:
    """A jsonb value. JSON null is NULL, as `jsonb_to_recordset` makes it for the handlers."""
    if value is None:
        return NULL
    # orjson escapes control characters inside strings, so only backslashes need doubling.
    return orjson.dumps(value).replace(b"\\", b"\\\\")


def copy_time(value: datetime | str | None) -> bytes:
    """A timestamptz value: a datetime, or the ISO text a result carries."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return copy_text(value)
    return value.isoformat().encode()


def copy_int(value: int | None) -> bytes:
    return NULL if value is None else b"%d" % value


def copy_float(value: float | None) -> bytes:
    """A float8 value; what is not finite is NULL, as it is in the handlers' JSON."""
    if value is None or not math.isfinite(value):
        return NULL
    return repr(float(value)).encode()


def copy_id(value: UUID | str) -> bytes:
    return str(value).encode()


def content_columns(content: dict[str, Any] | Sealed) -> tuple[bytes, bytes, bytes]:
    """An item's input, expected_output and metadata, as the datasets handlers write them
    (`decode_content`'s defaults: JSON null is NULL, metadata null is {}). Sealed content
    is copied as the JSON texts it was sealed as, without being parsed."""
    if isinstance(content, Sealed):
        input_json, expected_json, metadata_json = content.open_json()
        return (NULL if input_json == b"null" else input_json.replace(b"\\", b"\\\\"),
                NULL if expected_json == b"null" else expected_json.replace(b"\\", b"\\\\"),
                b"{}" if metadata_json == b"null" else metadata_json.replace(b"\\", b"\\\\"))
    return (copy_json(content["input"]), copy_json(content.get("expectedOutput")),
            copy_json(content.get("metadata") or {}))


# -- the writer ---------------------------------------------------------------------------


class Writer:
    """Sends rows with COPY over several connections at once, each in a transaction of its
    own, from threads of their own; then, once they have all committed, runs the steps
    that must come after the rows (index builds, updates, the tracking position) in one
    last transaction. A COPY that fails stops the writer: the error is raised by the next
    `copy` or by `finish`. The tables are a rebuild's own, seen by nobody until it switches
    them in, so commits need not wait for the disk (a crash means rebuilding again).

    `prepare` (making the tables) runs first, in a transaction of its own on the first
    writer connection, while the caller already folds rows: none is sent before it has
    committed. It returns the index builds to run once every row is in (at the same time,
    over the writer's connections) and the constraints to make of the built indexes then
    (first in the last transaction)."""

    def __init__(self, datastore: PostgresDatastore, connections: int = 2, *,
                 prepare: Preparation | None = None) -> None:
        self.datastore = datastore
        self._chunks: queue.Queue[Step | None] = queue.Queue(maxsize=8)
        self._builds: list[Composed] = []
        self._constraints: list[Composed] = []
        self._after: list[Step] = []
        self._error: BaseException | None = None
        self._commit = False
        self._prepare = prepare
        self._prepared = threading.Event()
        if prepare is None:
            self._prepared.set()
        self._threads = [threading.Thread(target=self._run, args=(n,), name=f"bulk-writer-{n}", daemon=True)
                         for n in range(connections)]
        for thread in self._threads:
            thread.start()

    def copy(self, table: Composed, columns: Sequence[str], data: bytes) -> None:
        self._raise_error()
        statement = SQL("COPY {} ({}) FROM STDIN").format(table, SQL(", ").join(map(Identifier, columns)))

        def copy_rows(curs: Cursor[Any]) -> None:
            with curs.copy(statement) as copy:
                copy.write(data)

        self._chunks.put(copy_rows)

    def after(self, step: Step) -> None:
        """Run `step` once every row is in and the indexes are built, in the order given."""
        self._after.append(step)

    def finish(self) -> None:
        """Commit the rows, build the indexes, then run the steps that come after them
        (raises what failed)."""
        self._commit = True
        self._stop()
        self._raise_error()
        with ThreadPoolExecutor(max_workers=len(self._threads), thread_name_prefix="bulk-index") as builders:
            for built in [builders.submit(self._run_alone, statement) for statement in self._builds]:
                built.result()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("; ").join([SQL("SET LOCAL synchronous_commit TO off"), *self._constraints]),
                         prepare=False)
            for step in self._after:
                step(curs)

    def _run_alone(self, statement: Composed) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("SET LOCAL synchronous_commit TO off; {}").format(statement), prepare=False)

    def abort(self) -> None:
        """Roll back, once the rows already given have been sent."""
        self._commit = False
        self._stop()

    def _stop(self) -> None:
        for _ in self._threads:
            self._chunks.put(None)
        for thread in self._threads:
            thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self, n: int) -> None:
        stopped = False
        try:
            with self.datastore.get_connection() as conn:
                if n == 0 and self._prepare is not None:
                    try:
                        with conn.transaction(), conn.cursor() as curs:
                            builds, constraints = self._prepare(curs)
                        self._builds.extend(builds)
                        self._constraints.extend(constraints)
                    except BaseException as error:
                        self._error = error  # before the other writers are woken
                        raise
                    finally:
                        self._prepared.set()
                else:
                    self._prepared.wait()
                self._raise_error()  # the tables were not made
                with conn.transaction(), conn.cursor() as curs:
                    curs.execute("SET LOCAL synchronous_commit TO off")
                    while (step := self._chunks.get()) is not None:
                        step(curs)
                    stopped = True
                    if not self._commit or self._error is not None:
                        raise psycopg.Rollback()
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self._error = error
            if not stopped:
                while self._chunks.get() is not None:  # unblock the producer until it stops
                    pass


class TableRows:
    """Rows of one table in COPY's text format, sent to the writer a chunk at a time."""

    def __init__(self, writer: Writer, table: Composed, columns: Sequence[str]) -> None:
        self.writer, self.table, self.columns = writer, table, tuple(columns)
        self._lines: list[bytes] = []
        self._size = 0

    def add(self, line: bytes) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= COPY_CHUNK:
            self.flush()

    def add_encoded(self, rows: Sequence[Any], encode: Callable[[Sequence[Any]], list[bytes]]) -> None:
        """Add `rows` encoded as lines by `encode`, a slice at a time, so that each chunk
        goes to the writer as soon as it is full rather than after every row is encoded."""
        for start in range(0, len(rows), ENCODE_SLICE):
            for line in encode(rows[start:start + ENCODE_SLICE]):
                self.add(line)

    def flush(self) -> None:
        if self._lines:
            self.writer.copy(self.table, self.columns, b"".join(self._lines))
            self._lines, self._size = [], 0


# -- a view's bulk load ---------------------------------------------------------------------


class BulkLoad(ABC):
    """Folds a view's events, in log order, into the rows of its (empty) tables."""

    def __init__(self, view: BatchingView, writer: Writer, *, memory_budget: int = MEMORY_BUDGET,
                 other_views: PostgresDatastore | None = None) -> None:
        self.view = view
        self.writer = writer
        # Where the tables of other views are read from (the live ones, through their own
        # datastore: the load's connections are all the writer's).
        self.other_views = other_views or view.datastore
        self.memory_budget = memory_budget
        self.held = 0  # bytes of rows held back, not yet final

    def rows(self, table: str, columns: Sequence[str]) -> TableRows:
        return TableRows(self.writer, self.view.table(table), columns)

    @abstractmethod
    def fold(self, events: Sequence[Any]) -> None:
        """Fold a batch of events (in log order) into the rows held, writing those that are
        final; spill when more than the memory budget is held."""

    @abstractmethod
    def spill(self) -> None:
        """Write the rows held back as they are now; later changes to them become updates."""

    @abstractmethod
    def finish(self) -> None:
        """Write everything still held, and whatever must come after all the rows."""


def bulk_load(load: BulkLoad, events: Iterable[tuple[list[Any], int]], *, application_name: str, until: int,
              progress: Progress | None = None) -> int:
    """Fold `events` (batches of the log's events up to notification `until`, each with the
    position of its last notification, from `read_events`) into the load's view, whose
    tables are empty (or are being made by the writer's `prepare`); record `until` as the
    view's position. Calls `progress(position, until)` after each batch. Returns how many
    events were folded."""
    folded = 0
    try:
        with gc_paused():
            for batch, position in events:
                load.fold(batch)
                folded += len(batch)
                del batch
                if progress is not None:
                    progress(position, until)
            load.finish()
        if until:
            load.writer.after(lambda curs: load.view._insert_tracking(curs, Tracking(application_name, until)))
        load.writer.finish()
    except BaseException:
        load.writer.abort()
        raise
    return folded


def read_events(app: Application[UUID], topics: Sequence[str], until: int) -> ReadAhead[tuple[list[Any], int]]:
    """The log's events with the topics up to notification `until`, decoded, a batch at a
    time with the position of its last notification, each batch read while the one before
    is folded. Reading starts at once."""
    return ReadAhead(_batches(app, topics, until))


def _batches(app: Application[UUID], topics: Sequence[str], until: int) -> Iterator[tuple[list[Any], int]]:
    """The events of the notifications after 0 up to `until` with the topics, decoded, a
    batch at a time (batches sized as the follower sizes its reads)."""
    position, limit = 0, FIRST_READ
    while position < until:
        notifications = app.recorder.select_notifications(
            start=position, limit=limit, stop=until, topics=topics, inclusive_of_start=False)
        if not notifications:
            return
        limit = next_read_limit(limit, sum(len(n.state) for n in notifications), READ_MOST)
        position = notifications[-1].id
        events = [app.mapper.to_domain_event(n) for n in notifications]
        del notifications
        yield events, position
