"""The Jinja2 environment of the UI: one template folder, and the filters pages share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic.alias_generators import to_camel

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def compact_json(value: Any, limit: int = 120) -> str:
    """One line of JSON, cut at `limit` characters, for table cells."""
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def ago(value: Any) -> str:
    """'3 min ago' for recent instants, the date beyond a week."""
    moment = _moment(value)
    if moment is None:
        return "—"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    for limit, unit, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600), (7 * 86400, "d", 86400)):
        if seconds < limit:
            return f"{max(0, int(seconds // size))} {unit} ago"
    return moment.strftime("%Y-%m-%d")


def timestamp(value: Any) -> str:
    moment = _moment(value)
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def with_query(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one), so every
    filter, page and version is a URL that can be bookmarked and shared. Repeated
    parameters (a comparison's candidates) are kept as they are."""
    kept = [(key, value) for key, value in request.query_params.multi_items() if key not in changes]
    kept += [(key, str(value)) for key, value in changes.items() if value is not None and value != ""]
    query = urlencode(kept)
    return request.url.path + ("?" + query if query else "")


def percent(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:.{digits}f}%"


def number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.{digits}f}".rstrip("0").rstrip(".") if digits else f"{float(value):,.0f}"


def icon(name: str) -> Markup:
    """An inline SVG icon from the small set the pages use (no icon font to load)."""
    paths = ICONS.get(name, "")
    return Markup(
        '<svg class="icon" viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" '
        f'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">{paths}</svg>'
    )


ICONS = {
    "database": '<ellipse cx="12" cy="5" rx="9" ry="3"/><path d="M3 5v14c0 1.7 4 3 9 3s9-1.3 9-3V5"/>'
                '<path d="M3 12c0 1.7 4 3 9 3s9-1.3 9-3"/>',
    "play": '<polygon points="6 3 20 12 6 21 6 3"/>',
    "compare": '<path d="M8 3v18M16 3v18M3 8h5M16 16h5"/>',
    "activity": '<polyline points="22 12 18 12 15 21 9 3 6 12 2 12"/>',
    "book": '<path d="M4 19.5A2.5 2.5 0 0 1 6.5 17H20V3H6.5A2.5 2.5 0 0 0 4 5.5z"/><path d="M4 19.5V21h16"/>',
    "plus": '<path d="M12 5v14M5 12h14"/>',
    "copy": '<rect x="9" y="9" width="13" height="13" rx="2"/><path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/>',
    "trash": '<path d="M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6"/>',
    "search": '<circle cx="11" cy="11" r="7"/><path d="m21 21-4.3-4.3"/>',
    "upload": '<path d="M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4M17 8l-5-5-5 5M12 3v12"/>',
    "download": '<path d="M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4M7 10l5 5 5-5M12 15V3"/>',
    "clock": '<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/>',
    "x": '<path d="M18 6 6 18M6 6l12 12"/>',
    "key": '<circle cx="7.5" cy="15.5" r="4.5"/><path d="m10.7 12.3 9.8-9.8M17 6l3 3M14.5 8.5l2 2"/>',
}

def field_path(path: tuple[str, ...]) -> str:
    """A changed field's path as pages show it (as the API names it): `expectedOutput.answer`."""
    return ".".join((to_camel(path[0]), *path[1:]))


templates.env.filters.update(
    pretty_json=pretty_json, compact_json=compact_json, ago=ago, timestamp=timestamp, percent=percent,
    number=number, field_path=field_path,
)
def project_name(request: Request) -> str:
    """The signed-in key's project, for the side bar."""
    principal = request.state.principal
    book = request.app.state.ledger.access.book
    project = book.projects.get(principal.project_id)
    return project.name if project else "?"


def can(request: Request, role: str) -> bool:
    from evalledger.ui.session import can as allowed

    return allowed(request, role)


templates.env.globals.update(with_query=with_query, icon=icon, can=can, project_name=project_name)
