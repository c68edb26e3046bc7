"""`evalledger serve` (with any options) and `evalledger worker` as child processes, for the
tests of several processes on one database; both are started as service_process.py starts
the plain service."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from service_process import COMMAND, environment, start
from service_process import ServiceProcess as Process

from evalledger import Client
from evalledger.settings import Settings

__all__ = ["NOTED_ECHO", "Process", "running", "start_deployment", "start_echo_runs", "start_serve", "start_worker"]

# workers_app.py's target: an echo that notes each call (process, item) in WORKERS_APP_LOG.
NOTED_ECHO = {"type": "registered", "name": "workers-noted-echo"}


def start_serve(settings: Settings, *apps: str, options: Sequence[str] = (), env: Mapping[str, str] | None = None,
                timeout: float = 30.0) -> Process:
    """`evalledger serve` on a free port, once it answers /health."""
    return start(settings, *apps, options=options, env=env, timeout=timeout)


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


def start_deployment(settings: Settings, app: str, env: dict[str, str], *, apis: int, workers: int,
                     concurrency: int) -> tuple[list[Process], list[Process]]:
    """API processes without a worker and worker processes, as a deployment runs them: the
    first API process creates the tables, the others start after it with
    EVALLEDGER_CREATE_TABLES=n (as after `evalledger migrate`); `env` is left so, for any
    process the test starts later."""
    started = [start_serve(settings, app, options=["--no-worker"], env=env)]
    env["EVALLEDGER_CREATE_TABLES"] = "n"
    started += [start_serve(settings, app, options=["--no-worker"], env=env) for _ in range(apis - 1)]
    return started, [start_worker(settings, app, options=["--concurrency", str(concurrency)], env=env)
                     for _ in range(workers)]


def start_echo_runs(clients: Sequence[Client], *, runs: int, items: int, name: str, max_concurrency: int) -> list[str]:
    """`runs` runs of NOTED_ECHO over `items` items each (scored by exact-match, so each
    succeeds), started through each of `clients` in turn; their ids."""
    run_ids = []
    for n in range(runs):
        client = clients[n % len(clients)]
        dataset = client.create_dataset(f"{name} {n}")
        client.add_items(dataset.id, [{"input": {"n": i}, "expectedOutput": {"n": i}} for i in range(items)])
        run = client.create_run(dataset.id, target=NOTED_ECHO, scorers=["exact-match"], max_concurrency=max_concurrency)
        run_ids.append(str(run.id))
    return run_ids


@contextmanager
def running(*processes: Process) -> Iterator[tuple[Process, ...]]:
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()
