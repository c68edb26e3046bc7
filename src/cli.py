"""The `evalledger` command."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

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
    app: Annotated[
        list[str] | None,
        typer.Option("--app", help="Python module whose @target/@scorer functions to load (repeatable; "
                     "also EVALLEDGER_APP, comma-separated)."),
    ] = None,
    allow_http: Annotated[
        list[str] | None,
        typer.Option("--allow-http", help="URL prefix HTTP/LLM targets and judges may call (repeatable; "
                     "also EVALLEDGER_HTTP_ALLOWLIST)."),
    ] = None,
) -> None:
    """Start the HTTP API (on the embedded PostgreSQL unless DATABASE_URL is set)."""
    import uvicorn

    from evalledger.api.app import create_app
    from evalledger.bootstrap import build_ledger

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = Settings.from_env()
    settings = _settings(
        database_url,
        data_dir,
        app_modules=base.app_modules + tuple(app or ()),
        http_allowlist=base.http_allowlist + tuple(allow_http or ()),
    )
    try:
        ledger = build_ledger(settings)
    except DatabaseUnavailableError as error:
        _fail(error)
    except ImportError as error:
        console.print(f"[bold red]Cannot load your app module:[/] {error}")
        raise typer.Exit(code=2) from None
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


ServiceUrl = Annotated[str, typer.Option("--url", envvar="EVALLEDGER_URL", help="The evalledger service.")]


def _spec(value: str, *, kind: str) -> dict[str, Any] | str:
    """A target or scorer given on the command line: JSON, a URL (targets), or a name."""
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"{kind} is not valid JSON: {error}") from None
    if kind == "target" and value.startswith(("http://", "https://")):
        return {"type": "http", "url": value}
    return {"type": "registered", "name": value} if kind == "target" else value


@cli.command()
def run(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    target: Annotated[str, typer.Option(help="Registered target name, an http(s) URL, or a JSON target spec.")],
    scorer: Annotated[list[str] | None, typer.Option(help="Scorer name or JSON spec; repeat for several.")] = None,
    version: Annotated[int | None, typer.Option(help="Dataset version (default: current).")] = None,
    concurrency: Annotated[int, typer.Option(help="Items in flight at once.")] = 8,
    timeout_ms: Annotated[int, typer.Option(help="Per-item timeout.")] = 60_000,
    retries: Annotated[int, typer.Option(help="Retries for transient errors.")] = 2,
    repetitions: Annotated[int, typer.Option(help="Times each item runs.")] = 1,
    name: Annotated[str, typer.Option(help="Run name.")] = "",
    url: ServiceUrl = "http://127.0.0.1:8000",
) -> None:
    """Start a run, show its progress live, then a summary. Exits 1 if the run failed."""
    from evalledger.client import ApiError, Client
    from evalledger.cli_progress import follow_run, summarise_run

    with Client(url) as client:
        try:
            started = client.create_run(
                dataset,
                target=_spec(target, kind="target"),  # type: ignore[arg-type]
                scorers=[_spec(s, kind="scorer") for s in scorer or []],
                version=version,
                max_concurrency=concurrency,
                item_timeout_ms=timeout_ms,
                max_retries=retries,
                repetitions=repetitions,
                name=name,
            )
        except ApiError as error:
            console.print(f"[bold red]Run refused:[/] {error.detail}")
            raise typer.Exit(code=2) from None
        console.print(f"run {started.id} on dataset {dataset} version {started.dataset_version}: "
                      f"{started.expected_results} result(s) to produce")
        finished = follow_run(client, started.id, console)
        summarise_run(client, finished, console)
        if finished.status != "completed":
            raise typer.Exit(code=1)


@cli.command()
def compare(
    baseline: Annotated[str, typer.Argument(help="Baseline run id (A).")],
    candidate: Annotated[str, typer.Argument(help="Candidate run id (B).")],
    threshold: Annotated[
        list[str] | None,
        typer.Option(help="SCORER=VALUE, or SCORER=VALUE:lower for lower-is-better scorers; repeatable."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    url: ServiceUrl = "http://127.0.0.1:8000",
) -> None:
    """Compare two runs; exits 1 when a regression is found (a CI gate), 2 on bad input."""
    from rich.table import Table

    from evalledger.client import ApiError, Client

    thresholds: dict[str, dict[str, Any]] = {}
    for spec in threshold or []:
        scorer_id, _, rest = spec.partition("=")
        value, _, direction = rest.partition(":")
        try:
            thresholds[scorer_id] = {"value": float(value),
                                     "direction": "lower-is-better" if direction == "lower" else "higher-is-better"}
        except ValueError:
            raise typer.BadParameter(f"--threshold {spec!r}: expected SCORER=VALUE[:lower]") from None
    with Client(url) as client:
        try:
            result = client.compare(baseline, candidate, thresholds=thresholds, alpha=alpha, items_per_page=1)
        except ApiError as error:
            console.print(f"[bold red]Cannot compare:[/] {error.detail}")
            raise typer.Exit(code=2) from None
    table = Table(title=f"{candidate} vs baseline {baseline} ({result.paired_items} paired items)")
    for column in ("scorer", "mean A", "mean B", "delta", "CI", "p", "better", "worse", "verdict"):
        table.add_column(column, justify="left" if column in ("scorer", "verdict") else "right")

    def number(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for scorer_id, block in result.scorers.items():
        colour = {"regressed": "red", "improved": "green"}.get(block.verdict, "white")
        ci = block.confidence_interval
        table.add_row(scorer_id, number(block.mean_a), number(block.mean_b), number(block.delta),
                      f"[{number(ci.get('low'))}, {number(ci.get('high'))}]",
                      "-" if block.p_value is None else f"{block.p_value:.2g}", str(block.improved),
                      str(block.regressed), f"[{colour}]{block.verdict}[/]")
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning['message']}")
    latency = result.latency.get("delta", {})
    console.print(f"latency p50 delta {number(latency.get('p50'), 1)} ms, p95 delta {number(latency.get('p95'), 1)} ms")
    if result.has_regression:
        console.print("[bold red]regression found[/]")
        raise typer.Exit(code=1)


@cli.command("import")
def import_file(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, JSON (an array) or JSONL file.")],
    map_: Annotated[list[str] | None, typer.Option("--map", help="column=role (input, expectedOutput, metadata, "
                                                   "externalId, ignore); repeatable.")] = None,
    mode: Annotated[str, typer.Option(help="append, upsert or replace.")] = "append",
    file_format: Annotated[str | None, typer.Option("--format", help="csv, json or jsonl (default: by name).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and preview; write nothing.")] = False,
    skip_invalid: Annotated[bool, typer.Option(help="Import the valid rows, report the others.")] = False,
    url: ServiceUrl = "http://127.0.0.1:8000",
) -> None:
    """Import a file as one new dataset version, with a progress bar for the upload."""
    import httpx
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    size = file.stat().st_size
    params: dict[str, Any] = {"filename": file.name, "mode": mode, "dryRun": str(dry_run).lower(),
                              "skipInvalid": str(skip_invalid).lower(), "map": map_ or []}
    if file_format:
        params["format"] = file_format
    with Progress("[bold]uploading", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console) as bar:
        task = bar.add_task("upload", total=size)

        def chunks() -> Any:
            with file.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    bar.advance(task, len(chunk))
                    yield chunk

        response = httpx.post(f"{url}/api/datasets/{dataset}/items/import", params=params, content=chunks(),
                              headers={"Content-Length": str(size)}, timeout=None)
    body = response.json()
    if response.status_code >= 400:
        console.print(f"[bold red]Import refused:[/] {body.get('detail')}")
        for error in (body.get("rows") or [])[:20]:
            console.print(f"  row {error['row']} {error['field']}: {error['message']}")
        raise typer.Exit(code=1)
    if dry_run:
        console.print(f"dry run: {body['validRows']} valid row(s), {body['invalidRows']} invalid; nothing written")
        for error in body["errors"][:20]:
            console.print(f"  row {error['row']} {error['field']}: {error['message']}")
        raise typer.Exit(code=1 if body["errors"] else 0)
    console.print(f"version {body['version']}: {body['added']} added, {body['updated']} updated, "
                  f"{body['removed']} removed, {body['unchanged']} unchanged"
                  + (f", {len(body['skippedRows'])} invalid row(s) skipped" if body["skippedRows"] else ""))


@cli.command("export")
def export_file(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    file_format: Annotated[str, typer.Option("--format", help="csv, json or jsonl.")] = "jsonl",
    version: Annotated[int | None, typer.Option(help="Dataset version (default: current).")] = None,
    url: ServiceUrl = "http://127.0.0.1:8000",
) -> None:
    """Export a dataset version to a file, with a progress display."""
    import httpx
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    params: dict[str, Any] = {"format": file_format}
    if version is not None:
        params["version"] = version
    with httpx.stream("GET", f"{url}/api/datasets/{dataset}/items/export", params=params, timeout=None) as response:
        if response.status_code >= 400:
            response.read()
            console.print(f"[bold red]Export refused:[/] {response.json().get('detail')}")
            raise typer.Exit(code=1)
        with Progress("[bold]downloading", DownloadColumn(), TransferSpeedColumn(), console=console) as bar, \
                output.open("wb") as out:
            task = bar.add_task("download", total=None)
            for chunk in response.iter_bytes():
                out.write(chunk)
                bar.advance(task, len(chunk))
    console.print(f"wrote {output} (version {response.headers.get('x-dataset-version')})")


@cli.command()
def purge(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    item: Annotated[str, typer.Argument(help="Item id.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded on the event).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: ServiceUrl = "http://127.0.0.1:8000",
) -> None:
    """Erase an item's content from every version, export and run result. Cannot be undone."""
    from evalledger.client import ApiError, Client

    if not yes:
        typer.confirm(f"Erase the content of item {item} from the whole history? This cannot be undone", abort=True)
    with Client(url) as client:
        try:
            answer = client.purge_item(dataset, item, reason=reason)
        except ApiError as error:
            console.print(f"[bold red]Purge refused:[/] {error}")
            raise typer.Exit(code=1) from None
    state = "purged" if answer.changed else "was already purged"
    console.print(f"item {item} {state} at {answer.purged_at.isoformat()}")


