"""The connection budget of a process: an idle API process holds at most 5 PostgreSQL
connections and an idle worker at most 3 (counted in pg_stat_activity by the processes'
application_name), and a process the database refuses connections says so and exits
instead of hanging."""

from __future__ import annotations

import time
from uuid import uuid4

import psycopg
from cli_runner import database_env, evalledger
from test_connections_refused import limited_role, set_connection_limit  # noqa: F401 - a fixture
from waiting import wait_until
from worker_process import running, start_serve, start_worker

from evalledger.adapters import database
from evalledger.settings import Settings

API_BUDGET = 5
WORKER_BUDGET = 3


def connections_of(database_url: str, application_name: str) -> int:
    with psycopg.connect(database.parse_database_url(database_url).conninfo) as conn:
        [count] = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                               (application_name,)).fetchone()  # type: ignore[misc]
    return int(count)


# Idle: nothing asked of the process for longer than its pool keeps an unused connection
# (EVALLEDGER_POOL_MAX_IDLE, 10 s by default; 1 s here, so the test need not wait long).
IDLE = {"EVALLEDGER_POOL_MAX_IDLE": "1"}


def idle_count(database_url: str, name: str, settle: float = 3.0) -> int:
    """The process's connections once it has been idle for `settle` seconds (the most seen
    over the next second, so a connection that comes and goes counts)."""
    time.sleep(settle)
    return max(connections_of(database_url, name) for _ in range(5) if time.sleep(0.2) is None)


def test_an_idle_api_process_holds_at_most_five_connections(database_url: str, settings: Settings) -> None:
    for options, name in (([], "serve"), (["--no-worker"], "serve --no-worker")):
        appname = f"budget-{uuid4().hex[:8]}"
        with running(start_serve(settings, env={"PGAPPNAME": appname, **IDLE}, options=options)) as (service,):
            service.client().create_dataset(f"budget {name}")
            held = idle_count(database_url, appname)
        print(f"{name}: {held} connections when idle")
        assert 0 < held <= API_BUDGET, (name, held)


def test_an_idle_worker_holds_at_most_three_connections(database_url: str, settings: Settings) -> None:
    appname = f"budget-{uuid4().hex[:8]}"
    with running(start_worker(settings, env={"PGAPPNAME": appname, **IDLE})):
        wait_until(lambda: connections_of(database_url, appname) > 0, "the worker to connect")
        held = idle_count(database_url, appname)
    print(f"worker: {held} connections when idle")
    assert 0 < held <= WORKER_BUDGET, held


def test_a_process_refused_connections_exits_saying_why(database_url: str,
                                                       limited_role: tuple[str, Settings]) -> None:  # noqa: F811
    role, settings = limited_role
    set_connection_limit(database_url, role, 0)
    for command in (["serve", "--port", "0"], ["worker"]):
        started = time.monotonic()
        done = evalledger(*command, env=database_env(settings))
        took = time.monotonic() - started
        said = " ".join((done.stdout + done.stderr).split())  # the terminal's line wrapping undone
        assert done.returncode == 2, said
        assert "too many connections" in said and "Traceback" not in said, said
        assert took < 30, took
