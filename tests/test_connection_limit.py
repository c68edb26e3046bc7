"""A deployment on a PostgreSQL that accepts 30 connections (issue 16): a role limited to 30
connections owns the schema; 2 API processes and 3 workers, each with a small pool, start
and complete runs started through both APIs, and none of them is refused."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
from conftest import TEST_ADMIN_KEY
from psycopg.sql import SQL, Identifier
from waiting import wait_until
from worker_process import running, start_deployment, start_echo_runs

from evalledger.adapters import database
from evalledger.settings import Settings

LIMIT = 30


@pytest.fixture
def limited(database_url: str) -> Iterator[Settings]:
    """Settings for a role of CONNECTION LIMIT 30 (superusers are not subject to limits)
    that owns a schema of its own; both dropped afterwards."""
    role, schema = f"limited_{uuid4().hex[:8]}", f"t_{uuid4().hex[:12]}"
    admin = database.parse_database_url(database_url)
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        conn.execute(SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT {}").format(Identifier(role), LIMIT))
        conn.execute(SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(Identifier(schema), Identifier(role)))
        name = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        conn.execute(SQL("GRANT CREATE ON DATABASE {} TO {}").format(Identifier(name), Identifier(role)))
    url = database_url.replace("://postgres@", f"://{role}@", 1)
    assert url != database_url, database_url
    yield Settings(database_url=url, schema=schema, admin_key=TEST_ADMIN_KEY, rate_limit="off")
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))
        conn.execute(SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(Identifier(name), Identifier(role)))
        conn.execute(SQL("DROP ROLE {}").format(Identifier(role)))


def connections_of(database_url: str, role: str) -> int:
    with psycopg.connect(database.parse_database_url(database_url).conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role,)).fetchone()
    return int(row[0]) if row else 0


def test_two_apis_and_three_workers_complete_runs_within_30_connections(
        limited: Settings, database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "calls.log"
    log.touch()
    role = limited.database_url.split("://", 1)[1].split("@", 1)[0]  # type: ignore[union-attr]
    # Pools of at most 2: an API process holds at most 3 connections, a worker 2 + its queue's
    # LISTEN and pool + one per run it executes chunks of (README, "Deployment").
    env = {"WORKERS_APP_LOG": str(log), "WORKERS_APP_SECONDS": "0.005", "EVALLEDGER_CHUNK_ITEMS": "50",
           "EVALLEDGER_POOL_SIZE": "2"}
    apis, workers = start_deployment(limited, "workers_app", env, apis=2, workers=3, concurrency=2)
    highest = 0
    with running(*apis, *workers):
        clients = [api.client() for api in apis]
        run_ids = start_echo_runs(clients, runs=4, items=200, name="limited", max_concurrency=4)

        def all_completed() -> bool:
            nonlocal highest
            highest = max(highest, connections_of(database_url, role))
            return all(clients[n % 2].get_run(run_id).status == "completed" for n, run_id in enumerate(run_ids))

        wait_until(all_completed, "every run to complete", 120)
        for n, run_id in enumerate(run_ids):
            run = clients[n % 2].get_run(run_id)
            assert (run.succeeded_count, run.failed_count) == (200, 0)
        assert all(process.process.poll() is None for process in (*apis, *workers))
    pids = {line.split()[0] for line in log.read_text().splitlines()}
    print(f"at most {highest} connections of the role seen; calls made by {len(pids)} workers")
    assert len(pids) >= 2, pids
    assert 0 < highest <= LIMIT