audit_cli = typer.Typer(help="Check the read models against the event log.", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")
projections_cli = typer.Typer(help="The read models: where they are, and rebuilding them.", no_args_is_help=True)
cli.add_typer(projections_cli, name="projections")


def _ledger(database_url: str | None, data_dir: Path) -> Any:
    from evalledger.bootstrap import build_ledger

    try:
        return build_ledger(_settings(database_url, data_dir))
    except DatabaseUnavailableError as error:
        _fail(error)


@audit_cli.command("verify")
def audit_verify(
    dataset: Annotated[str | None, typer.Argument(help="One dataset id (default: every dataset and run).")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = Path(".evalledger/pg"),
) -> None:
    """Replay every dataset to every version, and every run's results, and compare them
    with the read models. Exits 1 and names each difference."""
    from uuid import UUID

    from evalledger.audit import all_dataset_ids, all_run_ids, verify_dataset, verify_run

    ledger = _ledger(database_url, data_dir)
    try:
        for follower in ledger.followers:
            follower.catch_up()
        datasets = [UUID(dataset)] if dataset else all_dataset_ids(ledger)
        runs = [] if dataset else all_run_ids(ledger)
        findings = [f for d in datasets for f in verify_dataset(ledger, d)]
        findings += [f for r in runs for f in verify_run(ledger, r)]
    finally:
        ledger.close()
    for finding in findings:
        console.print(f"[bold red]DIFFERENT[/] {finding}")
    console.print(f"checked {len(datasets)} dataset(s) and {len(runs)} run(s): "
                  + ("[bold red]differences found[/]" if findings else "[green]read models match the log[/]"))
    if findings:
        raise typer.Exit(code=1)


@projections_cli.command("status")
def projections_status(database_url: DatabaseUrl = None, data_dir: DataDir = Path(".evalledger/pg")) -> None:
    """Each projection's position in the event log and how far behind it is."""
    from rich.table import Table

    ledger = _ledger(database_url, data_dir)
    try:
        table = Table("projection", "position", "log head", "lag")
        for follower in ledger.followers:
            status = follower.status()
            table.add_row(status["name"], str(status["position"]), str(status["head"]), str(status["lag"]))
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
    data_dir: DataDir = Path(".evalledger/pg"),
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
            response = httpx.post(f"{url}/api/projections/{each}/rebuild", params={"wait": "false"}, timeout=60)
            if response.status_code >= 400:
                console.print(f"[bold red]Rebuild refused:[/] {response.json().get('detail')}")
                raise typer.Exit(code=1)
            with progress_bar(each) as bar:  # the service rebuilds in the background: follow it
                task = bar.add_task(each, total=None, at="…")
                while True:
                    time.sleep(0.2)
                    listed = httpx.get(f"{url}/api/projections", timeout=60).json()["projections"]
                    state = next(p for p in listed if p["name"] == each)["rebuild"]
                    if state["head"]:
                        bar.update(task, completed=state["position"], total=state["head"],
                                   at=f"{state['position']:,} of {state['head']:,}")
                    if state["state"] != "running":
                        break
            if state["state"] != "done":
                console.print(f"[bold red]Rebuild of {each} failed:[/] {state['error']}")
                raise typer.Exit(code=1)
            _report_rebuild(state["report"])
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
                    report = rebuild(followers[each], ledger.connection, progress=lambda position, head: bar.update(
                        task, completed=position, total=head, at=f"{position:,} of {head:,}"))
                _report_rebuild(report)
            except RebuildRunningError as error:
                console.print(f"[bold red]Rebuild refused:[/] {error.detail}")
                raise typer.Exit(code=1) from None
    finally:
        ledger.close()


def _report_rebuild(report: dict[str, Any]) -> None:
    console.print(f"rebuilt {report['projection']}: {report['events']} events in {report['seconds']} s "
                  f"({report['eventsPerSecond']} events/s), at position {report['position']}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
