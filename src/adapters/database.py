"""Where the PostgreSQL server comes from: `DATABASE_URL`, or an embedded one.

The embedded server is a real PostgreSQL 16 shipped inside the `pgserver` package. It
listens on a Unix socket inside its data directory only (no TCP port), and is left
running when the process exits so that a restart (or a crash) finds it again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

import psycopg

log = logging.getLogger(__name__)


class DatabaseUnavailableError(RuntimeError):
    """The service cannot reach or start a PostgreSQL server."""


@dataclass(frozen=True)
class ConnectionParams:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @property
    def conninfo(self) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
        )

    @property
    def url(self) -> str:
        """As a DATABASE_URL (a Unix socket directory goes in the `host` query parameter)."""
        auth = quote(self.user, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        if self.host.startswith("/"):
            return f"postgresql://{auth}@/{self.dbname}?host={quote(self.host, safe='')}&port={self.port}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment eventsourcing's PostgreSQL factory reads."""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_DBNAME": self.dbname,
        }

    def describe(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def parse_database_url(url: str) -> ConnectionParams:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise DatabaseUnavailableError(
            f"DATABASE_URL must start with postgresql://, got {parsed.scheme or url!r}"
        )
    query = parse_qs(parsed.query)
    host = parsed.hostname or query.get("host", ["127.0.0.1"])[0]
    return ConnectionParams(
        host=unquote(host),
        port=parsed.port or int(query.get("port", ["5432"])[0]),
        user=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password or ""),
        dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
    )


def ensure_runtime_dir() -> None:
    """pgserver keeps a lock file in the user's runtime directory; headless machines often
    have none set."""
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = Path(tempfile.gettempdir()) / f"evalledger-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def start_embedded(data_dir: Path) -> ConnectionParams:
    """Start (or find running) the embedded PostgreSQL whose data lives in `data_dir`."""
    data_dir = data_dir.expanduser().absolute()
    # The server's socket file lives in data_dir: Unix socket paths are capped near
    # 107 bytes, and ".s.PGSQL.5432" takes 14 of them.
    if len(str(data_dir)) > 90:
        raise DatabaseUnavailableError(
            f"The embedded database directory path is too long for a Unix socket "
            f"({len(str(data_dir))} characters): {data_dir}. Set EVALLEDGER_DATA_DIR to a "
            f"shorter path, or set DATABASE_URL to use a PostgreSQL server."
        )
    ensure_runtime_dir()
    try:
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir, cleanup_mode=None)
        uri = server.get_uri()
    except Exception as error:  # noqa: BLE001 - any failure here means the same to the user
        raise DatabaseUnavailableError(
            f"The embedded PostgreSQL (pgserver) could not start in {data_dir}: {error}. "
            f"Point the service at a PostgreSQL server instead, for example "
            f"DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres"
        ) from error
    params = parse_database_url(uri)
    log.info("embedded PostgreSQL running in %s", data_dir)
    return params


def resolve(database_url: str | None, embedded_data_dir: Path) -> ConnectionParams:
    params = (
        parse_database_url(database_url)
        if database_url
        else start_embedded(embedded_data_dir)
    )
    try:
        with psycopg.connect(params.conninfo, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        raise DatabaseUnavailableError(
            f"Cannot connect to PostgreSQL at {params.describe()}: {error}".strip()
        ) from error
    return params


@dataclass(frozen=True)
class EmbeddedServer:
    """The embedded PostgreSQL running on a data directory, as its postmaster.pid records it."""

    data_dir: Path
    pid: int
    started_at: datetime
    socket_dir: str
    users: list[int]  # live processes holding the server (evalledger services started on it)


def embedded_server(data_dir: Path) -> EmbeddedServer | None:
    """The server on `data_dir` if one runs: the pid in its postmaster.pid must be a live
    `postgres` process started on this very directory (a stale file whose pid was reused by
    another process is not it)."""
    import psutil

    data_dir = data_dir.expanduser().absolute()
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        process = psutil.Process(pid)
        ours = process.name() == "postgres" and str(data_dir.resolve()) in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if not ours:
        return None
    started = datetime.fromtimestamp(int(lines[2]), UTC) if len(lines) > 2 and lines[2].isdigit() else None
    return EmbeddedServer(
        data_dir=data_dir,
        pid=pid,
        started_at=started or datetime.fromtimestamp(process.create_time(), UTC),
        socket_dir=lines[4] if len(lines) > 4 else "",
        users=_embedded_users(data_dir),
    )


def _embedded_users(data_dir: Path) -> list[int]:
    """pgserver lists the processes that opened the server in `.handle_pids.json`; those
    still alive (other than this one) are using it."""
    import psutil

    try:
        pids = json.loads((data_dir / ".handle_pids.json").read_text())
    except (OSError, ValueError):
        return []
    return sorted(pid for pid in pids if isinstance(pid, int) and pid != os.getpid() and psutil.pid_exists(pid))


def stop_embedded(data_dir: Path, *, timeout: float = 30.0) -> EmbeddedServer | None:
    """Stop exactly the embedded server of `data_dir` (PostgreSQL's fast shutdown: open
    transactions roll back, nothing committed is lost) and wait until it has gone. Returns
    the server it stopped, or None when none was running. TimeoutError if it is still up."""
    import psutil

    server = embedded_server(data_dir)
    if server is None:
        return None
    try:
        process = psutil.Process(server.pid)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        raise TimeoutError(f"the embedded PostgreSQL (pid {server.pid}) did not stop within {timeout:g} s") from None
    return server
