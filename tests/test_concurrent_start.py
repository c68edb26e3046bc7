"""Several processes started at the same instant on a database whose schema does not exist
yet, each creating the tables (EVALLEDGER_CREATE_TABLES=y, the default): all come up.
Table creation is serialised across processes, so they do not fail on each other's
catalog changes ("tuple concurrently updated", a duplicate schema)."""

from __future__ import annotations

import subprocess
import time

import httpx
import psycopg
from conftest import free_port
from psycopg.sql import SQL, Identifier
from worker_process import Process, environment
from service_process import COMMAND

from evalledger.adapters import database
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
