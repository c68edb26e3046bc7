"""Commands on datasets and their items: datasets list|create|show|delete, datasets tag
set|list|delete, items list|add|copy, import, export and purge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from evalledger.cli.common import (
    auth_headers,
    DEFAULT_URL,
    AsJson,
    ServiceUrl,
    cli,
    client,
    console,
    explain,
    out,
    parse_json,
    print_json,
    refused,
    short,
    who,
    Yes,
)

datasets_cli = typer.Typer(help="Datasets: list, create, show, delete.", no_args_is_help=True)
cli.add_typer(datasets_cli, name="datasets")
tag_cli = typer.Typer(help="Version tags: name a version (golden), move, list, delete.", no_args_is_help=True)
datasets_cli.add_typer(tag_cli, name="tag")
items_cli = typer.Typer(help="A dataset's items: list, add, copy to another dataset.", no_args_is_help=True)
cli.add_typer(items_cli, name="items")

Dataset = Annotated[str, typer.Argument(help="Dataset id.")]
Page = Annotated[int, typer.Option(help="Page (0-based).")]
PerPage = Annotated[int, typer.Option(help="Rows per page.")]


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _more(pagination: Any, what: str) -> None:
    if pagination.has_more:
        console.print(f"{pagination.total} {what} in all; next: --page {pagination.page + 1}")


@datasets_cli.command("list")
def datasets_list(page: Page = 0, per_page: PerPage = 20, as_json: AsJson = False, url: ServiceUrl = DEFAULT_URL) -> None:
    """The datasets, newest first."""
    with client(url) as api, refused("Cannot list datasets"):
        listing = api.list_datasets(page=page, per_page=per_page)
    if as_json:
        return print_json(listing)
    table = Table("id", "name", "version", "items", "updated", title=f"datasets ({listing.pagination.total})")
    for dataset in listing.datasets:
        table.add_row(str(dataset.id), dataset.name, str(dataset.version), str(dataset.item_count),
                      _when(dataset.updated_at))
    out.print(table)
    _more(listing.pagination, "datasets")


@datasets_cli.command("create")
def datasets_create(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    metadata: Annotated[str | None, typer.Option(help="A JSON object.")] = None,
    input_schema: Annotated[str | None, typer.Option(help="JSON Schema every item's input must satisfy "
                                                     "(JSON, or @FILE).")] = None,
    expected_output_schema: Annotated[str | None, typer.Option(help="JSON Schema for expected outputs "
                                                               "(JSON, or @FILE).")] = None,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Create a dataset (version 0); prints its id on stdout, e.g. ID=$(evalledger datasets create qa)."""
    with client(url) as api, refused("Dataset not created"):
        created = api.create_dataset(name, description=description, metadata=_object(metadata, "--metadata"),
                                     input_schema=_object(input_schema, "--input-schema"),
                                     expected_output_schema=_object(expected_output_schema,
                                                                    "--expected-output-schema"))
    console.print(f"created dataset {created.name!r} (version {created.version})")
    out.print(str(created.id))


def _object(value: str | None, option: str) -> dict[str, Any] | None:
    if value is not None and value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except OSError as error:
            raise typer.BadParameter(f"{option}: cannot read {value[1:]}: {error.strerror}") from None
    parsed = parse_json(value, option)
    if parsed is not None and not isinstance(parsed, dict):
        raise typer.BadParameter(f"{option} must be a JSON object")
    return parsed


@datasets_cli.command("show")
def datasets_show(dataset: Dataset, as_json: AsJson = False, url: ServiceUrl = DEFAULT_URL) -> None:
    """A dataset's details and its latest versions."""
    with client(url) as api, refused("Cannot show the dataset"):
        details = api.get_dataset(dataset)
        versions = api.list_versions(dataset, per_page=10)
    if as_json:
        return print_json({"dataset": details.model_dump(mode="json", by_alias=True),
                           "versions": versions.model_dump(mode="json", by_alias=True)["versions"]})
    table = Table("field", "value", title=f"dataset {details.name}", show_header=False)
    for label, value in (("id", details.id), ("description", details.description), ("version", details.version),
                         ("items", details.item_count), ("metadata", short(details.metadata, 100)),
                         ("input schema", short(details.input_schema, 100)),
                         ("expected output schema", short(details.expected_output_schema, 100)),
                         ("created", _when(details.created_at)), ("updated", _when(details.updated_at))):
        table.add_row(label, str(value))
    out.print(table)
    history = Table("version", "items", "added", "updated", "removed", "by", "reason", "at", title="latest versions")
    for v in versions.versions:
        history.add_row(str(v.version), str(v.item_count), str(v.added), str(v.updated), str(v.removed), v.actor,
                        v.reason or "", _when(v.created_at))
    out.print(history)


