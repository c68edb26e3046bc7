"""The `evalledger` command (`main` is the console script's entry point).

Each module adds its commands to the one Typer app in `common`: `server` (serve, migrate,
db, audit, projections), `datasets` (datasets, items, import, export, purge) and `runs`
(run, runs, compare), `worker` (worker), `access` (whoami, projects, keys)."""

from evalledger.cli import access, datasets, runs, server, worker  # noqa: F401 - importing them registers their commands
from evalledger.cli.common import cli


def main() -> None:
    cli()


__all__ = ["cli", "main"]
