"""Settings read from the environment, in one place.

Every entry point (the HTTP service, the CLI, the tests, the benchmark) builds a
`Settings` and hands it to `bootstrap.build_ledger`, so they all run the same wiring.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

N = TypeVar("N", int, float)


def _number_env(name: str, default: N, kind: Callable[[str], N], what: str) -> N:
    """The variable read as `kind`, `default` when it is unset or empty; a value that is
    not one stops the process with a message."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"{name} must be {what}, got {raw!r}") from None


def _int_env(name: str, default: int) -> int:
    return _number_env(name, default, int, "an integer")


def _float_env(name: str, default: float) -> float:
    return _number_env(name, default, float, "a number")


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.lower() not in ("n", "no", "0", "false", "off")


def _list_env(name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in os.environ.get(name, "").split(",") if part.strip())


def _pgbouncer_env() -> bool:
    """EVALLEDGER_PGBOUNCER: `transaction` when DATABASE_URL is a PgBouncer in transaction
    mode; empty or `off` otherwise (session mode needs nothing special)."""
    raw = os.environ.get("EVALLEDGER_PGBOUNCER", "").strip().lower()
    if raw in ("", "off", "no", "n", "0", "false", "session"):
        return False
    if raw == "transaction":
        return True
    raise SystemExit(f"EVALLEDGER_PGBOUNCER must be `transaction` or `off`, got {raw!r}")


def default_key_file() -> Path:
    """Where the first start's admin key lives: EVALLEDGER_KEY_FILE, else `admin.key` beside
    the embedded database's folder (EVALLEDGER_DATA_DIR; by default `.evalledger/`)."""
    if os.environ.get("EVALLEDGER_KEY_FILE"):
        return Path(os.environ["EVALLEDGER_KEY_FILE"])
    data_dir = os.environ.get("EVALLEDGER_DATA_DIR")
    return (Path(data_dir).parent if data_dir else Path(".evalledger")) / "admin.key"


def _admin_key_env() -> str | None:
    key = os.environ.get("EVALLEDGER_ADMIN_KEY") or None
    if key is not None and len(key) < 32:
        raise SystemExit("EVALLEDGER_ADMIN_KEY must be at least 32 characters (e.g. `openssl rand -base64 32`)")
    return key


