"""The composition root: settings -> database -> event store and applications ->
projections -> the `Ledger` every entry point (HTTP, CLI, tests, benchmark) uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson
import psycopg
from psycopg.sql import SQL, Identifier
from psycopg.types.json import set_json_dumps, set_json_loads

from evalledger import database, persistence
from evalledger.domain.applications import Datasets, Written
from evalledger.projections.dataset_queries import DatasetQueries
from evalledger.projections.datasets import DATASET_TOPICS, DatasetsView
from evalledger.projections.follower import ProjectionFollower
from evalledger.settings import Settings

log = logging.getLogger(__name__)

set_json_loads(orjson.loads)
set_json_dumps(orjson.dumps)


@dataclass
class Ledger:
    settings: Settings
    connection: database.ConnectionParams
    datasets: Datasets
    dataset_queries: DatasetQueries
    followers: list[ProjectionFollower] = field(default_factory=list)

    def read_your_writes(self, written: Written) -> None:
        """Bring every projection up to the write before its answer goes out."""
        if written.notification_id is None:
            return
        for follower in self.followers:
            try:
                follower.catch_up(until=written.notification_id, recordings=written.recordings)
            except Exception:  # noqa: BLE001 - the write is durable; the follower retries
                log.exception("projection %s could not catch up with a write", follower.name)

    def start(self) -> None:
        for follower in self.followers:
            follower.catch_up()
            follower.start()

    def close(self) -> None:
        for follower in self.followers:
            follower.stop()
        self.datasets.close()
        self.datasets.factory.close()


def _ensure_schema(params: database.ConnectionParams, schema: str) -> None:
    with psycopg.connect(params.conninfo, autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))


def build_ledger(settings: Settings, *, create_tables: bool | None = None) -> Ledger:
    """Wire everything. Nothing runs in the background until `Ledger.start()`."""
    params = database.resolve(settings.database_url, settings.embedded_data_dir)
    create = settings.create_tables if create_tables is None else create_tables
    if create and settings.schema != "public":
        _ensure_schema(params, settings.schema)
    env = {
        **params.eventsourcing_env(),
        "POSTGRES_SCHEMA": settings.schema,
        "CREATE_TABLE": "y" if create else "n",
        "POSTGRES_POOL_SIZE": str(settings.pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.pool_size * 2),
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": persistence.RECORDER_TOPIC,
    }
    datasets = Datasets(env=env)
    datastore = datasets.factory.datastore
    view = DatasetsView(datastore, tracking_table_name="datasets_projection_tracking")
    if create:
        view.create_table()
    follower = ProjectionFollower(
        name="datasets",
        app=datasets,
        view=view,
        topics=DATASET_TOPICS,
        conninfo=params.conninfo,
    )
    return Ledger(
        settings=settings,
        connection=params,
        datasets=datasets,
        dataset_queries=DatasetQueries(datastore),
        followers=[follower],
    )
