"""When PostgreSQL refuses new connections (here: the service's role is at its CONNECTION
LIMIT, its pooled connections already open).

A run that cannot start is not left pending in silence: the failure is logged, the run
shows why it waits (`statusReason`, also through the Python client), and it starts and
completes by itself once connections are accepted again. A rebuild, which needs
connections of its own, answers 503 with Retry-After, and works once they are accepted."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from conftest import TEST_ADMIN_KEY, Service, running_service
from waiting import wait_until
from psycopg.sql import SQL, Identifier, Literal

from evalledger.adapters import database
from evalledger.execution.registry import registry
from evalledger.settings import Settings


@registry.target(name="start-failures-echo", kind="agent")
def echo(input: Any, context: Any) -> Any:
    return input


@pytest.fixture
def limited_role(database_url: str) -> Iterator[tuple[str, Settings]]:
    """A login role of its own owning a schema of its own, and settings that use both."""
    admin = database.parse_database_url(database_url)
    role, password, schema = f"el_{uuid4().hex[:10]}", uuid4().hex, f"t_{uuid4().hex[:12]}"
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        conn.execute(SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(Identifier(role), Literal(password)))
        conn.execute(SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(Identifier(schema), Identifier(role)))
        # The service creates its schema "if not exists", which needs the right to create one.
        conn.execute(SQL("GRANT CREATE ON DATABASE {} TO {}").format(Identifier(admin.dbname), Identifier(role)))
    url = dataclasses.replace(admin, user=role, password=password).url
    try:
        yield role, Settings(database_url=url, schema=schema, admin_key=TEST_ADMIN_KEY)
    finally:
        with psycopg.connect(admin.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))
            conn.execute(SQL("DROP OWNED BY {}").format(Identifier(role)))
            conn.execute(SQL("DROP ROLE {}").format(Identifier(role)))


def set_connection_limit(database_url: str, role: str, limit: int) -> None:
    with psycopg.connect(database.parse_database_url(database_url).conninfo, autocommit=True) as conn:
        conn.execute(SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(Identifier(role), Literal(limit)))


def warmed_up(service: Service) -> None:
    """Every pooled connection is open, so that only new ones are refused once the role's
    limit is set."""
    for app in (service.ledger.datasets, service.ledger.runs):
        app.factory.datastore.pool.wait(timeout=30)


def test_a_run_refused_a_connection_says_why_and_completes_once_connections_are_accepted(
    database_url: str, limited_role: tuple[str, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    role, settings = limited_role
    caplog.set_level(logging.WARNING, logger="evalledger.execution.scheduler")
    with running_service(settings) as service:
        ledger = service.ledger
        ledger.scheduler.max_pause = 0.5  # so the run goes on soon after the cause is gone
        warmed_up(service)
        client = service.client
        dataset = client.create_dataset("refused")
        client.add_items(dataset.id, [{"input": {"n": n}, "expectedOutput": {"n": n}} for n in range(5)])

        set_connection_limit(database_url, role, 0)
        try:
            run = client.create_run(dataset.id, target={"type": "registered", "name": "start-failures-echo"},
                                    scorers=[{"name": "exact-match"}])
            waiting = wait_until(lambda: client.get_run(run.id).status_reason, "the run shows why it waits", 20)
            assert "too many connections" in waiting.reason, waiting
            wait_until(lambda: (client.get_run(run.id).status_reason or waiting).attempts > 1, "a second attempt", 20)
            answer = client.request("GET", f"/api/datasets/runs/{run.id}")
            assert answer["status"] == "pending"
            assert {"reason", "attempts", "since", "nextAttemptAt"} <= set(answer["statusReason"])
            logged = [r for r in caplog.records if str(run.id) in r.getMessage()]
            assert logged and "too many connections" in logged[0].getMessage()
        finally:
            set_connection_limit(database_url, role, -1)

        done = wait_until(lambda: (r := client.get_run(run.id)).status == "completed" and r, "the run completes", 30)
        assert (done.succeeded_count, done.failed_count, done.pending_count) == (5, 0, 0)
        assert done.status_reason is None


def test_a_rebuild_refused_connections_answers_503_with_retry_after(
    database_url: str, limited_role: tuple[str, Settings]
) -> None:
    role, settings = limited_role
    with running_service(settings) as service:
        warmed_up(service)
        client = service.client
        dataset = client.create_dataset("rebuilt later")
        client.add_items(dataset.id, [{"input": n} for n in range(5)])
        set_connection_limit(database_url, role, 0)
        try:
            started = time.monotonic()
            refused = client.http.post("/api/projections/datasets/rebuild")
            took = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.headers["retry-after"].isdigit()
            assert refused.json()["type"].endswith("/database-unavailable")
            assert client.get_dataset(dataset.id).item_count == 5  # the service goes on meanwhile
        finally:
            set_connection_limit(database_url, role, -1)
        rebuilt = client.http.post("/api/projections/datasets/rebuild")  # not left locked by the refused one
        assert rebuilt.status_code == 200, rebuilt.text
        assert client.get_dataset(dataset.id).item_count == 5
        print(f"refused after {took:.1f} s")
