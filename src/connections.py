"""The connection budget of a process: how many PostgreSQL connections it may hold.

A default PostgreSQL accepts 100 connections, and every API process and worker of a
deployment shares them. So a process keeps few open while it is idle and opens more only
under load (see README, "Deployment"):

- one pool for everything synchronous (commands of both applications, read-model
  queries, the projections' catch-up): `EVALLEDGER_POOL_MIN` connections kept open
  (default 1), up to `EVALLEDGER_POOL_SIZE` (default 8) under load, those above the
  minimum closed after `EVALLEDGER_POOL_MAX_IDLE` seconds unused (default 10);
- one LISTEN connection for the projections (API processes);
- a worker's job queue: one LISTEN connection, and a pool of at most
  `EVALLEDGER_WORKER_POOL_SIZE` (default 1) connections;
- while chunks of a run execute, one connection holding their locks (`execution/slots.py`;
  a run's chunks in one process share it, `execution/local_run.py`).

Waiting for a connection is bounded by `EVALLEDGER_CONNECT_TIMEOUT` (default 10 s): past
it the caller gets an error that says so (a 503 over HTTP), never a hang.

Behind PgBouncer in transaction mode (`EVALLEDGER_PGBOUNCER=transaction`), each transaction
of a pooled connection may run on another server connection, so the pooled connections
(the one pool, the job queue's pool and its deferring) prepare no statement and leave no
session state behind: no `SET`, the job queue's `search_path` is `SET LOCAL` in each
transaction, and the library's `idle_in_transaction_session_timeout` is left to PgBouncer's
`idle_transaction_timeout`. The connections that need a session of their own connect to
`EVALLEDGER_DIRECT_DATABASE_URL` instead: the LISTEN connections (projections, job queue),
the connections holding session advisory locks (a run's chunk locks and slots, a rebuild,
the first start's admin key) and a rebuild's own pool.
"""

from __future__ import annotations

from typing import Any

from evalledger.settings import Settings


def pool_env(settings: Settings) -> dict[str, str]:
    """What eventsourcing's PostgreSQL factory reads for its pool, from the settings."""
    most = max(1, settings.pool_size)
    least = max(0, min(settings.pool_min, most))
    return {
        "POSTGRES_POOL_SIZE": str(least),
        "POSTGRES_MAX_OVERFLOW": str(most - least),
        "POSTGRES_CONNECT_TIMEOUT": str(max(1, round(settings.connect_timeout))),
    }


# In an application's environment: its pool is behind PgBouncer in transaction mode
# (read by `adapters.persistence.LedgerFactory`).
TRANSACTION_POOLING = "EVALLEDGER_TRANSACTION_POOLING"


def transaction_pooled(pool: Any) -> None:
    """Make a psycopg pool's connections fit for PgBouncer in transaction mode, before the
    pool opens: they prepare no statement (`prepare_threshold=None` also turns off the
    library's and our `prepare=True`), and they are configured without the library's
    session-level `SET idle_in_transaction_session_timeout`, which would land on whichever
    server connection PgBouncer lent and stay there for its other clients."""
    pool.kwargs = {**(pool.kwargs or {}), "prepare_threshold": None}

    def autocommit(conn: Any) -> None:
        conn.autocommit = True

    pool._configure = autocommit  # noqa: SLF001 - psycopg_pool (pinned) keeps `configure` here


def tune_pool(pool: Any, settings: Settings) -> None:
    """Close connections above the pool's minimum after `pool_max_idle` seconds unused (the
    library leaves psycopg's default of ten minutes). eventsourcing opens its pool while it
    builds the application (to register its types), so the pool's shrinking, scheduled at
    that time every ten minutes, is scheduled here again at the shorter interval."""
    from psycopg_pool.pool import Schedule, ShrinkPool

    pool.max_idle = settings.pool_max_idle
    if not pool.closed:
        pool.run_task(Schedule(pool, ShrinkPool(pool), pool.max_idle))


def share_datastore(app: Any, datastore: Any) -> None:
    """Make `app` (built with CREATE_TABLE off, so it has not touched its own datastore,
    whose pool has therefore never opened) use `datastore`, so that applications that
    share one events table share one pool too, instead of one each."""
    app.factory.datastore = datastore
    app.recorder.datastore = datastore
