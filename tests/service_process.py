"""`evalledger serve` as a child process, for tests that kill it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import free_port

from evalledger.settings import Settings

TESTS = Path(__file__).resolve().parent


def serve(settings: Settings, *apps: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start the service on `settings`' database and schema; returns the process and its URL."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "EVALLEDGER_SCHEMA": settings.schema,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    command = [sys.executable, "-m", "evalledger.cli", "serve", "--port", str(port), "--log-level", "warning"]
    for app in apps:
        command += ["--app", app]
    process = subprocess.Popen(command, env=environment)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the service did not start")
