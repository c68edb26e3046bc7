"""Runs on a PostgreSQL job queue: procrastinate (psycopg 3), in the service's own schema.

A server-side run is split into chunk jobs (`evalledger.run_chunk`: a page of the pinned
version's items, `chunk_items(total)` items each). Any process that runs a worker
(`evalledger worker`, or `evalledger serve` unless `--no-worker`) takes chunks from the
queue; the run's `maxConcurrency` holds across all of them (`slots.py`), and the Run
aggregate keeps exactly one result per (item, repetition), so a chunk executed twice
(its worker died, or two sweeps deferred it) records nothing twice.

Besides procrastinate's own worker, each worker process keeps three loops going:
- stalled chunks: procrastinate's workers send a heartbeat every second; a `doing` job
  whose worker's heartbeat is older than `worker_stalled_seconds` (it died: SIGKILL, power
  loss) is put back to `todo`, and a live worker takes it over;
- the sweep (at start, then every `SWEEP_SECONDS`): every unfinished run with a target
  gets a job for each chunk that has none waiting, running or done (runs from before the
  queue existed, chunks whose worker stopped, a defer that failed); a run whose chunks
  are all done but which is not finished yet is finished;
- cancellation: every `CANCEL_POLL` seconds the runs executing here are looked up, and
  a run cancelled anywhere stops here too.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any
from uuid import UUID

import psycopg
import psycopg_pool
from procrastinate import App, PsycopgConnector, SyncPsycopgConnector, exceptions
from procrastinate.job_context import JobContext
from psycopg.sql import SQL, Identifier

log = logging.getLogger(__name__)

TASK = "evalledger.run_chunk"
QUEUE = "evalledger-runs"
# Chunks: about this many per run, of at least MIN and at most MAX items.
CHUNKS_PER_RUN = 16
MIN_CHUNK_ITEMS = 250
MAX_CHUNK_ITEMS = 500
HEARTBEAT_SECONDS = 1.0
SWEEP_SECONDS = 15.0
STALLED_POLL = 2.0
CANCEL_POLL = 0.2
# Seconds between looks at the queue when no notification came.
FETCH_POLL = 1.0


def chunk_items(total_items: int, configured: int = 0) -> int:
    if configured > 0:
        return configured
    return max(MIN_CHUNK_ITEMS, min(MAX_CHUNK_ITEMS, math.ceil(total_items / CHUNKS_PER_RUN)))


def chunk_count(total_items: int, size: int) -> int:
    return max(1, math.ceil(total_items / size))


ChunkHandler = Callable[[UUID, int, int], Awaitable[None]]


def _search_path(schema: str, *, local: bool = False) -> SQL:
    statement = "SET LOCAL search_path TO {}" if local else "SET search_path TO {}"
    return SQL(statement).format(Identifier(schema))  # type: ignore[return-value]


class _SyncPool(psycopg_pool.NullConnectionPool):
    """For a pool behind PgBouncer in transaction mode: every connection handed out begins
    its transaction with `SET LOCAL search_path`, since procrastinate's statements (and the
    PL/pgSQL functions they call) name its tables without a schema, and a session's setting
    would stay on whichever server connection PgBouncer lent. The pool's connections are not
    autocommit, so the statement opens the transaction procrastinate's query then runs in,
    and the pool commits it when the connection goes back."""

    def __init__(self, *args: Any, search_path: SQL, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.search_path = search_path

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        with super().connection(timeout) as conn:
            conn.execute(self.search_path)
            yield conn


class _AsyncPool(psycopg_pool.AsyncConnectionPool):
    """The worker's pool, as `_SyncPool` is the deferring one."""

    def __init__(self, *args: Any, search_path: SQL, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.search_path = search_path

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with super().connection(timeout) as conn:
            await conn.execute(self.search_path)
            yield conn


class _Connector(PsycopgConnector):
    """procrastinate's connector, whose LISTEN connection (its "standalone" one, kept for as
    long as the worker runs) goes to `listen_conninfo`: PostgreSQL itself when the pool is
    behind PgBouncer in transaction mode, where a LISTEN would stay on a server connection
    other clients borrow and its notifications would never arrive."""

    def __init__(self, *, listen_conninfo: str, listen_kwargs: dict[str, Any], search_path: SQL,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listen_conninfo = listen_conninfo
        self._listen_kwargs = listen_kwargs
        self._search_path = search_path

    @asynccontextmanager
    async def _get_standalone_connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with await psycopg.AsyncConnection.connect(
                self._listen_conninfo, **self._listen_kwargs, autocommit=True) as connection:
            await connection.execute(self._search_path)
            yield connection


class JobQueue:
    """The queue of one schema: deferring chunks (any process), and the worker side.

    `listen_conninfo` (default: `conninfo`) is where the worker's LISTEN connection goes;
    `transaction_pooling`: `conninfo` is PgBouncer in transaction mode (see `_SyncPool`)."""

    def __init__(self, conninfo: str, schema: str, *, connect_timeout: float = 10.0, pool_size: int = 2,
                 max_idle: float = 30.0, listen_conninfo: str | None = None,
                 transaction_pooling: bool = False) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.connect_timeout = max(1, round(connect_timeout))
        search_path = _search_path(schema)

        def configure(conn: psycopg.Connection) -> None:
            conn.execute(search_path)
            conn.commit()

        async def configure_async(conn: psycopg.AsyncConnection) -> None:
            await conn.execute(search_path)
            await conn.commit()

        kwargs: dict[str, Any] = {"connect_timeout": self.connect_timeout}
        listen_kwargs = dict(kwargs)
        sync_pool: Callable[..., psycopg_pool.NullConnectionPool] = psycopg_pool.NullConnectionPool
        async_pool: Callable[..., psycopg_pool.AsyncConnectionPool] = psycopg_pool.AsyncConnectionPool
        pooled: dict[str, Any] = {"configure": configure}
        pooled_async: dict[str, Any] = {"configure": configure_async}
        if transaction_pooling:
            kwargs["prepare_threshold"] = None
            local = _search_path(schema, local=True)
            sync_pool = partial(_SyncPool, search_path=local)
            async_pool = partial(_AsyncPool, search_path=local)
            pooled, pooled_async = {}, {}
        # Deferring (once per run, from any process) opens a connection for the purpose:
        # an idle API process holds none for the queue.
        self._defer_pool = sync_pool(
            conninfo, kwargs=kwargs, min_size=0, max_size=2, timeout=connect_timeout, open=False, **pooled)
        self._defer_opened = threading.Lock()
        self.deferrer = App(connector=SyncPsycopgConnector())
        self.deferrer.connector.open(self._defer_pool)  # type: ignore[attr-defined]
        # The worker's: one connection kept for fetching jobs and heartbeats, one more under
        # load, and procrastinate's LISTEN connection beside them.
        self.app = App(connector=_Connector(
            listen_conninfo=listen_conninfo or conninfo, listen_kwargs=listen_kwargs, search_path=search_path,
            pool_factory=async_pool, conninfo=conninfo, kwargs=kwargs, min_size=1, max_size=max(1, pool_size),
            max_idle=max_idle, timeout=connect_timeout, **pooled_async))
        self.handler: ChunkHandler | None = None

        @self.app.task(name=TASK, queue=QUEUE, pass_context=True)
        async def run_chunk(context: JobContext, run_id: str, chunk: int, size: int) -> None:
            handler = (context.additional_context or {}).get("handler")
            if handler is None:
                raise RuntimeError("this worker has no chunk handler")
            await handler(UUID(run_id), chunk, size)

    # -- schema ------------------------------------------------------------------------------

    def create_tables(self) -> None:
        """Procrastinate's tables and functions in the service's schema, once (idempotent;
        processes that start together wait for each other)."""
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=self.connect_timeout) as conn:
            with conn.transaction():
                conn.execute(_search_path(self.schema, local=True))
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('evalledger-procrastinate-schema'))")
                exists = conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.procrastinate_jobs",)).fetchone()
                if exists and exists[0]:
                    return
                conn.execute(self.app.schema_manager.get_schema())  # type: ignore[arg-type]

    def _table(self, name: str) -> Any:
        return SQL("{}.{}").format(Identifier(self.schema), Identifier(name))

    # -- deferring (blocking) -------------------------------------------------------------------

    def defer_chunks(self, run_id: UUID, chunks: list[int], size: int) -> int:
        """A job for each of `chunks`; one already waiting in the queue is left as it is.
        Returns how many were deferred."""
        with self._defer_opened:
            if self._defer_pool.closed:
                self._defer_pool.open()
        try:  # all at once, on one connection (a fresh run has none in the queue)
            return len(self._batch_defer(run_id, chunks, size))
        except exceptions.AlreadyEnqueued:
            pass
        except exceptions.ConnectorException as error:
            if isinstance(error.__cause__, Exception):
                raise error.__cause__ from None
            raise
        deferred = 0
        for chunk in chunks:
            try:
                self.deferrer.configure_task(
                    name=TASK, queue=QUEUE, queueing_lock=f"{run_id}:{chunk}",
                ).defer(run_id=str(run_id), chunk=chunk, size=size)
                deferred += 1
            except exceptions.AlreadyEnqueued:
                pass
            except exceptions.ConnectorException as error:  # say what the database said
                if isinstance(error.__cause__, Exception):
                    raise error.__cause__ from None
                raise
        return deferred

    def _batch_defer(self, run_id: UUID, chunks: list[int], size: int) -> list[int]:
        from procrastinate import jobs

        manager = self.deferrer.job_manager
        return [job.id for job in manager.batch_defer_jobs([
            jobs.Job(id=None, queue=QUEUE, lock=None, queueing_lock=f"{run_id}:{chunk}", task_name=TASK,
                     task_kwargs={"run_id": str(run_id), "chunk": chunk, "size": size})
            for chunk in chunks]) if job.id is not None]

    def chunk_jobs(self, conn: psycopg.Connection, run_id: UUID) -> list[tuple[int, int, str]]:
        """(chunk, size, status) of every job of the run."""
        rows = conn.execute(SQL(
            "SELECT (args->>'chunk')::int AS chunk, (args->>'size')::int AS size, status::text AS status FROM {} "
            "WHERE task_name = %s AND args->>'run_id' = %s").format(self._table("procrastinate_jobs")),
            (TASK, str(run_id))).fetchall()
        return [(row["chunk"], row["size"], row["status"]) for row in rows]  # type: ignore[call-overload]

    def live_workers(self, conn: psycopg.Connection, stalled_seconds: float) -> int:
        row = conn.execute(SQL(
            "SELECT count(*) AS n FROM {} WHERE last_heartbeat >= now() - make_interval(secs => %s)").format(
            self._table("procrastinate_workers")), (stalled_seconds,)).fetchone()
        return int(row["n"]) if row else 0  # type: ignore[call-overload]

    def close(self) -> None:
        try:
            self._defer_pool.close()
        except Exception:  # noqa: BLE001 - closing goes on
            log.exception("closing the job queue's connections failed")

    # -- the worker side (in an asyncio loop) -----------------------------------------------------

    async def retry_stalled(self, stalled_seconds: float) -> int:
        """Put the chunks of dead workers back in the queue."""
        manager = self.app.job_manager
        stalled = list(await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=stalled_seconds))
        for job in stalled:
            log.warning("chunk job %s (%s) was taken by a worker that stopped sending heartbeats; "
                        "it goes back to the queue", job.id, job.task_kwargs)
            try:
                await manager.retry_job(job)
            except exceptions.ConnectorException:
                log.exception("chunk job %s could not be put back (another worker may have)", job.id)
        if stalled:
            await manager.prune_stalled_workers(stalled_seconds)
        return len(stalled)
