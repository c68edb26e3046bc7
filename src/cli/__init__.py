"""The `evalledger` command (`main` is the console script's entry point).

Each module adds its commands to the one Typer app in `common`: `server` (serve, migrate,
db, audit, projections), `datasets` (datasets, items, import, export, purge) and `runs`
(run, runs, compare), `worker` (worker), `access` (whoami, projects, keys)."""

import httpx

from evalledger.cli import access, datasets, runs, server, worker  # noqa: F401 - importing them registers their commands
from evalledger.cli.common import cli, console


def main() -> None:
    try:
        cli()
    except httpx.TransportError as error:
        # A command that talks to the service found none there (or lost it): one line that
        # says where it looked, not a traceback.
        try:
            where = f" at {error.request.url.scheme}://{error.request.url.netloc.decode()}"
        except RuntimeError:  # no request attached
            where = ""
        console.print(f"[bold red]Cannot reach the service{where}:[/] {error or type(error).__name__}. "
                      "Is `evalledger serve` running there? (--url or EVALLEDGER_URL say where it is.)")
        raise SystemExit(2) from None


__all__ = ["cli", "main"]