@datasets_cli.command("delete")
def datasets_delete(
    dataset: Dataset,
    yes: Yes = False,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Delete a dataset (its history stays in the event log)."""
    if not yes:
        typer.confirm(f"Delete dataset {dataset}?", abort=True)
    with client(url) as api, refused("Dataset not deleted"):
        api.delete_dataset(dataset)
    console.print(f"deleted dataset {dataset}")


# -- version tags ---------------------------------------------------------------------------

TagName = Annotated[str, typer.Argument(help="The tag, e.g. golden or release-2026-12.")]


@tag_cli.command("set")
def tag_set(
    dataset: Dataset,
    tag: TagName,
    version: Annotated[int | None, typer.Option(help="The version to tag (default: current).")] = None,
    move: Annotated[bool, typer.Option("--move", help="Move the tag if it names another version.")] = False,
    as_json: AsJson = False,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Name a version with a tag (an event in the audit trail); --move moves a tag that names another version."""
    with client(url) as api, refused("Tag not set"):
        written = api.tag_version(dataset, tag, version, move=move)
    if as_json:
        return print_json(written)
    if written.outcome == "moved":
        console.print(f"moved tag {tag!r} from version {written.previous_version} to version {written.version}")
    elif written.outcome == "tagged":
        console.print(f"tagged version {written.version} {tag!r}")
    else:
        console.print(f"tag {tag!r} already names version {written.version}; nothing changed")
    out.print(str(written.version))


@tag_cli.command("list")
def tag_list(dataset: Dataset, as_json: AsJson = False, url: ServiceUrl = DEFAULT_URL) -> None:
    """A dataset's tags and the versions they name."""
    with client(url) as api, refused("Cannot list tags"):
        listing = api.list_tags(dataset)
    if as_json:
        return print_json(listing)
    table = Table("tag", "version", "by", "reason", "at", title=f"tags ({len(listing.tags)})")
    for t in listing.tags:
        table.add_row(t.tag, str(t.version), t.actor, t.reason or "", _when(t.tagged_at))
    out.print(table)


@tag_cli.command("delete")
def tag_delete(dataset: Dataset, tag: TagName, url: ServiceUrl = DEFAULT_URL) -> None:
    """Remove a tag (the version it named stays)."""
    with client(url) as api, refused("Tag not deleted"):
        deleted = api.delete_tag(dataset, tag)
    console.print(f"deleted tag {tag!r} (it named version {deleted.version})")


# -- items ----------------------------------------------------------------------------------


@items_cli.command("list")
def items_list(
    dataset: Dataset,
    version: Annotated[int | None, typer.Option(help="Dataset version (default: current).")] = None,
    search: Annotated[str | None, typer.Option(help="Only items whose content contains this text.")] = None,
    page: Page = 0,
    per_page: PerPage = 20,
    as_json: AsJson = False,
    url: ServiceUrl = DEFAULT_URL,
    tag: Annotated[str | None, typer.Option(help="The version this tag names (instead of --version).")] = None,
) -> None:
    """A dataset's items at a version (or at the version a tag names)."""
    with client(url) as api, refused("Cannot list items"):
        listing = api.list_items(dataset, version=version, search=search, page=page, per_page=per_page, tag=tag)
    if as_json:
        return print_json(listing)
    table = Table("id", "externalId", "input", "expectedOutput", "metadata",
                  title=f"items at version {listing.version} ({listing.pagination.total})")
    for item in listing.items:
        table.add_row(str(item.id), item.external_id or "", short(item.input), short(item.expected_output),
                      short(item.metadata or None, 30))
    out.print(table)
    _more(listing.pagination, "items")


@items_cli.command("add")
def items_add(
    dataset: Dataset,
    input_: Annotated[str, typer.Option("--input", help="The input: JSON, or plain text.")],
    expected: Annotated[str | None, typer.Option("--expected", help="Expected output: JSON, or plain text.")] = None,
    metadata: Annotated[str | None, typer.Option(help="A JSON object.")] = None,
    external_id: Annotated[str | None, typer.Option(help="Your own id for it (unique in the dataset).")] = None,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Add one item (one new version); prints its id on stdout. For many, use `import`."""
    with client(url) as api, refused("Item not added"):
        written = api.add_item(dataset, input=parse_json(input_, "--input"),
                               expected_output=parse_json(expected, "--expected"),
                               metadata=_object(metadata, "--metadata"), external_id=external_id)
    console.print(f"added at version {written.version}")
    out.print(str(written.item.id))


@items_cli.command("copy")
def items_copy(
    dataset: Annotated[str, typer.Argument(help="Dataset to copy from.")],
    target: Annotated[str, typer.Argument(help="Dataset to copy into.")],
    items: Annotated[list[str], typer.Argument(help="Item ids.")],
    version: Annotated[int | None, typer.Option(help="Version to copy from (default: current).")] = None,
    on_conflict: Annotated[str, typer.Option(help="An item whose externalId the target already uses: refuse, "
                                             "skip it, or drop its externalId in the copy.")] = "refuse",
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Copy items into another dataset (one new version there), recording where they came from."""
    with client(url) as api, refused("Nothing copied"):
        copied = api.copy_items(dataset, target, items, version=version, on_conflict=on_conflict)
    skipped = copied.skipped_item_ids or []
    console.print(f"copied {copied.count} item(s) into {target} (version {copied.version})"
                  + (f"; skipped {len(skipped)} whose externalId it already uses" if skipped else ""))


# -- files ----------------------------------------------------------------------------------


@cli.command("import")
def import_file(
    dataset: Dataset,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, JSON (an array) or JSONL file.")],
    map_: Annotated[list[str] | None, typer.Option("--map", help="column=role (input, expectedOutput, metadata, "
                                                   "externalId, ignore); repeatable.")] = None,
    mode: Annotated[str, typer.Option(help="append, upsert or replace.")] = "append",
    file_format: Annotated[str | None, typer.Option("--format", help="csv, json or jsonl (default: by name).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and preview; write nothing.")] = False,
    skip_invalid: Annotated[bool, typer.Option(help="Import the valid rows, report the others.")] = False,
    url: ServiceUrl = DEFAULT_URL,
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
                              headers={"Content-Length": str(size), **who.headers(), **auth_headers(url)}, timeout=None)
    body = response.json()
    _show_warnings(body.get("warnings") or [])
    if response.status_code >= 400:
        console.print(f"[bold red]Import refused:[/] {explain(body)}")
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


def _show_warnings(warnings: list[dict[str, Any]]) -> None:
    """The importer's warnings; a column it dropped gets the option that keeps or silences it."""
    for warning in warnings[:20]:
        if warning["row"] == 1 and "not mapped" in warning["message"]:
            column = warning["field"]
            console.print(f"[yellow]warning:[/] column {column!r} is not mapped to a role, so its values were not "
                          f"imported (--map {column}=metadata keeps them, --map {column}=ignore silences this)")
        else:
            console.print(f"[yellow]warning:[/] row {warning['row']} {warning['field']}: {warning['message']}")
    if len(warnings) > 20:
        console.print(f"[yellow]… and {len(warnings) - 20} more warning(s)[/]")


def download(url: str, params: dict[str, Any], output: Path, what: str) -> Any:
    """Stream a GET answer into `output` with a progress display; returns the response."""
    import httpx
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with httpx.stream("GET", url, params=params, timeout=None, headers=auth_headers(url)) as response:
        if response.status_code >= 400:
            response.read()
            console.print(f"[bold red]{what} refused:[/] {explain(response.json())}")
            raise typer.Exit(code=1)
        with Progress("[bold]downloading", DownloadColumn(), TransferSpeedColumn(), console=console) as bar, \
                output.open("wb") as sink:
            task = bar.add_task("download", total=None)
            for chunk in response.iter_bytes():
                sink.write(chunk)
                bar.advance(task, len(chunk))
    return response


@cli.command("export")
def export_file(
    dataset: Dataset,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    file_format: Annotated[str, typer.Option("--format", help="csv, json or jsonl.")] = "jsonl",
    version: Annotated[int | None, typer.Option(help="Dataset version (default: current).")] = None,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Export a dataset version to a file, with a progress display."""
    params: dict[str, Any] = {"format": file_format}
    if version is not None:
        params["version"] = version
    response = download(f"{url}/api/datasets/{dataset}/items/export", params, output, "Export")
    console.print(f"wrote {output} (version {response.headers.get('x-dataset-version')})")


@cli.command()
def purge(
    dataset: Dataset,
    item: Annotated[str, typer.Argument(help="Item id.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded on the event).")] = None,
    yes: Yes = False,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Erase an item's content from every version, export and run result. Cannot be undone."""
    if not yes:
        typer.confirm(f"Erase the content of item {item} from the whole history? This cannot be undone", abort=True)
    with client(url) as api, refused("Purge refused"):
        answer = api.purge_item(dataset, item, reason=reason)
    state = "purged" if answer.changed else "was already purged"
    console.print(f"item {item} {state} at {answer.purged_at.isoformat()}")
