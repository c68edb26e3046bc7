"""Running the real `evalledger` command in a child process: the one helper tests use."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalledger.settings import Settings

COMMAND = [sys.executable, "-m", "evalledger.cli"]


def database_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) pointed at the settings' database and
    schema, for a CLI command or service process that opens the database itself."""
    return {**(os.environ if base is None else base), "DATABASE_URL": settings.database_url or "",
            "EVALLEDGER_SCHEMA": settings.schema}


def evalledger(*args: str, url: str | None = None, env: Mapping[str, str] | None = None, input: str | None = None,
               timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`evalledger ARGS [--url URL]`, its output captured as text. Its environment is `env`
    (default: this process's), with a wide terminal so tables are not cut."""
    environment = {**(os.environ if env is None else env), "COLUMNS": "200"}
    command = [*COMMAND, *args, *(["--url", url] if url else [])]
    return subprocess.run(command, env=environment, capture_output=True, text=True, input=input, timeout=timeout,
                          cwd=cwd)
