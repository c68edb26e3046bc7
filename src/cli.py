"""The `evalledger` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from evalledger.database import DatabaseUnavailableError
from evalledger.settings import Settings

cli = typer.Typer(help="evalledger: versioned LLM evaluation datasets and runs.", no_args_is_help=True)
console = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="DATABASE_URL",
                 help="PostgreSQL URL. Without it, an embedded PostgreSQL is started in --data-dir."),
]
DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="EVALLEDGER_DATA_DIR", help="Where the embedded PostgreSQL keeps its data."),
]


def _settings(database_url: str | None, data_dir: Path, **overrides: object) -> Settings:
    base = Settings.from_env()
    fields = {**base.__dict__, "database_url": database_url, "embedded_data_dir": data_dir, **overrides}
    return Settings(**fields)


def _fail(error: DatabaseUnavailableError) -> None:
    console.print(f"[bold red]Database unavailable:[/] {error}")
    raise typer.Exit(code=2)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = Path(".evalledger/pg"),
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Start the HTTP API (on the embedded PostgreSQL unless DATABASE_URL is set)."""
    import uvicorn

    from evalledger.api.app import create_app
    from evalledger.bootstrap import build_ledger

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(database_url, data_dir)
    try:
        ledger = build_ledger(settings)
    except DatabaseUnavailableError as error:
        _fail(error)
    ledger.start()
    console.print(f"evalledger on http://{host}:{port} (database {ledger.connection.describe()}); "
                  f"API docs at http://{host}:{port}/docs")
    try:
        uvicorn.run(create_app(ledger), host=host, port=port, log_level=log_level, access_log=False)
    finally:
        ledger.close()


@cli.command()
def migrate(database_url: DatabaseUrl = None, data_dir: DataDir = Path(".evalledger/pg")) -> None:
    """Create the event store and read-model tables (idempotent)."""
    from evalledger.bootstrap import build_ledger

    try:
        ledger = build_ledger(_settings(database_url, data_dir), create_tables=True)
    except DatabaseUnavailableError as error:
        _fail(error)
    ledger.close()
    console.print(f"tables ready in {ledger.connection.describe()} (schema {ledger.settings.schema})")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
