"""Where the PostgreSQL server comes from: `DATABASE_URL`, or an embedded one.

The embedded server is a real PostgreSQL 16 shipped inside the `pgserver` package. It
listens on a Unix socket inside its data directory only (no TCP port), and is left
running when the process exits so that a restart (or a crash) finds it again.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
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
