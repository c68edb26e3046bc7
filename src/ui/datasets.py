"""Pages for datasets: the list (search, paging), create, duplicate, delete, and a dataset's
details and JSON Schemas. The items pages are in items.py, history in history.py, import in
imports.py; what they share about "a dataset at a version" is `DatasetAt` here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from evalledger.bootstrap import Ledger
from evalledger.domain.errors import DomainError, InvalidRequestError, SchemaViolationError, VersionNotFoundError
from evalledger.projections.dataset_queries import DatasetView, TagView, VersionView
from evalledger.ui.app import PageRoute
from evalledger.ui.forms import FormError, actor_of, json_field, text_field
from evalledger.ui.templating import pretty_json, templates
from evalledger.ui.session import principal_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PER_PAGE = 25
VERSION_CHOICES = 200


def ledger_of(request: Request) -> Ledger:
    return request.app.state.ledger


def parse_as_of(text: str | None) -> datetime | None:
    """An "as of" instant from the URL: ISO 8601; without a zone it is UTC (what the
    date-time field of the version picker sends)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FormError("asOf", f"“{text}” is not a date and time (e.g. 2026-11-30T14:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class DatasetAt:
    """A dataset as a page shows it: its current details, and the version the page is about
    (from `?version=N` or `?asOf=...`, else the current one)."""

    dataset: DatasetView
    version: int
    as_of: str | None
    info: VersionView | None
    versions: list[VersionView]
    tags: list[TagView] = field(default_factory=list)  # the dataset's version tags, by name

    @property
    def current(self) -> int:
        return self.dataset.version

    @property
    def is_old(self) -> bool:
        return self.version != self.current

    @property
    def vq(self) -> str:
        """The query string that keeps a link at this version ("" at the current one)."""
        return f"?version={self.version}" if self.is_old else ""

    def context(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "at": self, "nav": "datasets"}


def dataset_at(request: Request, dataset_id: UUID, version: int | None = None, as_of: str | None = None) -> DatasetAt:
    queries = ledger_of(request).dataset_queries
    dataset = queries.get_dataset(dataset_id)
    try:
        moment = parse_as_of(as_of)
    except FormError as error:
        raise InvalidPageInput(error.message) from None
    current = dataset.version
    if version is not None and version > current:
        raise VersionNotFoundError(f"dataset {dataset_id} has no version {version} (current version is {current})")
    # The dataset row was just read: only an "as of" instant needs another query to resolve.
    at = version if version is not None else (queries.resolve_version(dataset_id, None, moment) if moment else current)
    versions = queries.recent_versions(dataset_id, current, VERSION_CHOICES)
    info = next((v for v in versions if v.version == at), None) or queries.version_row(dataset_id, at)
    return DatasetAt(dataset=dataset, version=at, as_of=as_of if version is None and moment else None,
                     info=info, versions=versions, tags=queries.list_tags(dataset_id))


class InvalidPageInput(InvalidRequestError):
    """A query parameter a page cannot read (answered 422 with the page's error view)."""


VersionParam = Annotated[int | None, Query(ge=0, le=2**31 - 1)]
AsOfParam = Annotated[str | None, Query(alias="asOf", max_length=64)]
PageParam = Annotated[int, Query(ge=0, le=1_000_000)]


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/datasets", status_code=303)


@router.get("/datasets", response_class=HTMLResponse)
def dataset_list(
    request: Request,
    search: Annotated[str | None, Query(max_length=200)] = None,
    page: PageParam = 0,
) -> HTMLResponse:
    return _list_page(request, search=search, page=page)


def _list_page(request: Request, *, search: str | None, page: int, form: dict[str, Any] | None = None,
               errors: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    rows, total = ledger_of(request).dataset_queries.list_datasets_overview(
        search=(search or "").strip() or None, page=page, per_page=PER_PAGE,
        project_id=principal_of(request).project_id,
    )
    context = {
        "datasets": rows, "total": total, "page": page, "per_page": PER_PAGE, "search": search or "",
        "has_more": (page + 1) * PER_PAGE < total, "form": form or {}, "errors": errors or {},
        "nav": "datasets",
    }
    # A search typed in the box replaces only the table (htmx); a full load renders the page.
    template = "datasets/_table.html" if request.headers.get("HX-Target") == "dataset-table" else "datasets/list.html"
    return templates.TemplateResponse(request, template, context, status_code=status_code)


@router.post("/datasets")
async def create_dataset(request: Request) -> Response:
    form = await request.form()
    values = {key: str(form.get(key) or "") for key in ("name", "description", "inputSchema", "expectedOutputSchema")}
    try:
        name = text_field(form, "name", label="Name", required=True)
        description = text_field(form, "description", label="Description", max_length=5000)
        input_schema = json_field(form, "inputSchema", label="Input schema")
        expected_schema = json_field(form, "expectedOutputSchema", label="Expected output schema")
        dataset = await asyncio.to_thread(
            ledger_of(request).dataset_use_cases.create_dataset,
            name=name, description=description, input_schema=input_schema,
            expected_output_schema=expected_schema, project_id=principal_of(request).project_id,
            actor=actor_of(request),
        )
    except FormError as error:
        return _list_page(request, search=None, page=0, form={**values, "open": True},
                          errors={error.field: error.message}, status_code=422)
    except DomainError as error:
        field = "inputSchema" if "inputSchema" in error.detail else (
            "expectedOutputSchema" if "expectedOutputSchema" in error.detail else "name")
        return _list_page(request, search=None, page=0, form={**values, "open": True},
                          errors={field: error.detail}, status_code=422)
    return RedirectResponse(f"/datasets/{dataset.id}", status_code=303)


@router.get("/datasets/{dataset_id}/duplicate", response_class=HTMLResponse)
def duplicate_form(request: Request, dataset_id: UUID) -> HTMLResponse:
    """The duplicate dialog's form (the list page loads it into its dialog)."""
    dataset = ledger_of(request).dataset_queries.get_dataset(dataset_id)
    return templates.TemplateResponse(request, "partials/duplicate_form.html",
                                      {"dup_dataset": dataset, "dup_version": dataset.version})


@router.post("/datasets/{dataset_id}/duplicate")
async def duplicate_dataset(request: Request, dataset_id: UUID) -> Response:
    """A copy of the dataset at its current version or a chosen one, under a new name."""
    form = await request.form()
    try:
        name = text_field(form, "name", label="Name", required=True)
        version_text = str(form.get("version") or "").strip()
        if version_text and not version_text.isdigit():
            raise FormError("version", "Version must be a whole number")
        version = int(version_text) if version_text else None
        copy = await asyncio.to_thread(
            ledger_of(request).dataset_use_cases.duplicate_dataset, dataset_id, name=name, version=version,
            actor=actor_of(request), reason=text_field(form, "reason", label="Reason", max_length=2000) or None,
        )
    except (FormError, DomainError) as error:
        message = error.message if isinstance(error, FormError) else error.detail
        return templates.TemplateResponse(request, "partials/form_error.html", {"message": message},
                                          status_code=422)
    return redirect(request, f"/datasets/{copy.id}")


def redirect(request: Request, url: str) -> Response:
    """Go to `url`: an htmx request follows HX-Redirect, a plain form post a 303."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.post("/datasets/{dataset_id}/delete")
async def delete_dataset(request: Request, dataset_id: UUID) -> Response:
    form = await request.form()
    reason = text_field(form, "reason", label="Reason", max_length=2000) or None
    await asyncio.to_thread(ledger_of(request).dataset_use_cases.delete_dataset, dataset_id,
                            actor=actor_of(request), reason=reason)
    return RedirectResponse("/datasets", status_code=303)


@router.post("/actor")
async def set_actor(request: Request) -> Response:
    """Remember the name this browser's changes are recorded under."""
    form = await request.form()
    name = text_field(form, "actor", label="Name", max_length=200)
    back = str(form.get("next") or "/datasets")
    response = RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/datasets",
                                status_code=303)
    response.set_cookie("evalledger_actor", name, max_age=365 * 86400, httponly=True, samesite="lax")
    return response


# -- details and schemas ------------------------------------------------------------------


@router.get("/datasets/{dataset_id}/settings", response_class=HTMLResponse)
def settings_page(request: Request, dataset_id: UUID) -> HTMLResponse:
    at = dataset_at(request, dataset_id)
    d = at.dataset
    form = {"name": d.name, "description": d.description,
            "inputSchema": pretty_json(d.input_schema) if d.input_schema is not None else "",
            "expectedOutputSchema": pretty_json(d.expected_output_schema) if d.expected_output_schema is not None
            else ""}
    return _settings(request, at, form)


def _settings(request: Request, at: DatasetAt, form: dict[str, Any], errors: dict[str, str] | None = None,
              failing: list[dict[str, Any]] | None = None, saved: bool = False, status_code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, "datasets/settings.html", {
        **at.context(), "tab": "settings", "form": form, "errors": errors or {}, "failing": failing or [],
        "saved": saved,
    }, status_code=status_code)


@router.post("/datasets/{dataset_id}/settings", response_class=HTMLResponse)
async def save_settings(request: Request, dataset_id: UUID) -> HTMLResponse:
    """Change name, description and schemas. A schema the current items would violate is
    refused by the domain: the page lists those items with each error, and nothing changes."""
    form = await request.form()
    values = {key: str(form.get(key) or "") for key in ("name", "description", "inputSchema", "expectedOutputSchema", "reason")}
    at = await asyncio.to_thread(dataset_at, request, dataset_id)
    try:
        changes = {
            "name": text_field(form, "name", label="Name", required=True),
            "description": text_field(form, "description", label="Description", max_length=5000),
            "input_schema": json_field(form, "inputSchema", label="Input schema"),
            "expected_output_schema": json_field(form, "expectedOutputSchema", label="Expected output schema"),
        }
        current = {"name": at.dataset.name, "description": at.dataset.description,
                   "input_schema": at.dataset.input_schema, "expected_output_schema": at.dataset.expected_output_schema}
        changes = {k: v for k, v in changes.items() if v != current[k]}
        if changes:
            await asyncio.to_thread(
                ledger_of(request).dataset_use_cases.change_details, dataset_id, changes, actor=actor_of(request),
                reason=text_field(form, "reason", label="Reason", max_length=2000) or None,
            )
    except FormError as error:
        return _settings(request, at, values, {error.field: error.message}, status_code=422)
    except SchemaViolationError as error:
        return _settings(request, at, values, {"schemas": error.detail},
                         failing=error.extra.get("failing_items", []), status_code=422)
    except DomainError as error:
        field = next((f for f in ("inputSchema", "expectedOutputSchema") if f in error.detail), "name")
        return _settings(request, at, values, {field: error.detail}, status_code=422)
    at = await asyncio.to_thread(dataset_at, request, dataset_id)
    return _settings(request, at, {**values, "reason": ""}, saved=bool(changes))
