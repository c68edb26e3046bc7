"""What every command shares: the app, the consoles, the common options, talking to the
service (with the global --actor / --reason), and showing what went wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from evalledger.adapters.database import DatabaseUnavailableError
from evalledger.settings import Settings

cli = typer.Typer(help="evalledger: versioned LLM evaluation datasets and runs.", no_args_is_help=True)
console = Console(stderr=True)  # progress, messages and errors
out = Console(soft_wrap=True)  # results (tables, ids, JSON) on stdout, for pipes and scripts


@dataclass
class Who:
    """Who makes the changes and why: sent with every write as X-Actor and X-Change-Reason."""

    actor: str | None = None
    reason: str | None = None

    def headers(self) -> dict[str, str]:
        return {k: v for k, v in (("X-Actor", self.actor), ("X-Change-Reason", self.reason)) if v}


who = Who()


def auth_headers(url: str) -> dict[str, str]:
    """The API key header for `url` (EVALLEDGER_API_KEY, or the first-start key file for a
    service on this machine), as the Python client finds it."""
    from evalledger.client import find_api_key

    key = find_api_key(url)
    return {"Authorization": f"Bearer {key}"} if key else {}


@cli.callback()
def main_options(
    actor: Annotated[str | None, typer.Option(envvar="EVALLEDGER_ACTOR",
                                              help="Who makes the changes (recorded on every event written).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded on every event written).")] = None,
) -> None:
    """evalledger: versioned LLM evaluation datasets and runs."""
    who.actor, who.reason = actor, reason


DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="DATABASE_URL",
                 help="PostgreSQL URL. Without it, an embedded PostgreSQL is started in --data-dir."),
]
DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="EVALLEDGER_DATA_DIR", help="Where the embedded PostgreSQL keeps its data."),
]
DEFAULT_DATA_DIR = Path(".evalledger/pg")
# Options `serve` and `worker` share.
AppModules = Annotated[list[str] | None, typer.Option(
    "--app", help="Python module whose @target/@scorer functions to load (repeatable; also EVALLEDGER_APP, "
    "comma-separated).")]
AllowHttp = Annotated[list[str] | None, typer.Option(
    "--allow-http", help="URL prefix HTTP/LLM targets and judges may call (repeatable; also "
    "EVALLEDGER_HTTP_ALLOWLIST).")]
LogLevel = Annotated[str, typer.Option(help="debug, info, warning, error")]
ServiceUrl = Annotated[str, typer.Option("--url", envvar="EVALLEDGER_URL", help="The evalledger service.")]
DEFAULT_URL = "http://127.0.0.1:8000"
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer instead of a table.")]
Yes = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]


def settings_for(database_url: str | None, data_dir: Path, **overrides: object) -> Settings:
    import os

    base = Settings.from_env()
    fields = {**base.__dict__, "database_url": database_url, "embedded_data_dir": data_dir, **overrides}
    if not os.environ.get("EVALLEDGER_KEY_FILE"):  # the first-start key lives beside the data
        fields["key_file"] = overrides.get("key_file", Path(data_dir).parent / "admin.key")
    return Settings(**fields)


def process_settings(database_url: str | None, data_dir: Path, log_level: str, apps: list[str] | None,
                     allow_http: list[str] | None, **overrides: object) -> Settings:
    """Logging set up, and the settings of a long-running process (`serve`, `worker`): the
    environment's apps and HTTP allowlist extended by the command line's."""
    import logging

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = Settings.from_env()
    return settings_for(database_url, data_dir, app_modules=base.app_modules + tuple(apps or ()),
                        http_allowlist=base.http_allowlist + tuple(allow_http or ()), **overrides)


def fail_database(error: DatabaseUnavailableError) -> NoReturn:
    console.print(f"[bold red]Database unavailable:[/] {error}")
    raise typer.Exit(code=2)


def client(url: str) -> Any:
    from evalledger.client import Client

    return Client(url, actor=who.actor, reason=who.reason)


# The CLI's way to say what the API says as query parameters (an import's or a copy's `remedy`).
_OPTIONS = {"skipInvalid": lambda value: "--skip-invalid", "map": lambda value: f"--map {value}",
            "format": lambda value: f"--format {value}", "mode": lambda value: f"--mode {value}",
            "onConflict": lambda value: f"--on-conflict {value}"}


def explain(problem: dict[str, Any]) -> str:
    """A problem's detail; where it carries a remedy, worded with this command's options."""
    remedy = problem.get("remedy")
    if isinstance(remedy, dict) and remedy.get("parameter") in _OPTIONS and problem.get("message"):
        option = _OPTIONS[remedy["parameter"]](remedy.get("value", ""))
        return f"{problem['message']} (use {option} {remedy.get('purpose', '')})".replace(" )", ")")
    return str(problem.get("detail") or problem.get("title") or problem)


@contextmanager
def refused(what: str, code: int = 1) -> Iterator[None]:
    """Turn an API refusal into a one-line message and exit `code` (no traceback)."""
    from evalledger.client import ApiError

    try:
        yield
    except ApiError as error:
        console.print(f"[bold red]{what}:[/] {explain(error.problem)} [dim]({error.status} {error.type})[/]")
        raise typer.Exit(code=code) from None


def print_json(value: Any) -> None:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", by_alias=True)
    out.print_json(json.dumps(value, default=str))


def parse_json(value: str | None, option: str) -> Any:
    """A JSON value given on the command line; a bare word that is not JSON is taken as a string."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if value.lstrip()[:1] in ("{", "[", '"'):
            raise typer.BadParameter(f"{option} is not valid JSON") from None
        return value


def short(value: Any, width: int = 60) -> str:
    """A value in a table cell: JSON text, cut to `width` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"