@dataclass(frozen=True)
class Settings:
    # A libpq URL (postgresql://user:pass@host:port/db). None: start the embedded server.
    database_url: str | None = None
    # Where the embedded PostgreSQL keeps its data. Keep it short: the server's Unix
    # socket lives in it and socket paths are limited to about 100 characters.
    embedded_data_dir: Path = field(default_factory=lambda: Path(".evalledger/pg"))
    # PostgreSQL schema that holds every table (events, tracking and read models).
    schema: str = "public"
    # Create missing tables on start. Set it off where several processes start together
    # and run `evalledger migrate` once instead.
    create_tables: bool = True
    # Largest accepted request body, in bytes (413 above it).
    max_body_bytes: int = 32 * 1024 * 1024
    # Largest file an import accepts, in bytes.
    max_import_bytes: int = 1024**3
    # Largest page a list endpoint serves.
    max_per_page: int = 1000
    # Largest batch of items in one command.
    max_batch_items: int = 10_000
    # The connection budget of a process (see README, "Deployment"). The pooled connections
    # (commands, reads, projections) are one pool per process: at most `pool_size`, of
    # which `pool_min` stay open while the process is idle; one above that closes after
    # `pool_max_idle` seconds unused.
    pool_size: int = 8
    pool_min: int = 1
    pool_max_idle: float = 10.0
    # Behind PgBouncer in transaction mode (EVALLEDGER_PGBOUNCER=transaction), `database_url`
    # is PgBouncer's: the pooled connections then prepare no statement and keep no session
    # state. What needs a session of its own (LISTEN, session advisory locks, a rebuild)
    # connects to `direct_database_url` (EVALLEDGER_DIRECT_DATABASE_URL), PostgreSQL itself;
    # without PgBouncer it defaults to `database_url`.
    transaction_pooling: bool = False
    direct_database_url: str | None = None
    # Seconds to wait for PostgreSQL to accept a connection (or for a free pooled one)
    # before failing with an error that says so, instead of hanging.
    connect_timeout: float = 10.0
    # `evalledger serve` runs a worker in the same process (off: an API-only node).
    run_worker: bool = True
    # Chunk jobs a worker executes at once, and the most connections its job queue pool
    # opens (besides one for LISTEN).
    worker_concurrency: int = 4
    worker_pool_size: int = 1
    # Items per chunk job (0: chosen from the run's size, see execution/chunks.py).
    chunk_items: int = 0
    # A worker whose heartbeat is older than this many seconds is taken for dead, and its
    # chunks are handed to live workers.
    worker_stalled_seconds: float = 10.0
    # URL prefixes HTTP and OpenAI-compatible targets and judges may call.
    http_allowlist: tuple[str, ...] = ()
    # Python modules whose @target / @scorer functions are registered at start.
    app_modules: tuple[str, ...] = ()
    # Resume unfinished runs (with a target) when the service starts.
    resume_runs: bool = True
    # The instance admin key (EVALLEDGER_ADMIN_KEY, at least 32 characters). Without it, the
    # first start issues one and writes it to `key_file`.
    admin_key: str | None = field(default=None, repr=False)
    # Where the first start's instance admin key is written (owner-only), and where the
    # client and CLI on this machine look for it.
    key_file: Path = field(default_factory=lambda: Path(".evalledger/admin.key"))
    # Requests per key and process (`limits` notation, e.g. "100/second;5000/minute"; "off").
    rate_limit: str = "100/second"
    # Requests carrying a wrong key, per client address and process ("off" to turn it off).
    failed_auth_limit: str = "50/second;1000/minute"
    # Makes a result's trace and span ids a link: `{traceId}` and `{spanId}` are replaced
    # (e.g. https://jaeger.example.com/trace/{traceId}); see execution/tracing.py.
    trace_url: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        url = os.environ.get("DATABASE_URL") or None
        data_dir = os.environ.get("EVALLEDGER_DATA_DIR")
        return cls(
            database_url=url,
            embedded_data_dir=Path(data_dir) if data_dir else Path(".evalledger/pg"),
            schema=os.environ.get("EVALLEDGER_SCHEMA", "public"),
            create_tables=os.environ.get("EVALLEDGER_CREATE_TABLES", "y").lower()
            not in ("n", "no", "0", "false", "off"),
            max_body_bytes=_int_env("EVALLEDGER_MAX_BODY_BYTES", 32 * 1024 * 1024),
            max_import_bytes=_int_env("EVALLEDGER_MAX_IMPORT_BYTES", 1024**3),
            max_per_page=_int_env("EVALLEDGER_MAX_PER_PAGE", 1000),
            max_batch_items=_int_env("EVALLEDGER_MAX_BATCH_ITEMS", 10_000),
            pool_size=_int_env("EVALLEDGER_POOL_SIZE", 8),
            pool_min=_int_env("EVALLEDGER_POOL_MIN", 1),
            pool_max_idle=_float_env("EVALLEDGER_POOL_MAX_IDLE", 10.0),
            connect_timeout=_float_env("EVALLEDGER_CONNECT_TIMEOUT", 10.0),
            transaction_pooling=_pgbouncer_env(),
            direct_database_url=os.environ.get("EVALLEDGER_DIRECT_DATABASE_URL") or None,
            run_worker=_bool_env("EVALLEDGER_WORKER", True),
            worker_concurrency=_int_env("EVALLEDGER_WORKER_CONCURRENCY", 4),
            worker_pool_size=_int_env("EVALLEDGER_WORKER_POOL_SIZE", 1),
            chunk_items=_int_env("EVALLEDGER_CHUNK_ITEMS", 0),
            worker_stalled_seconds=_float_env("EVALLEDGER_WORKER_STALLED_SECONDS", 10.0),
            http_allowlist=_list_env("EVALLEDGER_HTTP_ALLOWLIST"),
            app_modules=_list_env("EVALLEDGER_APP"),
            admin_key=_admin_key_env(),
            key_file=default_key_file(),
            rate_limit=os.environ.get("EVALLEDGER_RATE_LIMIT") or "100/second",
            failed_auth_limit=os.environ.get("EVALLEDGER_FAILED_AUTH_LIMIT") or "50/second;1000/minute",
            trace_url=os.environ.get("EVALLEDGER_TRACE_URL") or None,
        )
