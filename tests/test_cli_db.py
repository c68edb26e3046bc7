"""`evalledger db status` and `db stop`: exactly the embedded PostgreSQL of one data
directory, found through its postmaster.pid, and nothing else."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
import service_process
from cli_runner import evalledger
from test_cli import cli_env, stop_embedded

from evalledger.adapters import database


@pytest.fixture
def data_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="eldb", dir="/tmp"))
    try:
        yield base / "pg"
    finally:
        stop_embedded(base / "pg")
        shutil.rmtree(base, ignore_errors=True)


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def test_db_stop_stops_the_embedded_server_of_its_data_dir_only(data_dir: Path, database_url: str) -> None:
    env = cli_env(EVALLEDGER_DATA_DIR=str(data_dir))
    assert evalledger("db", "status", env=env).returncode == 3  # nothing there yet

    migrated = evalledger("migrate", env=env, timeout=120)  # starts the embedded server, which stays up
    assert migrated.returncode == 0, migrated.stderr
    pid = postmaster_pid(data_dir)

    status = evalledger("db", "status", env=env)
    assert status.returncode == 0 and f"pid {pid}" in status.stdout and "running" in status.stdout

    stopped = evalledger("db", "stop", env=env)
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stderr, stopped.stderr
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (data_dir / "postmaster.pid").exists()
    with psycopg.connect(database.parse_database_url(database_url).conninfo) as conn:  # the tests' own server
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert evalledger("db", "status", env=env).returncode == 3
    again = evalledger("db", "stop", env=env)
    assert again.returncode == 0 and "no embedded PostgreSQL is running" in again.stderr


def test_db_stop_refuses_while_a_service_uses_it_unless_forced(data_dir: Path) -> None:
    env = cli_env(EVALLEDGER_DATA_DIR=str(data_dir))
    service = service_process.start(base_env=env, cwd=data_dir.parent, timeout=120)
    try:
        pid = postmaster_pid(data_dir)
        refused = evalledger("db", "stop", env=env)
        assert refused.returncode == 1 and str(service.pid) in refused.stderr and "--force" in refused.stderr
        assert psutil.pid_exists(pid)
        forced = evalledger("db", "stop", "--force", env=env)
        assert forced.returncode == 0, forced.stderr
        assert not (data_dir / "postmaster.pid").exists()
    finally:
        service.stop()


def test_a_stale_pid_file_names_no_server_and_its_process_is_left_alone(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    # The pid of a process that is not that directory's PostgreSQL: this test's own.
    (data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{data_dir}\n0\n5432\n{data_dir}\n\n0 0\nready\n")
    env = cli_env(EVALLEDGER_DATA_DIR=str(data_dir))
    assert evalledger("db", "status", env=env).returncode == 3
    stopped = evalledger("db", "stop", env=env)
    assert stopped.returncode == 0 and "no embedded PostgreSQL is running" in stopped.stderr
    assert psutil.pid_exists(os.getpid())
