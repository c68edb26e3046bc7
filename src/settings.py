"""Settings read from the environment, in one place.

Every entry point (the HTTP service, the CLI, the tests, the benchmark) builds a
`Settings` and hands it to `bootstrap.build_ledger`, so they all run the same wiring.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _list_env(name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in os.environ.get(name, "").split(",") if part.strip())


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
    # Connection pool size for reads and projections.
    pool_size: int = 8
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
            http_allowlist=_list_env("EVALLEDGER_HTTP_ALLOWLIST"),
            app_modules=_list_env("EVALLEDGER_APP"),
            admin_key=_admin_key_env(),
            key_file=default_key_file(),
            rate_limit=os.environ.get("EVALLEDGER_RATE_LIMIT") or "100/second",
            failed_auth_limit=os.environ.get("EVALLEDGER_FAILED_AUTH_LIMIT") or "50/second;1000/minute",
            trace_url=os.environ.get("EVALLEDGER_TRACE_URL") or None,
        )
