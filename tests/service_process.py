"""`evalledger serve` as a child process, for tests that kill it, restart it, or run it
without a configured database. The one way tests start a service process (worker_process.py
adds `evalledger worker` beside it)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cli_runner import COMMAND, database_env
from conftest import free_port

from evalledger import Client
from evalledger.settings import Settings

TESTS = Path(__file__).resolve().parent


def environment(settings: Settings | None, env: Mapping[str, str] | None = None,
                base_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child's environment: `base_env` (default: this process's), then, given `settings`,
    their database and schema, then `env`. This folder is on its PYTHONPATH, so test modules
    can be loaded as apps."""
    environment = dict(os.environ if base_env is None else base_env)
    if settings is not None:
        environment = database_env(settings, environment)
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), environment.get("PYTHONPATH")) if p)
    environment.update(env or {})
    return environment


@dataclass
class ServiceProcess:
    """A child process of the CLI; `url` is where a service answers (None for a worker)."""

    process: subprocess.Popen[bytes]
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> Client:
        assert self.url is not None
        return Client(self.url)

    def sigkill(self) -> None:
        """Kill it at once (no shutdown of any kind), and check it died of that."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if it does not go within `timeout` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(
    settings: Settings | None = None,
    *apps: str,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 30.0,
) -> ServiceProcess:
    """Start `evalledger serve` (with `--app` for each of `apps`, then `options`) on a free
    port and wait until it answers /health; on any failure the process is stopped. Its
    environment: see `environment`."""
    port = free_port()
    command = [*COMMAND, "serve", "--port", str(port), "--log-level", "warning", *options]
    for app in apps:
        command += ["--app", app]
    service = ServiceProcess(subprocess.Popen(command, env=environment(settings, env, base_env), cwd=cwd),
                             f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(f"{service.url}/health", timeout=1).status_code == 200:
                    return service
            except httpx.HTTPError:
                pass
            assert service.process.poll() is None, f"the service exited with {service.process.returncode}"
            assert time.monotonic() < deadline, "the service did not answer /health in time"
            time.sleep(0.05)
    except BaseException:
        service.stop()
        raise


@contextmanager
def running(settings: Settings | None = None, *apps: str, **options: object) -> Iterator[ServiceProcess]:
    """The service process for as long as the block runs (see `start`)."""
    service = start(settings, *apps, **options)  # type: ignore[arg-type]
    try:
        yield service
    finally:
        service.stop()
