"""Test fixtures: a real PostgreSQL (DATABASE_URL, else an embedded one), and the real
service over HTTP (uvicorn on a local port) in a schema of its own per test."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
import uvicorn
from psycopg.sql import SQL, Identifier

from evalledger import Client
from evalledger.adapters import database
from evalledger.api.app import create_app
from evalledger.bootstrap import Ledger, build_ledger
from evalledger.settings import Settings

# Every service the tests start takes this instance admin key (EVALLEDGER_ADMIN_KEY, also for
# services in child processes), and every client sends it (EVALLEDGER_API_KEY: the Python
# client, the CLI). Tests of keys and projects make keys of their own with it.
TEST_ADMIN_KEY = "test-admin-key-" + "0123456789abcdef" * 2
AUTH = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}
os.environ["EVALLEDGER_ADMIN_KEY"] = TEST_ADMIN_KEY
os.environ["EVALLEDGER_API_KEY"] = TEST_ADMIN_KEY
os.environ["EVALLEDGER_RATE_LIMIT"] = "off"
os.environ["EVALLEDGER_FAILED_AUTH_LIMIT"] = "off"


def acting_for(person: str) -> str:
    """The actor the audit trail records for a change the test admin key makes with
    `X-Actor: person`: the key first, the person only as whom it acted for."""
    return f"admin (key env) on behalf of {person}"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    database.ensure_runtime_dir()
    import pgserver

    data_dir = Path(tempfile.mkdtemp(prefix="elt", dir="/tmp")) / "pg"
    server = pgserver.get_server(data_dir, cleanup_mode="delete")
    yield database.parse_database_url(server.get_uri()).url
    server.cleanup()
    shutil.rmtree(data_dir.parent, ignore_errors=True)


def random_parts(log: list[Any], rng: random.Random, longest: int = 7) -> Iterator[list[Any]]:
    """The log cut into consecutive parts of 1 to `longest` events, as live catch-up meets it."""
    position = 0
    while position < len(log):
        part = log[position:position + rng.randint(1, longest)]
        position += len(part)
        yield part


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """uvicorn serving an app on a free local port, in a thread of this process."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Service:
    settings: Settings
    ledger: Ledger
    url: str
    client: Client

    def new_client(self, **kwargs: object) -> Client:
        return Client(self.url, **kwargs)  # type: ignore[arg-type]


def fresh_settings(database_url: str, **overrides: object) -> Settings:
    fields = {"admin_key": TEST_ADMIN_KEY, "rate_limit": "off", "failed_auth_limit": "off", **overrides}
    return Settings(database_url=database_url, schema=f"t_{uuid4().hex[:12]}", **fields)  # type: ignore[arg-type]


def drop_schema(database_url: str, schema: str) -> None:
    params = database.parse_database_url(database_url)
    with psycopg.connect(params.conninfo, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


@pytest.fixture
def settings(database_url: str) -> Iterator[Settings]:
    """Settings for a schema of this test's own, dropped afterwards."""
    settings = fresh_settings(database_url)
    yield settings
    drop_schema(database_url, settings.schema)


@contextmanager
def built_ledger(settings: Settings, **options: Any) -> Iterator[Ledger]:
    """The ledger wired on `settings` (see build_ledger for `options`), not started: nothing
    follows the log in the background. Closed when the block ends."""
    ledger = build_ledger(settings, **options)
    try:
        yield ledger
    finally:
        ledger.close()


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    """A ledger in this process, not started (see built_ledger)."""
    with built_ledger(settings) as ledger:
        yield ledger


@contextmanager
def running_service(settings: Settings) -> Iterator[Service]:
    """The service on `settings`, over HTTP on a local port, for as long as the block runs."""
    with built_ledger(settings) as ledger:
        ledger.start()
        server = ServerThread(create_app(ledger))
        server.start()
        client = Client(server.url)
        try:
            yield Service(settings=settings, ledger=ledger, url=server.url, client=client)
        finally:
            client.close()
            server.stop()


def with_settings(settings: Settings, **changes: object) -> Settings:
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    with running_service(settings) as running:
        yield running


# -- the browser (web UI tests) ----------------------------------------------------------------

CHROMIUM = os.environ.get("EVALLEDGER_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, object]) -> dict[str, object]:
    """pytest-playwright launches Debian's Chromium (Playwright's own browser download is not
    reachable), headless, with nothing that calls out to the network."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, object]) -> dict[str, object]:
    # Pages need a key too: the browser sends the test admin key, as an API client would. (Signing
    # in with a key, the session cookie and its CSRF token have tests of their own.)
    return {**browser_context_args, "viewport": {"width": 1360, "height": 860}, "extra_http_headers": AUTH}


def screenshot(page: object, name: str) -> Path:
    """Save what the page shows now under tests/screenshots/ (git-ignored), to look at."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
