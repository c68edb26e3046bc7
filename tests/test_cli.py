"""The `evalledger` command: `migrate` prepares a schema (and can be run again), `serve`
refuses clearly when its database cannot be reached, and with no database configured it
runs on an embedded PostgreSQL whose data outlives the service."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
import service_process
from cli_runner import evalledger
from conftest import built_ledger
from service_process import ServiceProcess

from evalledger.adapters import database
from evalledger.settings import Settings

TABLES = {
    "evalledger_events",
    "evalledger_access_events",
    "api_key_usage",
    "instance_secrets",
    "evalledger_item_keys",
    "datasets_projection_tracking",
    "runs_projection_tracking",
    "datasets",
    "dataset_items",
    "dataset_versions",
    "dataset_tags",
    "runs",
    "run_results",
    "run_result_reviews",
    # the job queue's (procrastinate)
    "procrastinate_jobs",
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_workers",
}
UNREACHABLE = "postgresql://postgres:s3cret-pw@127.0.0.1:1/x"


def cli_env(**variables: str | None) -> dict[str, str]:
    """This process's environment without any database settings, plus `variables`."""
    env = {k: v for k, v in os.environ.items()
           if k != "DATABASE_URL" and not k.startswith(("POSTGRES_", "EVALLEDGER_", "PG"))}
    env.update({k: v for k, v in variables.items() if v is not None})
    return env


def tables_in(settings: Settings) -> set[str]:
    params = database.parse_database_url(settings.database_url or "")
    with psycopg.connect(params.conninfo) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (settings.schema,)
        ).fetchall()
    return {name for (name,) in rows}


# -- migrate --------------------------------------------------------------------------------


def test_migrate_creates_every_table_in_a_fresh_schema_and_can_run_again(settings: Settings) -> None:
    env = cli_env(DATABASE_URL=settings.database_url, EVALLEDGER_SCHEMA=settings.schema)
    assert tables_in(settings) == set()

    first = evalledger("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert settings.schema in first.stderr + first.stdout
    assert tables_in(settings) == TABLES

    # Something is written between two migrations: running it again keeps it.
    with built_ledger(settings, create_tables=False) as ledger:
        dataset_id = ledger.datasets.create_dataset(name="kept").aggregate_id
        for follower in ledger.followers:
            follower.catch_up()

    second = evalledger("migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert tables_in(settings) == TABLES

    with built_ledger(settings, create_tables=False) as ledger:
        assert ledger.datasets.get_dataset(dataset_id).name == "kept"
        assert ledger.dataset_queries.get_dataset(dataset_id).name == "kept"


def test_migrate_takes_the_database_url_as_an_option_too(settings: Settings) -> None:
    env = cli_env(EVALLEDGER_SCHEMA=settings.schema)
    done = evalledger("migrate", "--database-url", settings.database_url or "", env=env)
    assert done.returncode == 0, done.stderr
    assert tables_in(settings) == TABLES


# -- serve, refusing ----------------------------------------------------------------------------


def assert_clear_refusal(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    assert re.search(r"DATABASE_URL|connect", output), output
    assert "s3cret-pw" not in output, "the password is shown"
    return output


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_an_unreachable_database_url_is_refused_at_once_with_a_clear_message(command: str) -> None:
    started = time.monotonic()
    done = evalledger(command, env=cli_env(DATABASE_URL=UNREACHABLE), timeout=30)
    assert time.monotonic() - started < 30
    output = assert_clear_refusal(done)
    assert "127.0.0.1" in output  # it says which server it tried


def test_a_database_url_that_is_not_postgresql_is_refused_by_name() -> None:
    done = evalledger("serve", env=cli_env(DATABASE_URL="mysql://root@127.0.0.1/x"), timeout=30)
    output = assert_clear_refusal(done)
    assert "DATABASE_URL" in output


# -- serve, embedded ----------------------------------------------------------------------------


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short, fresh directory for an embedded PostgreSQL; its server is stopped and the
    directory removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="elc", dir="/tmp"))
    pg = base / "pg"
    try:
        yield pg
    finally:
        stop_embedded(pg)
        shutil.rmtree(base, ignore_errors=True)


def stop_embedded(pg: Path) -> None:
    """Stop the postmaster recorded in the data directory (fast shutdown, then kill)."""
    pid_file = pg / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        postmaster = psutil.Process(pid)
        if str(pg) not in " ".join(postmaster.cmdline()):
            return  # not ours (a stale pid file whose pid was reused)
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(timeout=10)
    except psutil.TimeoutExpired:
        postmaster.kill()
    except psutil.NoSuchProcess:
        pass


def start_embedded_service(data_dir: Path, cwd: Path) -> ServiceProcess:
    """`evalledger serve` with no database configured, its embedded data in `data_dir`."""
    # The first start runs initdb: give it longer.
    return service_process.start(base_env=cli_env(EVALLEDGER_DATA_DIR=str(data_dir)), cwd=cwd, timeout=60)


def test_serve_without_a_database_runs_on_an_embedded_postgresql_whose_data_survives_a_restart(
    data_dir: Path,
) -> None:
    cwd = data_dir.parent
    service = start_embedded_service(data_dir, cwd)
    url = service.url
    try:
        health = httpx.get(url + "/health").json()
        assert health["status"] == "ok"
        assert (data_dir / "PG_VERSION").exists(), "the data is not where EVALLEDGER_DATA_DIR says"
        assert not (cwd / ".evalledger").exists()
        # No key was configured: the first start made an instance admin key, beside the data, owner-only.
        key_file = data_dir.parent / "admin.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        assert httpx.get(url + "/api/datasets").status_code == 401
        with httpx.Client(headers=key, base_url=url) as http:
            created = http.post("/api/datasets", json={"name": "embedded"})
            assert created.status_code == 201
            dataset_id = created.json()["id"]
            added = http.post(f"/api/datasets/{dataset_id}/items", json={"input": {"q": "kept?"}})
            assert added.status_code == 201
            item_id = added.json()["item"]["id"]
    finally:
        service.stop()
    assert service.process.returncode is not None

    service = start_embedded_service(data_dir, cwd)
    url = service.url
    try:
        assert key_file.read_text().strip() == key["Authorization"].split()[1], "a restart keeps the first key"
        with httpx.Client(headers=key, base_url=url) as http:
            dataset = http.get(f"/api/datasets/{dataset_id}")
            assert dataset.status_code == 200, dataset.text
            assert dataset.json()["name"] == "embedded" and dataset.json()["version"] == 1
            item = http.get(f"/api/datasets/{dataset_id}/items/{item_id}")
            assert item.status_code == 200 and item.json()["input"] == {"q": "kept?"}
    finally:
        service.stop()
