"""Several processes started at the same instant on a database whose schema does not exist
yet, each creating the tables (EVALLEDGER_CREATE_TABLES=y, the default): all come up.
Table creation is serialised across processes, so they do not fail on each other's
catalog changes ("tuple concurrently updated", a duplicate schema)."""

from __future__ import annotations

import subprocess
import threading
import time

import httpx
import psycopg
from conftest import built_ledger, free_port
from psycopg.sql import SQL, Identifier
from worker_process import Process, environment
from service_process import COMMAND
from waiting import wait_until

from evalledger.adapters import database
from evalledger.bootstrap import Ledger
from evalledger.settings import Settings


def live_workers(database_url: str, schema: str) -> int:
    """Workers that have registered with the queue (so got past building their ledger)."""
    with psycopg.connect(database.parse_database_url(database_url).conninfo) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"{schema}.procrastinate_workers",)).fetchone()
        if not exists or exists[0] is None:
            return 0
        [count] = conn.execute(SQL("SELECT count(*) FROM {}.procrastinate_workers").format(
            Identifier(schema))).fetchone()  # type: ignore[misc]
    return int(count)


def answers(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_processes_starting_together_on_a_fresh_schema_all_come_up(database_url: str, settings: Settings) -> None:
    env = environment(settings, {"EVALLEDGER_CREATE_TABLES": "y"})
    apis = [Process(subprocess.Popen([*COMMAND, "serve", "--no-worker", "--port", str(port), "--log-level", "warning"],
                                     env=env), f"http://127.0.0.1:{port}") for port in (free_port(), free_port())]
    workers = [Process(subprocess.Popen([*COMMAND, "worker", "--log-level", "warning"], env=env)) for _ in range(3)]
    processes = [*apis, *workers]
    try:
        deadline = time.monotonic() + 90
        while not (all(answers(api.url) for api in apis) and live_workers(database_url, settings.schema) == 3):  # type: ignore[arg-type]
            exited = [(p.pid, p.process.returncode) for p in processes if p.process.poll() is not None]
            assert not exited, f"processes exited while starting together: {exited}"
            assert time.monotonic() < deadline, "not every process came up"
            time.sleep(0.1)
        assert all(p.process.poll() is None for p in processes)
    finally:
        for process in processes:
            process.stop()


def test_a_process_starting_beside_a_busy_one_waits_for_no_more_than_one_table(ledger: Ledger,
                                                                               settings: Settings) -> None:
    """A process that starts (creating tables, the default) while another holds a transaction
    over two read-model tables neither deadlocks with it nor stalls it: the starting process
    takes one table's lock at a time, so the busy transaction, which touches a table the
    start went past, goes on and commits, and then the start completes. (With every creation
    statement in one transaction, the start held the first table's lock while waiting for the
    second, and PostgreSQL killed one side as a deadlock.)"""
    schema = Identifier(settings.schema)
    conninfo = database.parse_database_url(settings.database_url or "").conninfo
    with psycopg.connect(conninfo) as busy:
        # A writer's transaction holds the results table (created after the runs table).
        busy.execute(SQL("UPDATE {}.run_results SET seq = seq").format(schema))
        started: dict[str, object] = {}

        def start() -> None:
            try:
                with built_ledger(settings, create_tables=True):
                    started["ok"] = True
            except Exception as error:  # noqa: BLE001 - reported below
                started["error"] = error

        thread = threading.Thread(target=start)
        thread.start()
        with psycopg.connect(conninfo, autocommit=True) as watcher:
            wait_until(lambda: watcher.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE NOT l.granted AND c.relname = 'run_results'").fetchone()[0] > 0,  # type: ignore[index]
                "the start to wait for the results table", timeout=60)
        # The busy transaction now touches a table the start has gone past; this must not
        # wait for the start (nor be killed as a deadlock).
        busy.execute("SET LOCAL lock_timeout = '5s'")
        busy.execute(SQL("UPDATE {}.runs SET status = status").format(schema))
        busy.commit()
        thread.join(timeout=60)
    assert started == {"ok": True}, started
