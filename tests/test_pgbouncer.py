"""The service behind PgBouncer in transaction mode: Debian's `pgbouncer`, started here as a
child process on a free port in front of the tests' PostgreSQL, with a server pool smaller
than the clients it serves, so that consecutive transactions of one client connection run
on different server connections. An API process and a worker whose pooled connections go
through it (EVALLEDGER_PGBOUNCER=transaction), and whose LISTEN and session advisory locks go
to PostgreSQL itself (EVALLEDGER_DIRECT_DATABASE_URL), create a dataset, add items, run a run
to completion and read its results. A prepared statement or a session setting on a pooled
connection fails here ("prepared statement ... does not exist", a table not found)."""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from conftest import free_port
from waiting import wait_until
from worker_process import NOTED_ECHO, running, start_serve, start_worker

from evalledger.adapters import database
from evalledger.bootstrap import build_ledger
from evalledger.settings import Settings

PGBOUNCER = os.environ.get("EVALLEDGER_PGBOUNCER_BIN", "/usr/sbin/pgbouncer")
# Server connections PgBouncer opens to PostgreSQL for the service's database: fewer than
# the service's client connections, so they are shared.
SERVER_POOL = 3


@dataclass
class Bouncer:
    process: subprocess.Popen[bytes]
    port: int
    user: str
    dbname: str
    log: Path

    @property
    def url(self) -> str:
        """The pooled connections' DATABASE_URL (PgBouncer trusts its clients; it logs in to
        PostgreSQL with the real credentials)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}"

    def admin(self, command: str) -> list[dict[str, Any]]:
        """A command on PgBouncer's admin console (which speaks the simple query protocol
        only, so a client-side-binding cursor)."""
        with psycopg.connect(host="127.0.0.1", port=self.port, dbname="pgbouncer", user=self.user,
                             autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
            cursor = conn.execute(command)
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _run_as(params: database.ConnectionParams) -> list[str]:
    """PgBouncer refuses to run as root ("PgBouncer should not run as root") unless told a user
    to switch to with `-u` (it reads its configuration first). That user must reach
    PostgreSQL: a Unix socket's directory is readable by its owner (the embedded server's
    runs as `pgserver` under root), a TCP port by anyone."""
    if os.geteuid() != 0:
        return []
    if params.host.startswith("/"):
        return ["-u", pwd.getpwuid(os.stat(params.host).st_uid).pw_name]
    return ["-u", "nobody"]


@contextmanager
def pgbouncer(database_url: str) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of `database_url`'s database, for as long as
    the block runs."""
    if not os.access(PGBOUNCER, os.X_OK):
        pytest.fail(f"PgBouncer is not installed ({PGBOUNCER} is missing): `apt-get install -y pgbouncer` "
                    "(the CI script .ci/run installs it), or set EVALLEDGER_PGBOUNCER_BIN")
    params = database.parse_database_url(database_url)
    folder = Path(tempfile.mkdtemp(prefix="bouncer-"))
    port = free_port()
    server = " ".join(f"{key}='{value}'" for key, value in (
        ("host", params.host), ("port", params.port), ("dbname", params.dbname), ("user", params.user),
        ("password", params.password)) if value != "")
    (folder / "pgbouncer.ini").write_text(f"""\
[databases]
{params.dbname} = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "userlist.txt"}
admin_users = {params.user}
pool_mode = transaction
default_pool_size = {SERVER_POOL}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
; the service's idle_in_transaction_session_timeout, which a pooled connection cannot set
idle_transaction_timeout = 30
; fail, not hang, if clients ever waited on each other for a server connection
query_wait_timeout = 60
""")
    (folder / "userlist.txt").write_text(f'"{params.user}" ""\n')
    log = folder / "pgbouncer.log"
    with log.open("wb") as out:
        process = subprocess.Popen([PGBOUNCER, *_run_as(params), str(folder / "pgbouncer.ini")],
                                   stdout=out, stderr=subprocess.STDOUT)
    bouncer = Bouncer(process, port, params.user, params.dbname, log)
    try:
        def up() -> bool:
            assert process.poll() is None, f"pgbouncer exited: {log.read_text()}"
            try:
                return bool(bouncer.admin("SHOW VERSION"))
            except psycopg.OperationalError:
                return False

        wait_until(up, "pgbouncer to accept connections", 15, interval=0.1)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def transactions(bouncer: Bouncer) -> int:
    """Transactions PgBouncer has passed to the database so far (it lists a database once a
    client has used it)."""
    rows = [row for row in bouncer.admin("SHOW STATS") if row["database"] == bouncer.dbname]
    return int(rows[0]["total_xact_count"]) if rows else 0


