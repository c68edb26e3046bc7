"""Commands that run or look after the service and its database: serve, migrate, the
embedded PostgreSQL (db status / db stop), the audit, the projections."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from evalledger.cli.common import (
    auth_headers,
    AllowHttp,
    AppModules,
    LogLevel,
    DEFAULT_DATA_DIR,
    DataDir,
    DatabaseUrl,
    cli,
    console,
    fail_database,
    out,
    process_settings,
    settings_for,
)
from evalledger.adapters.database import DatabaseUnavailableError
from evalledger.projections.status import RebuildReport
from evalledger.settings import Settings

@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_level: LogLevel = "info",
    app: AppModules = None,
    allow_http: AllowHttp = None,
    worker: Annotated[
        bool,
        typer.Option("--worker/--no-worker", help="Also execute runs in this process (default); --no-worker makes "
                     "an API-only node, with runs executed by `evalledger worker` processes (also EVALLEDGER_WORKER)."),
    ] = True,
) -> None:
    """Start the HTTP API (on the embedded PostgreSQL unless DATABASE_URL is set)."""
    import uvicorn

    from evalledger.api.app import create_app

    settings = process_settings(database_url, data_dir, log_level, app, allow_http,
                                run_worker=Settings.from_env().run_worker and worker)
    ledger = started_ledger(settings, lambda ledger: refuse_public_without_keys(ledger, host) or ledger.start())
    console.print(f"evalledger on http://{host}:{port} (database {ledger.connection.describe()}); "
                  f"API docs at http://{host}:{port}/docs")
    try:
        uvicorn.run(create_app(ledger), host=host, port=port, log_level=log_level, access_log=False)
    finally:
        ledger.close()


def started_ledger(settings: Settings, start: Any) -> Any:
    """The ledger on `settings`, started by `start(ledger)`; a database that cannot be
    reached or refuses connections, or an app module that cannot be loaded, ends the
    command with exit code 2 and a sentence saying so (never a hang or a traceback)."""
    import psycopg
    from eventsourcing.persistence import PersistenceError

    from evalledger.bootstrap import build_ledger

    refused = (psycopg.Error, PersistenceError)
    try:
        ledger = build_ledger(settings)
    except DatabaseUnavailableError as error:
        fail_database(error)
    except ImportError as error:
        console.print(f"[bold red]Cannot load your app module:[/] {error}")
        raise typer.Exit(code=2) from None
    except refused as error:
        fail_database(DatabaseUnavailableError(f"PostgreSQL refused the service's connections: {error}"))
    try:
        start(ledger)
    except refused as error:
        ledger.close()
        fail_database(DatabaseUnavailableError(f"PostgreSQL refused the service's connections: {error}"))
    return ledger


def refuse_public_without_keys(ledger: Any, host: str) -> None:
    """A service reachable from other machines must not start without any key."""
    if not is_loopback(host) and ledger.settings.admin_key is None and not ledger.access.has_keys():
        ledger.close()
        console.print(f"[bold red]Refusing to serve on {host}:[/] no API key is configured, and this address is "
                      "reachable from other machines. Set EVALLEDGER_ADMIN_KEY (32 characters or more), or start "
                      "once on 127.0.0.1 to make the first key.")
        raise typer.Exit(code=2)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@cli.command()
def migrate(database_url: DatabaseUrl = None, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Create the event store and read-model tables (idempotent)."""
    from evalledger.bootstrap import build_ledger

    try:
        ledger = build_ledger(settings_for(database_url, data_dir), create_tables=True)
    except DatabaseUnavailableError as error:
        fail_database(error)
    ledger.close()
    console.print(f"tables ready in {ledger.connection.describe()} (schema {ledger.settings.schema})")


