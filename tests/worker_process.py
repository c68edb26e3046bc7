"""`evalledger serve` (with any options) and `evalledger worker` as child processes, for the
tests of several processes on one database (the plain service process: service_process.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from conftest import free_port
from service_process import COMMAND, TESTS

from evalledger import Client
from evalledger.settings import Settings


def environment(settings: Settings, env: Mapping[str, str] | None) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update({"DATABASE_URL": settings.database_url or "", "EVALLEDGER_SCHEMA": settings.schema})
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), environment.get("PYTHONPATH")) if p)
    environment.update(env or {})
    return environment


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> Client:
        assert self.url is not None
        return Client(self.url)

    def sigkill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_serve(settings: Settings, *apps: str, options: Sequence[str] = (), env: Mapping[str, str] | None = None,
                timeout: float = 30.0) -> Process:
    """`evalledger serve` on a free port, once it answers /health."""
    port = free_port()
    command = [*COMMAND, "serve", "--port", str(port), "--log-level", "warning", *options]
    for app in apps:
        command += ["--app", app]
    service = Process(subprocess.Popen(command, env=environment(settings, env)), f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(service.url + "/health", timeout=1).status_code == 200:  # type: ignore[operator]
                    return service
            except httpx.HTTPError:
                pass
            assert service.process.poll() is None, f"the service exited with {service.process.returncode}"
            assert time.monotonic() < deadline, "the service did not answer /health in time"
            time.sleep(0.05)
    except BaseException:
        service.stop()
        raise


def start_worker(settings: Settings, *apps: str, options: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> Process:
    """`evalledger worker` (it needs no port: it only takes jobs from the database)."""
    command = [*COMMAND, "worker", "--log-level", "warning", *options]
    for app in apps:
        command += ["--app", app]
    worker = Process(subprocess.Popen(command, env=environment(settings, env)))
    time.sleep(0.1)
    assert worker.process.poll() is None, f"the worker exited with {worker.process.returncode}"
    return worker


@contextmanager
def running(*processes: Process) -> Iterator[tuple[Process, ...]]:
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()
