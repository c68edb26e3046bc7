"""Rebuilding a read model from the event log, beside the live one, then switching over.

1. The view's tables are created afresh in a shadow schema (by the bulk writer, while the
   first events are read and folded) and the log, up to its head when the rebuild
   starts, is bulk loaded into them (bulk.py: the events are folded in memory into the
   rows they leave and those are sent with COPY),
   while the live tables keep answering reads. Secondary indexes are built after the
   load, not maintained during it. Events written meanwhile are then applied by the
   view's live path (the same fold), in batches, as a follower applies them.
2. Holding the follower's lock (no catch-up in this process) the shadow catches up with
   the head of the log, then one transaction — holding the view's advisory lock, so no
   other process applies events meanwhile — drops the live tables and moves the shadow
   ones into their place, tracking table included.
3. The follower forgets its position and catches up from the new tables' position.
Events a follower in another process applied to the old tables after the shadow's last
catch-up are simply applied again to the new ones: their tracking position says so.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.sql import SQL, Composed, Identifier

from evalledger.domain.errors import ConflictError
from evalledger.projections.bulk import MEMORY_BUDGET, BulkLoad, Progress, Writer, bulk_load, read_events
from evalledger.projections.datasets import DatasetsView
from evalledger.projections.datasets_bulk import DatasetsBulkLoad
from evalledger.projections.follower import ProjectionFollower, quick_thread_switches
from evalledger.projections.runs import RunsView
from evalledger.projections.runs_bulk import RunsBulkLoad
from evalledger.projections.status import RebuildReport, RebuildState
from evalledger.projections.view import BatchingView

log = logging.getLogger(__name__)

REBUILD_BATCH = 2000
# Seconds to wait for PostgreSQL to accept the connection holding a rebuild's lock.
LOCK_CONNECT_TIMEOUT = 10
BULK_LOADS: dict[type, type[BulkLoad]] = {DatasetsView: DatasetsBulkLoad, RunsView: RunsBulkLoad}


def _drop_indexes(curs: Cursor[Any], schema: str, tables: Sequence[str]) -> tuple[list[Composed], list[Composed]]:
    """Drop the indexes of the shadow's read-model tables, primary keys included. Returns
    the statements that build them again once the rows are in (building an index once,
    from all the rows, is cheaper than maintaining it row by row; the builds can run at the
    same time) and those that then make primary keys of the unique indexes built for them."""
    curs.execute(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition,"
        " c.conname AS constraint_name, t.relname AS table_name"
        " FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype = 'p'"
        " WHERE n.nspname = %s AND t.relname = ANY(%s) ORDER BY i.indisprimary DESC, name",
        (schema, list(tables)),
    )
    drops, builds, constraints = [], [], []
    for row in curs.fetchall():
        table = SQL("{}.{}").format(Identifier(schema), Identifier(row["table_name"]))
        if row["constraint_name"] is not None:
            name = Identifier(row["constraint_name"])
            drops.append(SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, name))
            constraints.append(SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}").format(
                table, name, name))
        else:
            drops.append(SQL("DROP INDEX {}").format(SQL(row["name"])))
        builds.append(SQL(row["definition"]))
    if drops:
        curs.execute(SQL("; ").join(drops), prepare=False)
    return builds, constraints


def rebuild(follower: ProjectionFollower, conninfo_params: Any, *, memory_budget: int = MEMORY_BUDGET,
            progress: Progress | None = None) -> RebuildReport:
    """Rebuild the follower's view beside the live one and switch over; returns what was
    done. `progress(position, head)`
    is told how far through the log the bulk load has come, after each batch."""
    with only_rebuild_of(follower.view, conninfo_params), quick_thread_switches():
        return _rebuild(follower, conninfo_params, memory_budget, progress)


class Rebuilds:
    """The service's rebuilds, one read model at a time each: run while the caller waits,
    or in a thread of their own (`start`), with how far each has come and how the last
    one ended, for `GET /api/projections`."""

    def __init__(self, conninfo_params: Any) -> None:
        self.conninfo_params = conninfo_params
        self._lock = threading.Lock()
        self._latest: dict[str, RebuildState] = {}  # projection -> its latest rebuild

    def run(self, follower: ProjectionFollower) -> RebuildReport:
        """Rebuild now, in this thread; returns the report."""
        guard = ExitStack()
        guard.enter_context(only_rebuild_of(follower.view, self.conninfo_params))
        return self._run(follower, guard, self._begin(follower))

    def start(self, follower: ProjectionFollower) -> RebuildState:
        """Start a rebuild in a thread of its own and return its state at once; refused
        (RebuildRunningError) while another rebuild of the same read model runs, here or
        in another process."""
        guard = ExitStack()
        # Taken here, so a refusal is the caller's.
        guard.enter_context(only_rebuild_of(follower.view, self.conninfo_params))
        try:
            state = self._begin(follower)
            threading.Thread(target=self._run_in_background, args=(follower, guard, state),
                             name=f"rebuild-{follower.name}", daemon=True).start()
        except BaseException:
            guard.close()
            raise
        with self._lock:
            return replace(state, projection=follower.name)

    def latest(self, name: str) -> RebuildState | None:
        with self._lock:
            state = self._latest.get(name)
            return None if state is None else replace(state)

    def _begin(self, follower: ProjectionFollower) -> RebuildState:
        state = RebuildState(state="running", started_at=datetime.now(UTC), position=0, head=None, finished_at=None,
                             report=None, error=None)
        with self._lock:
            self._latest[follower.name] = state
        return state

    def _run(self, follower: ProjectionFollower, guard: ExitStack, state: RebuildState) -> RebuildReport:
        """Rebuild, keeping `state` up to date; what fails is recorded, then raised."""
        def progress(position: int, head: int) -> None:
            with self._lock:
                state.position, state.head = position, head

        try:
            with guard, quick_thread_switches():
                report = _rebuild(follower, self.conninfo_params, MEMORY_BUDGET, progress)
        except BaseException as error:
            with self._lock:
                state.state, state.error = "failed", f"{type(error).__name__}: {error}"
                state.finished_at = datetime.now(UTC)
            raise
        with self._lock:
            state.state, state.report, state.position, state.head = "done", report, report.position, report.position
            state.finished_at = datetime.now(UTC)
        return report

    def _run_in_background(self, follower: ProjectionFollower, guard: ExitStack, state: RebuildState) -> None:
        try:
            self._run(follower, guard, state)
        except Exception:  # noqa: BLE001 - recorded in the state GET /api/projections shows
            log.exception("rebuild of %s failed", follower.name)


class RebuildRunningError(ConflictError):
    """Another rebuild of the same read model is under way (409): the two would share one
    shadow schema."""

    problem_type = "rebuild-running"


@contextmanager
def only_rebuild_of(view: BatchingView, conninfo_params: Any) -> Iterator[None]:
    """Hold a session-level advisory lock for the view's rebuild, on a connection of its own
    to PostgreSQL itself (not a pooled one: behind PgBouncer in transaction mode a session
    lock would stay on a server connection other clients borrow) for as long as it runs (a
    crash of this process releases it with the session), or refuse at once."""
    key = zlib.crc32(f"rebuild {view.schema}.{view.tracking_table_name}".encode()) - 2**31
    with psycopg.connect(conninfo_params.conninfo, autocommit=True, connect_timeout=LOCK_CONNECT_TIMEOUT) as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:  # type: ignore[index]
            raise RebuildRunningError(f"the {view.tracking_table_name.removesuffix('_projection_tracking')} "
                                      "read model is being rebuilt already; try again when that is done")
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _rebuild(follower: ProjectionFollower, conninfo_params: Any, memory_budget: int,
             progress: Progress | None) -> RebuildReport:
    live = follower.view
    schema = live.schema
    shadow_schema = f"{schema}_rebuild"[:63]
    tables = [*live.read_model_tables, live.tracking_table_name]
    started = time.perf_counter()
    shadow_store = PostgresDatastore(
        dbname=conninfo_params.dbname, host=conninfo_params.host, port=conninfo_params.port,
        user=conninfo_params.user, password=conninfo_params.password, pool_size=2, schema=shadow_schema,
    )
    try:
        # Fail here, having made nothing, when the server gives no connection (the API
        # answers 503): later, the cleanup below would wait for one a second time.
        with shadow_store.get_connection():
            pass
    except BaseException:
        shadow_store.close()
        raise
    head = follower.app.recorder.max_notification_id() or 0
    reading = read_events(follower.app, follower.topics, head)
    try:
        shadow = type(live)(shadow_store, tracking_table_name=live.tracking_table_name, other_views_schema=schema)

        def make_tables(curs: Cursor[Any]) -> tuple[list[Composed], list[Composed]]:
            # Run by the writer while the first events are read and folded, so in few
            # round trips: each answer waits for the GIL, which the folding thread holds.
            # The shadow is nobody's until it is switched in. The tables are made by the
            # library's own code, given its statements as one, so the tracking table gets
            # its migration row as the library would give it.
            statements = list(shadow.sql_create_statements)
            shadow.sql_create_statements[:] = [SQL("; ").join([
                SQL("SET LOCAL synchronous_commit TO off"),
                SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(shadow_schema)),
                SQL("CREATE SCHEMA {}").format(Identifier(shadow_schema)),
                *(statement for statement in statements
                  if "CREATE TYPE" not in statement.as_string()),  # which the library skips
            ])]
            try:
                shadow._create_table(curs)
            finally:  # a later create_table() must not drop the schema
                shadow.sql_create_statements[:] = statements
            return _drop_indexes(curs, shadow_schema, live.read_model_tables)

        writer = Writer(shadow_store, prepare=make_tables)
        loaded = bulk_load(BULK_LOADS[type(live)](shadow, writer, memory_budget=memory_budget,
                                                  other_views=live.datastore),
                           reading, application_name=follower.app.name, until=head, progress=progress)
        replay = ProjectionFollower(name=f"{follower.name}-rebuild", app=follower.app, view=shadow,
                                    topics=follower.topics, conninfo=follower.conninfo, batch_size=REBUILD_BATCH)
        with follower.paused():
            position = replay.catch_up()
            with shadow_store.transaction(commit=True) as curs:  # one round trip
                curs.execute(SQL("; ").join([
                    SQL("SELECT pg_advisory_xact_lock({})").format(live.advisory_key),
                    *(SQL("DROP TABLE IF EXISTS {}.{}; ALTER TABLE {}.{} SET SCHEMA {}").format(
                        Identifier(schema), Identifier(table), Identifier(shadow_schema), Identifier(table),
                        Identifier(schema)) for table in tables),
                ]), prepare=False)
            follower.forget_position()
        seconds = time.perf_counter() - started
    finally:
        reading.close()
        with shadow_store.transaction(commit=True) as curs:
            curs.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(shadow_schema)))
        shadow_store.close()
    events = loaded + replay.applied
    return RebuildReport(projection=follower.name, position=position, events=events, seconds=round(seconds, 3),
                         events_per_second=round(events / seconds) if seconds else None)