def direct_connections(database_url: str, names: set[str], servers: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(application name, last statement) of the processes' connections to PostgreSQL that
    are not PgBouncer's server connections."""
    bouncers = {row["remote_pid"] for row in servers}
    with psycopg.connect(database.parse_database_url(database_url).conninfo) as conn:
        rows = conn.execute("SELECT pid, application_name, query FROM pg_stat_activity"
                            " WHERE application_name = ANY(%s)", (list(names),)).fetchall()
    return sorted((name, query) for pid, name, query in rows if pid not in bouncers)


def test_the_service_runs_behind_pgbouncer_in_transaction_mode(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    log.touch()
    with pgbouncer(settings.database_url or "") as bouncer:
        before = transactions(bouncer)
        api_name, worker_name = f"bouncer-api-{uuid4().hex[:6]}", f"bouncer-worker-{uuid4().hex[:6]}"
        env = {"DATABASE_URL": bouncer.url, "EVALLEDGER_PGBOUNCER": "transaction",
               "EVALLEDGER_DIRECT_DATABASE_URL": settings.database_url or "",
               "WORKERS_APP_LOG": str(log), "EVALLEDGER_CHUNK_ITEMS": "10"}
        api = start_serve(settings, "workers_app", options=["--no-worker"], env={**env, "PGAPPNAME": api_name})
        env["EVALLEDGER_CREATE_TABLES"] = "n"
        worker = start_worker(settings, "workers_app", env={**env, "PGAPPNAME": worker_name})
        with running(api, worker):
            client = api.client()
            dataset = client.create_dataset("behind pgbouncer")
            client.add_items(dataset.id, [{"input": {"n": n}, "expectedOutput": {"n": n}} for n in range(40)])
            for n in range(40, 45):  # one at a time: the same statements, more than five times
                client.add_item(dataset.id, input={"n": n}, expected_output={"n": n})
            assert client.get_dataset(dataset.id).item_count == 45
            run = client.create_run(dataset.id, target=NOTED_ECHO, scorers=["exact-match"], max_concurrency=4)
            finished = wait_until(lambda: (r := client.get_run(run.id)).status == "completed" and r,
                                  "the run to complete", 90, interval=0.2)
            assert (finished.succeeded_count, finished.failed_count) == (45, 0)
            results = list(client.iter_results(run.id))
            assert len(results) == 45
            assert {result.status for result in results} == {"succeeded"}
            # A rebuild holds a session advisory lock and loads through a pool of its own, on
            # PostgreSQL itself; it reads the log through PgBouncer.
            for projection in ("datasets", "runs"):
                assert client.rebuild_projection(projection).events > 0
            assert client.get_dataset(dataset.id).item_count == 45
            assert client.get_run(run.id).succeeded_count == 45
            clients = bouncer.admin("SHOW CLIENTS")
            servers = bouncer.admin("SHOW SERVERS")
            # A rebuild's own connections to PostgreSQL close once it has switched over, which
            # may be a moment after its answer: look again for a few seconds.
            for _ in range(50):
                direct = direct_connections(settings.database_url or "", {api_name, worker_name}, servers)
                if all(query.startswith("LISTEN") or "advisory" in query for _, query in direct):
                    break
                time.sleep(0.1)
            assert worker.process.poll() is None and api.process.poll() is None
        passed = transactions(bouncer) - before

    # The chunks ran in the worker, whose pooled connections went through PgBouncer too.
    assert {int(line.split()[0]) for line in log.read_text().splitlines()} == {worker.pid}
    names = {row["application_name"] for row in clients if row["database"] == bouncer.dbname}
    assert {api_name, worker_name} <= names, names
    ours = [row for row in clients if row["database"] == bouncer.dbname]
    assert len([row for row in servers if row["database"] == bouncer.dbname]) <= SERVER_POOL
    # Each process's LISTEN went to PostgreSQL itself (the projections', procrastinate's), and
    # so did nothing else but the chunks' advisory locks.
    for name in (api_name, worker_name):
        assert any(query.startswith("LISTEN") for each, query in direct if each == name), (name, direct)
    assert all(query.startswith("LISTEN") or "advisory" in query for _, query in direct), direct
    print(f"{passed} transactions through pgbouncer; {len(ours)} client connections on "
          f"{len(servers)} server connections at the end")
    assert passed > 200, passed


def test_transaction_pooling_needs_a_direct_url(settings: Settings) -> None:
    """Without EVALLEDGER_DIRECT_DATABASE_URL, LISTEN and the session advisory locks would go
    through PgBouncer and silently misbehave, so the service refuses to start."""
    with pytest.raises(database.DatabaseUnavailableError, match="EVALLEDGER_DIRECT_DATABASE_URL"):
        build_ledger(dataclasses.replace(settings, transaction_pooling=True))
