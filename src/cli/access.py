"""Commands on access: whoami, projects list|create, keys list|create|revoke|rotate."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from evalledger.cli.common import DEFAULT_URL, AsJson, ServiceUrl, cli, client, console, out, print_json, refused

projects_cli = typer.Typer(help="Projects: list, create (instance admins).", no_args_is_help=True)
cli.add_typer(projects_cli, name="projects")
keys_cli = typer.Typer(help="API keys: list, create, revoke, rotate.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")

Project = Annotated[str | None, typer.Option("--project", "-p",
                                             help="The project's slug (none: instance keys).")]


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


@cli.command()
def whoami(as_json: AsJson = False, url: ServiceUrl = DEFAULT_URL) -> None:
    """The key in use: its name, role and project."""
    with client(url) as api, refused("Cannot tell"):
        me = api.me()
    if as_json:
        return print_json(me)
    where = f"project {me.project.slug}" if me.project else "every project (instance key)"
    out.print(f"{me.name} · {me.role} · {where}\nchanges are recorded as: {me.actor}")


@projects_cli.command("list")
def projects_list(as_json: AsJson = False, url: ServiceUrl = DEFAULT_URL) -> None:
    """The projects this key sees."""
    with client(url) as api, refused("Cannot list projects"):
        listing = api.list_projects()
    if as_json:
        return print_json(listing)
    table = Table("slug", "name", "id", "created", title="projects")
    for project in listing.projects:
        table.add_row(project.slug, project.name, str(project.id), _when(project.created_at))
    out.print(table)


@projects_cli.command("create")
def projects_create(
    slug: Annotated[str, typer.Argument(help="Lowercase letters, digits and inner hyphens.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the slug).")] = None,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Create a project (needs an instance admin key)."""
    with client(url) as api, refused("Project not created"):
        created = api.create_project(name or slug, slug)
    console.print(f"created project {created.slug!r}")
    out.print(str(created.id))


@keys_cli.command("list")
def keys_list(project: Project = None, as_json: AsJson = False, url: ServiceUrl = DEFAULT_URL) -> None:
    """A project's keys (or the instance keys), newest first; never their secrets."""
    with client(url) as api, refused("Cannot list keys"):
        listing = api.list_keys(project)
    if as_json:
        return print_json(listing)
    table = Table("id", "prefix", "name", "role", "created", "last used", "revoked",
                  title=f"keys of {project or 'the instance'}")
    for key in listing.keys:
        table.add_row(str(key.id), key.prefix, key.name, key.role, _when(key.created_at), _when(key.last_used_at),
                      _when(key.revoked_at))
    out.print(table)


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for (recorded as the actor of its changes).")],
    role: Annotated[str, typer.Option(help="reader, writer or admin.")] = "writer",
    project: Project = None,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Issue a key. Its secret is printed on stdout, this once: store it now."""
    with client(url) as api, refused("Key not created"):
        issued = api.create_key(name, role, project=project)
    console.print(f"key {issued.id} ({issued.role} of {project or 'the instance'}); its secret, shown once:")
    out.print(issued.secret)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id.")], url: ServiceUrl = DEFAULT_URL) -> None:
    """Revoke a key: it stops working at once, everywhere."""
    with client(url) as api, refused("Key not revoked"):
        revoked = api.revoke_key(key_id)
    console.print(f"revoked key {revoked.id} ({revoked.name})")


@keys_cli.command("rotate")
def keys_rotate(key_id: Annotated[str, typer.Argument(help="The key's id.")], url: ServiceUrl = DEFAULT_URL) -> None:
    """A new secret for a key (same name and role); the old one is revoked. Prints the new secret once."""
    with client(url) as api, refused("Key not rotated"):
        issued = api.rotate_key(key_id)
    console.print(f"key {issued.id} replaces {key_id}; its secret, shown once:")
    out.print(issued.secret)
