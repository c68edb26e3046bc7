"""The composition root: settings -> database -> event store and applications ->
projections -> runs execution -> the `Ledger` every entry point (HTTP, CLI, tests,
benchmark) uses."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING

import orjson
import psycopg
from psycopg.sql import SQL, Identifier
from psycopg.types.json import set_json_dumps, set_json_loads

from evalledger import connections
from evalledger.adapters import database, persistence
from evalledger.analysis.comparison import RunComparer
from evalledger.service_layer.applications import Datasets, Runs, Written
from evalledger.projections.rebuild import Rebuilds
from evalledger.projections.dataset_queries import DatasetQueries
from evalledger.projections.datasets import DATASET_TOPICS, DatasetsView
from evalledger.projections.follower import FollowingThread, ProjectionFollower
from evalledger.projections.run_queries import RunQueries
from evalledger.projections.runs import RUNS_VIEW_TOPICS, RunsView
from evalledger.service_layer.access import AccessStore, AccessUseCases
from evalledger.service_layer.datasets import DatasetUseCases
from evalledger.settings import Settings

if TYPE_CHECKING:
    from evalledger.execution.registry import Registry
    from evalledger.execution.scheduler import RunScheduler
    from evalledger.execution.service import RunService
    from evalledger.service_layer.operations import Operations
    from evalledger.service_layer.runs import RunUseCases
    from evalledger.service_layer.scope import Scope

log = logging.getLogger(__name__)

set_json_loads(orjson.loads)
set_json_dumps(orjson.dumps)


@dataclass
class Ledger:
    settings: Settings
    connection: database.ConnectionParams  # the pooled connections' (PgBouncer's, if any)
    datasets: Datasets
    runs: Runs
    dataset_queries: DatasetQueries
    run_queries: RunQueries
    registry: Registry
    scheduler: RunScheduler
    run_service: RunService
    comparer: RunComparer
    access: AccessUseCases
    rebuilds: Rebuilds  # the service's rebuilds of the read models
    followers: list[ProjectionFollower] = field(default_factory=list)
    following: FollowingThread | None = None  # keeps the followers up in the background
    # PostgreSQL itself, for the connections that need a session of their own (LISTEN,
    # session advisory locks); None: the same as `connection` (no PgBouncer in front).
    direct: database.ConnectionParams | None = None

    @property
    def session_connection(self) -> database.ConnectionParams:
        return self.direct or self.connection

    @cached_property
    def dataset_use_cases(self) -> DatasetUseCases:
        return DatasetUseCases(self.datasets, self.dataset_queries, self.read_your_writes)

    @cached_property
    def run_use_cases(self) -> RunUseCases:
        from evalledger.service_layer.runs import RunUseCases

        return RunUseCases(self.run_service, self.comparer)

    @cached_property
    def scope(self) -> Scope:
        from evalledger.service_layer.scope import Scope

        return Scope(self.dataset_queries, self.run_queries)

    @cached_property
    def operations(self) -> Operations:
        from evalledger.service_layer.operations import Operations

        return Operations(self)

    def read_your_writes(self, written: Written) -> None:
        catch_up_with(self.followers, written)

    def start(self) -> None:
        """Catch the read models up, follow the log, and resume unfinished runs."""
        secret = self.access.first_start_key(self.settings.key_file) if self.settings.create_tables else None
        if secret is not None:
            print(f"\nNo API key existed, so an instance admin key was made. It is shown this once:\n\n"
                  f"    {secret}\n\nIt is also in {self.settings.key_file} (readable by you only), where the "
                  "evalledger client and CLI on this machine find it.\n", flush=True)
        for follower in self.followers:
            follower.catch_up()
        self.following = FollowingThread(self.followers, self.session_connection.conninfo,
                                         connect_timeout=self.settings.connect_timeout)
        self.following.start()
        self.scheduler.start()
        if self.settings.run_worker:
            self.scheduler.start_worker()
        if self.settings.resume_runs:
            resumed = self.scheduler.resume_unfinished()
            if resumed:
                log.info("resuming %d unfinished run(s)", len(resumed))

    def start_worker(self) -> None:
        """A worker process: take chunks from the queue; no projections in the background
        (its own writes still reach the read models before they count as done)."""
        self.scheduler.start_worker()

    def close(self) -> None:
        self.scheduler.stop()
        self.scheduler.queue.close()
        if self.following is not None:
            self.following.stop()
        for app in (self.runs, self.datasets, self.access.store):
            app.close()
            app.factory.close()


# The advisory lock that table creation holds, the same for every schema of a database
# (schemas share the catalogs whose rows concurrent creation trips over).
CREATE_TABLES_LOCK = zlib.crc32(b"evalledger.create-tables") - 2**31


@contextmanager
def _creating_tables(params: database.ConnectionParams, settings: Settings) -> Iterator[None]:
    """Hold the table-creation lock (on a connection of its own, for the block's
    duration) and make sure the schema exists. Waiting for it is bounded: a minute."""
    with psycopg.connect(params.conninfo, autocommit=True,
                         connect_timeout=max(1, round(settings.connect_timeout))) as conn:
        conn.execute("SET lock_timeout = '60s'")
        conn.execute("SELECT pg_advisory_lock(%s)", (CREATE_TABLES_LOCK,))
        try:
            if settings.schema != "public":
                conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(settings.schema)))
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (CREATE_TABLES_LOCK,))


def catch_up_with(followers: list[ProjectionFollower], written: Written) -> None:
    """Bring every projection that handles the write's events up to it before its answer
    goes out (read-your-writes)."""
    if written.notification_id is None:
        return
    topics = {recording.notification.topic for recording in written.recordings}
    for follower in followers:
        if not topics.intersection(follower.topics):
            continue
        try:
            follower.catch_up(until=written.notification_id, recordings=written.recordings)
        except Exception:  # noqa: BLE001 - the write is durable; the follower retries
            log.exception("projection %s could not catch up with a write", follower.name)


def _direct_url(settings: Settings) -> str | None:
    """Where the session-level connections go (see `connections`): with PgBouncer in
    transaction mode, EVALLEDGER_DIRECT_DATABASE_URL, which must then be set (LISTEN and
    session advisory locks through it would silently misbehave)."""
    if settings.transaction_pooling and not (settings.database_url and settings.direct_database_url):
        raise database.DatabaseUnavailableError(
            "EVALLEDGER_PGBOUNCER=transaction needs DATABASE_URL (PgBouncer's) and EVALLEDGER_DIRECT_DATABASE_URL "
            "(PostgreSQL's own, for LISTEN and session advisory locks, which transaction pooling cannot carry)")
    return settings.direct_database_url


def build_ledger(settings: Settings, *, create_tables: bool | None = None,
                 registry: Registry | None = None) -> Ledger:
    """Wire everything from `settings`; `registry` holds the users' targets and scorers
    (default: the one the `@target`/`@scorer` decorators fill), and the modules the settings
    name are loaded into it. Nothing runs in the background until `Ledger.start()`."""
    from evalledger.execution import registry as registries
    from evalledger.execution.jobs import JobQueue
    from evalledger.execution.scheduler import RunScheduler
    from evalledger.execution.service import RunService

    if registry is None:
        registry = registries.registry
    for module in settings.app_modules:
        registry.load(module)
    registry.load_entry_points()

    direct_url = _direct_url(settings)
    params = database.resolve(settings.database_url, settings.embedded_data_dir)
    direct = database.resolve(direct_url, settings.embedded_data_dir) if direct_url else params
    create = settings.create_tables if create_tables is None else create_tables
    env = {
        **params.eventsourcing_env(),
        "POSTGRES_SCHEMA": settings.schema,
        "CREATE_TABLE": "y" if create else "n",
        **connections.pool_env(settings),
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": persistence.RECORDER_TOPIC,
        "PERSISTENCE_MODULE": persistence.FACTORY_TOPIC,
        connections.TRANSACTION_POOLING: "y" if settings.transaction_pooling else "n",
    }
    # Processes that start together with CREATE_TABLES create the tables one at a time (the
    # others then find them there), or PostgreSQL fails some of them on each other's
    # catalog changes ("tuple concurrently updated", a duplicate type).
    with _creating_tables(direct, settings) if create else nullcontext():
        datasets = Datasets(env={**env, "CREATE_TABLE": "n"})
        datastore = datasets.factory.datastore
        connections.tune_pool(datastore.pool, settings)
        if create:
            datasets.recorder.create_table()
        # One events table, so one pool: Runs uses the datastore of Datasets.
        runs = Runs(env={**env, "CREATE_TABLE": "n"}, item_keys=datasets.item_keys)
        connections.share_datastore(runs, datastore)
        if create:
            datasets.item_keys.create_table()
        datasets_view = DatasetsView(datastore, tracking_table_name="datasets_projection_tracking")
        runs_view = RunsView(datastore, tracking_table_name="runs_projection_tracking")
        queue = JobQueue(params.conninfo, settings.schema, connect_timeout=settings.connect_timeout,
                         pool_size=settings.worker_pool_size, max_idle=settings.pool_max_idle,
                         listen_conninfo=direct.conninfo, transaction_pooling=settings.transaction_pooling)
        if create:
            datasets_view.create_table()
            runs_view.create_table()
            queue.create_tables()
        followers = [
            ProjectionFollower(
                name="datasets", app=datasets, view=datasets_view, topics=DATASET_TOPICS, conninfo=direct.conninfo
            ),
            ProjectionFollower(name="runs", app=runs, view=runs_view, topics=RUNS_VIEW_TOPICS, conninfo=direct.conninfo),
        ]
        # Access events have a table of their own, on the same pool.
        access_store = AccessStore(env={**env, "CREATE_TABLE": "n"})
        connections.share_datastore(access_store, datastore)
        access = AccessUseCases(store=access_store, conninfo=direct.conninfo, schema=settings.schema,
                                admin_key=settings.admin_key)
        if create:
            access_store.recorder.create_table()
            access.create_tables()
    dataset_queries = DatasetQueries(datastore)
    run_queries = RunQueries(datastore)
    run_queries.trace_url = settings.trace_url

    read_your_writes = partial(catch_up_with, followers)
    scheduler = RunScheduler(
        runs=runs,
        run_queries=run_queries,
        dataset_queries=dataset_queries,
        registry=registry,
        http_allowlist=settings.http_allowlist,
        conninfo=direct.conninfo,  # the chunks' session advisory locks
        on_written=read_your_writes,
        queue=queue,
        run_worker=settings.run_worker,
        worker_concurrency=settings.worker_concurrency,
        chunk_items=settings.chunk_items,
        stalled_seconds=settings.worker_stalled_seconds,
        connect_timeout=settings.connect_timeout,
    )
    run_service = RunService(
        runs=runs,
        run_queries=run_queries,
        dataset_queries=dataset_queries,
        scheduler=scheduler,
        registry=registry,
        http_allowlist=list(settings.http_allowlist),
        read_your_writes=read_your_writes,
    )
    return Ledger(
        settings=settings,
        connection=params,
        datasets=datasets,
        runs=runs,
        dataset_queries=dataset_queries,
        run_queries=run_queries,
        registry=registry,
        scheduler=scheduler,
        run_service=run_service,
        comparer=RunComparer(run_queries, dataset_queries),
        access=access,
        followers=followers,
        rebuilds=Rebuilds(direct),
        direct=direct if direct is not params else None,
    )