audit_cli = typer.Typer(help="Check the read models against the event log.", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")
projections_cli = typer.Typer(help="The read models: where they are, and rebuilding them.", no_args_is_help=True)
cli.add_typer(projections_cli, name="projections")


def _ledger(database_url: str | None, data_dir: Path) -> Any:
    from evalledger.bootstrap import build_ledger

    try:
        return build_ledger(settings_for(database_url, data_dir))
    except DatabaseUnavailableError as error:
        fail_database(error)


@audit_cli.command("verify")
def audit_verify(
    dataset: Annotated[str | None, typer.Argument(help="One dataset id (default: every dataset and run).")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Replay every dataset to every version, and every run's results, and compare them
    with the read models. Exits 1 and names each difference."""
    from uuid import UUID

    ledger = _ledger(database_url, data_dir)
    counts: dict[str, int] = {}
    try:
        findings = ledger.operations.verify([UUID(dataset)] if dataset else None,
                                            progress=lambda datasets=None, runs=None, **_: counts.update(
                                                {} if datasets is None else {"datasets": datasets, "runs": runs}))
    finally:
        ledger.close()
    for finding in findings:
        console.print(f"[bold red]DIFFERENT[/] {finding}")
    console.print(f"checked {counts.get('datasets', 0)} dataset(s) and {counts.get('runs', 0)} run(s): "
                  + ("[bold red]differences found[/]" if findings else "[green]read models match the log[/]"))
    if findings:
        raise typer.Exit(code=1)


@projections_cli.command("status")
def projections_status(database_url: DatabaseUrl = None, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Each projection's position in the event log and how far behind it is."""
    from rich.table import Table

    ledger = _ledger(database_url, data_dir)
    try:
        table = Table("projection", "position", "log head", "lag")
        for follower in ledger.followers:
            status = follower.status()
            table.add_row(status.name, str(status.position), str(status.head), str(status.lag))
    finally:
        ledger.close()
    console.print(table)


@projections_cli.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help="datasets or runs (default: both).")] = None,
    url: Annotated[str | None, typer.Option("--url", envvar="EVALLEDGER_URL",
                                            help="A running service to rebuild in (it then switches over "
                                                 "without a pause in answers).")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Replay the event log into fresh read-model tables, then switch over."""
    import httpx

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    def progress_bar(each: str) -> Progress:
        return Progress(f"[bold]rebuilding {each}", BarColumn(), TextColumn("log position {task.fields[at]}"),
                        TimeElapsedColumn(), console=console, transient=True)

    names = [name] if name else ["datasets", "runs"]
    if url:
        for each in names:
            response = httpx.post(f"{url}/api/projections/{each}/rebuild", params={"wait": "false"}, timeout=60,
                                  headers=auth_headers(url))
            if response.status_code >= 400:
                console.print(f"[bold red]Rebuild refused:[/] {response.json().get('detail')}")
                raise typer.Exit(code=1)
            with progress_bar(each) as bar:  # the service rebuilds in the background: follow it
                task = bar.add_task(each, total=None, at="…")
                while True:
                    time.sleep(0.2)
                    listed = httpx.get(f"{url}/api/projections", timeout=60, headers=auth_headers(url)).json()["projections"]
                    state = next(p for p in listed if p["name"] == each)["rebuild"]
                    if state["head"]:
                        bar.update(task, completed=state["position"], total=state["head"],
                                   at=f"{state['position']:,} of {state['head']:,}")
                    if state["state"] != "running":
                        break
            if state["state"] != "done":
                console.print(f"[bold red]Rebuild of {each} failed:[/] {state['error']}")
                raise typer.Exit(code=1)
            report = state["report"]  # the service's JSON
            _report_rebuild(RebuildReport(report["projection"], report["position"], report["events"],
                                          report["seconds"], report["eventsPerSecond"]))
        return

    from evalledger.projections.rebuild import RebuildRunningError, rebuild

    ledger = _ledger(database_url, data_dir)
    try:
        followers = {f.name: f for f in ledger.followers}
        unknown = [n for n in names if n not in followers]
        if unknown:
            console.print(f"[bold red]No projection named[/] {', '.join(unknown)}; there are: {', '.join(followers)}")
            raise typer.Exit(code=2)
        for each in names:
            try:
                with progress_bar(each) as bar:
                    task = bar.add_task(each, total=None, at="…")
                    report = rebuild(followers[each], ledger.session_connection, progress=lambda position, head: (
                        bar.update(task, completed=position, total=head, at=f"{position:,} of {head:,}")))
                _report_rebuild(report)
            except RebuildRunningError as error:
                console.print(f"[bold red]Rebuild refused:[/] {error.detail}")
                raise typer.Exit(code=1) from None
    finally:
        ledger.close()


def _report_rebuild(report: RebuildReport) -> None:
    console.print(f"rebuilt {report.projection}: {report.events} events in {report.seconds} s "
                  f"({report.events_per_second} events/s), at position {report.position}")


db_cli = typer.Typer(help="The embedded PostgreSQL (used when DATABASE_URL is not set).", no_args_is_help=True)
cli.add_typer(db_cli, name="db")


@db_cli.command("status")
def db_status(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Whether the embedded PostgreSQL of --data-dir runs: its pid, socket and users.
    Exits 0 when it runs, 3 when it does not (as pg_ctl status)."""
    from evalledger.adapters.database import embedded_server

    server = embedded_server(data_dir)
    if server is None:
        out.print(f"not running (data directory {data_dir.expanduser().absolute()})")
        raise typer.Exit(code=3)
    users = ", ".join(str(pid) for pid in server.users) or "none"
    out.print(f"running: pid {server.pid}, data directory {server.data_dir}, socket in {server.socket_dir}, "
              f"since {server.started_at.isoformat(timespec='seconds')}; processes using it: {users}")


@db_cli.command("stop")
def db_stop(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    force: Annotated[bool, typer.Option("--force", help="Stop it even while a service uses it.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to stop.")] = 30.0,
) -> None:
    """Stop exactly the embedded PostgreSQL of --data-dir (the pid in its postmaster.pid,
    checked to be that server), with PostgreSQL's fast shutdown. Nothing else is touched."""
    from evalledger.adapters.database import embedded_server, stop_embedded

    server = embedded_server(data_dir)
    if server is None:
        console.print(f"no embedded PostgreSQL is running in {data_dir.expanduser().absolute()}")
        return
    if server.users and not force:
        console.print(f"[bold red]Not stopped:[/] process(es) {', '.join(map(str, server.users))} (an evalledger "
                      "service?) still use it; stop them first, or pass --force")
        raise typer.Exit(code=1)
    try:
        stopped = stop_embedded(data_dir, timeout=timeout)
    except TimeoutError as error:
        console.print(f"[bold red]Not stopped:[/] {error}")
        raise typer.Exit(code=1) from None
    if stopped is not None:
        console.print(f"stopped the embedded PostgreSQL (pid {stopped.pid}) of {stopped.data_dir}")
