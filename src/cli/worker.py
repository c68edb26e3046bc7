"""`evalledger worker`: executes server-side runs from the job queue, beside any number of
other workers and API processes on the same database (see README, "Deployment")."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from evalledger.cli.common import (
    DEFAULT_DATA_DIR,
    AllowHttp,
    AppModules,
    DataDir,
    DatabaseUrl,
    LogLevel,
    cli,
    console,
    process_settings,
)
from evalledger.cli.server import started_ledger
from evalledger.settings import Settings


@cli.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", min=1, help="Chunk jobs executed at once (default 4, also EVALLEDGER_WORKER_CONCURRENCY); "
        "each runs up to its run's maxConcurrency items at once, the run's limit holding across all workers.")] = None,
    app: AppModules = None,
    allow_http: AllowHttp = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_level: LogLevel = "info",
) -> None:
    """Execute runs from the job queue until stopped (SIGTERM or Ctrl-C). Its chunks in
    progress go back to the queue when it stops; if it dies, a live worker takes them over."""
    settings = process_settings(database_url, data_dir, log_level, app, allow_http,
                                worker_concurrency=concurrency or Settings.from_env().worker_concurrency,
                                run_worker=True)
    ledger = started_ledger(settings, lambda ledger: ledger.start_worker())
    stopping = threading.Event()
    for each in (signal.SIGTERM, signal.SIGINT):
        signal.signal(each, lambda *_: stopping.set())
    console.print(f"evalledger worker on {ledger.connection.describe()} (schema {settings.schema}), "
                  f"{settings.worker_concurrency} chunk(s) at once")
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        ledger.close()
