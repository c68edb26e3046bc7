"""The dataset page: its items at any version (paged, searched, filtered by metadata), the
item panel (view, edit with a JSON editor, delete, history), adding items, and what can be
done with a selection of items (export, new dataset, copy, delete)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from evalledger.domain.errors import DomainError, ItemNotFoundError, SchemaViolationError
from evalledger.projections.dataset_queries import ItemView, field_changes
from evalledger.transfer.exporting import MEDIA_TYPES, export_items
from evalledger.api.security import declare
from evalledger.ui.app import PageRoute, error_page
from evalledger.ui.datasets import (
    PER_PAGE, AsOfParam, DatasetAt, PageParam, VersionParam, dataset_at, ledger_of, redirect,
)
from evalledger.ui.forms import FormError, actor_of, json_field, text_field
from evalledger.ui.templating import pretty_json, templates
from evalledger.ui.session import principal_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The editor's fields: the form's (camelCase) name, the item's attribute, the label.
EDITOR_FIELDS = (("input", "input", "Input"), ("expectedOutput", "expected_output", "Expected output"),
                 ("metadata", "metadata", "Metadata"))
MAX_SELECTION = 10_000


def split_filter(meta: str | None) -> tuple[str | None, str | None]:
    """`key=value` from the metadata filter box (a bare `key` matches an empty value)."""
    text = (meta or "").strip()
    if not text:
        return None, None
    key, _, value = text.partition("=")
    return key.strip() or None, value.strip()


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(
    request: Request,
    dataset_id: UUID,
    page: PageParam = 0,
    version: VersionParam = None,
    as_of: AsOfParam = None,
    search: Annotated[str | None, Query(max_length=500)] = None,
    meta: Annotated[str | None, Query(max_length=500)] = None,
    item: UUID | None = None,
) -> HTMLResponse:
    at = dataset_at(request, dataset_id, version, as_of)
    key, value = split_filter(meta)
    items, total = ledger_of(request).dataset_queries.find_items(
        dataset_id, at.version, page=page, per_page=PER_PAGE, search=(search or "").strip() or None,
        meta_key=key, meta_value=value,
    )
    selected, missing = None, None
    if item is not None:
        try:
            selected = ledger_of(request).dataset_queries.get_item(dataset_id, item, at.version)
        except ItemNotFoundError:
            missing = item  # e.g. a link to an item deleted since: the page still opens, and says so
    return templates.TemplateResponse(request, "datasets/detail.html", {
        **at.context(), "tab": "items", "items": items, "total": total, "page": page, "per_page": PER_PAGE,
        "has_more": (page + 1) * PER_PAGE < total, "search": search or "", "meta": meta or "",
        "filtered": bool((search or "").strip() or key), "item": selected,
        "editor": _blank_editor(), "missing_item": missing,
    })


@router.get("/datasets/{dataset_id}/copy-targets", response_class=HTMLResponse)
def copy_targets(request: Request, dataset_id: UUID) -> HTMLResponse:
    """The datasets a selection can be copied to (loaded when the Copy dialog opens, so the
    dataset page itself stays one cheap read)."""
    project = ledger_of(request).dataset_queries.project_of_dataset(dataset_id)
    targets, _ = ledger_of(request).dataset_queries.list_datasets_overview(search=None, page=0, per_page=500,
                                                                           project_id=project)
    return templates.TemplateResponse(request, "partials/copy_targets.html",
                                      {"targets": [t for t in targets if t.id != dataset_id]})


def _blank_editor() -> dict[str, Any]:
    return {"text": {"input": "", "expectedOutput": "", "metadata": "{}", "externalId": ""}, "errors": {}}


def _editor_of(item: ItemView) -> dict[str, Any]:
    values = {name: pretty_json(getattr(item, attribute)) for name, attribute, _ in EDITOR_FIELDS}
    if item.expected_output is None:
        values["expectedOutput"] = ""
    values["externalId"] = item.external_id or ""
    return {"text": values, "errors": {}}


# -- the item panel ------------------------------------------------------------------------


@router.get("/datasets/{dataset_id}/items/{item_id}/panel", response_class=HTMLResponse)
def item_panel(request: Request, dataset_id: UUID, item_id: UUID, version: VersionParam = None,
               as_of: AsOfParam = None) -> HTMLResponse:
    at = dataset_at(request, dataset_id, version, as_of)
    item = ledger_of(request).dataset_queries.get_item(dataset_id, item_id, at.version)
    return templates.TemplateResponse(request, "partials/item_panel.html", {**at.context(), "item": item})


@router.get("/datasets/{dataset_id}/items/{item_id}/edit", response_class=HTMLResponse, openapi_extra=declare("writer"))
def item_editor(request: Request, dataset_id: UUID, item_id: UUID) -> HTMLResponse:
    at = dataset_at(request, dataset_id)
    item = ledger_of(request).dataset_queries.get_item(dataset_id, item_id, at.version)
    return templates.TemplateResponse(request, "partials/item_editor.html",
                                      {**at.context(), "item": item, "editor": _editor_of(item)})


def _read_editor(form: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """The editor's text as typed, and the item fields it holds. Raises FormError for the
    first field that is not valid JSON."""
    values = {name: str(form.get(name) or "") for name in ("input", "expectedOutput", "metadata", "externalId")}
    fields = {
        "input": json_field(form, "input", label="Input", optional=False),
        "expected_output": json_field(form, "expectedOutput", label="Expected output"),
        "metadata": json_field(form, "metadata", label="Metadata") or {},
        "external_id": text_field(form, "externalId", label="External id", max_length=256) or None,
    }
    if not isinstance(fields["metadata"], dict):
        raise FormError("metadata", "Metadata must be a JSON object, e.g. {\"topic\": \"billing\"}")
    return values, fields


def _field_errors(error: DomainError) -> dict[str, str]:
    """A refused item write's errors by editor field: schema violations name their field
    (`items/0/input/...`); anything else goes under the form."""
    if isinstance(error, SchemaViolationError):
        errors: dict[str, list[str]] = {}
        for problem in error.extra.get("errors", []):
            parts = problem["field"].split("/")
            name = parts[2] if len(parts) > 2 and parts[0] == "items" else "form"
            where = "/".join(parts[3:])
            errors.setdefault(name, []).append(f"{where + ': ' if where else ''}{problem['message']}")
        return {name: "Does not match the dataset's schema — " + "; ".join(found) for name, found in errors.items()}
    field = "externalId" if "externalId" in error.detail or "external" in error.problem_type else "form"
    return {field: error.detail}


async def _write_item(request: Request, form: Any,
                      write: Callable[..., Any]) -> tuple[Any, dict[str, str], dict[str, str]]:
    """Write the editor's item with `write(fields, actor=, reason=)` once every field is valid:
    what it wrote, the editor's text as typed, and the errors by field (none if written)."""
    values = {name: str(form.get(name) or "") for name in ("input", "expectedOutput", "metadata", "externalId")}
    try:
        values, fields = _read_editor(form)
        reason = text_field(form, "reason", label="Reason", max_length=2000) or None
        written = await asyncio.to_thread(write, fields, actor=actor_of(request), reason=reason)
    except FormError as error:
        return None, values, {error.field: error.message}
    except DomainError as error:
        return None, values, _field_errors(error)
    return written, values, {}


def back_url(request: Request, **changes: Any) -> str:
    """The page an htmx request came from (HX-Current-URL), at the current version, with
    some query parameters changed: where to go after a change."""
    current = urlsplit(request.headers.get("HX-Current-URL") or "")
    own = f"/datasets/{request.path_params['dataset_id']}"
    path = current.path if current.path.startswith(own) else own
    params = {k: v for k, v in parse_qsl(current.query) if k not in ("version", "asOf")}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return path + ("?" + query if query else "")


@router.post("/datasets/{dataset_id}/items/{item_id}/edit", response_class=HTMLResponse)
async def save_item(request: Request, dataset_id: UUID, item_id: UUID) -> Response:
    """Save the editor: nothing is written until every field is valid JSON and the item
    satisfies the dataset's schemas; otherwise the editor comes back with the errors inline."""
    form = await request.form()
    at = await asyncio.to_thread(dataset_at, request, dataset_id)
    item = await asyncio.to_thread(ledger_of(request).dataset_queries.get_item, dataset_id, item_id, at.version)
    use_cases = ledger_of(request).dataset_use_cases
    _, values, errors = await _write_item(
        request, form, lambda fields, **who: use_cases.update_item(dataset_id, item_id, fields, **who))
    if not errors:
        return redirect(request, back_url(request, item=item_id))
    return templates.TemplateResponse(request, "partials/item_editor.html", {
        **at.context(), "item": item, "editor": {"text": values, "errors": errors},
        "reason": str(form.get("reason") or ""),
    }, status_code=422)


@router.post("/datasets/{dataset_id}/items", response_class=HTMLResponse)
async def add_item(request: Request, dataset_id: UUID) -> Response:
    form = await request.form()
    at = await asyncio.to_thread(dataset_at, request, dataset_id)
    use_cases = ledger_of(request).dataset_use_cases
    written, values, errors = await _write_item(
        request, form, lambda fields, **who: use_cases.add_item(dataset_id, **fields, **who))
    if not errors:
        return redirect(request, back_url(request, item=written.item.id, page=None))
    return templates.TemplateResponse(request, "partials/item_form.html", {
        **at.context(), "editor": {"text": values, "errors": errors},
    }, status_code=422)


@router.post("/datasets/{dataset_id}/items/{item_id}/delete")
async def delete_item(request: Request, dataset_id: UUID, item_id: UUID) -> Response:
    form = await request.form()
    try:
        await asyncio.to_thread(
            ledger_of(request).dataset_use_cases.delete_items, dataset_id, [item_id], actor=actor_of(request),
            reason=text_field(form, "reason", label="Reason", max_length=2000) or None,
        )
    except (FormError, DomainError) as error:
        return _selection_failed(request, error.message if isinstance(error, FormError) else error.detail)
    return redirect(request, back_url(request, item=None))


@router.get("/datasets/{dataset_id}/items/{item_id}/history", response_class=HTMLResponse)
def item_history(request: Request, dataset_id: UUID, item_id: UUID) -> HTMLResponse:
    """Every revision of an item, newest first, each with the fields it changed."""
    at = dataset_at(request, dataset_id)
    revisions = ledger_of(request).dataset_queries.item_history(dataset_id, item_id)
    entries = []
    for index, revision in enumerate(revisions):
        older = revisions[index + 1] if index + 1 < len(revisions) else None
        if older is None:
            kind, changes = "created", []
        elif revision.deleted:
            kind, changes = "deleted", []
        else:
            kind = "restored" if older.deleted else "changed"
            changes = [c for name in ("external_id", "input", "expected_output", "metadata")
                       for c in field_changes(getattr(older, name), getattr(revision, name), (name,))]
        entries.append({"revision": revision, "kind": kind, "changes": changes})
    return templates.TemplateResponse(request, "datasets/item_history.html", {
        **at.context(), "tab": "items", "item_id": item_id, "entries": entries,
    })


# -- selections ----------------------------------------------------------------------------


def _selection(request: Request, form: Any, dataset_id: UUID) -> tuple[DatasetAt, list[UUID]]:
    """The dataset version the selection was made at, and the chosen item ids: the checked
    rows, or every item matching the page's search and filter when "all matching" is on."""
    version_text = str(form.get("version") or "")
    at = dataset_at(request, dataset_id, int(version_text) if version_text.isdigit() else None)
    if form.get("all") == "1":
        key, value = split_filter(str(form.get("meta") or ""))
        ids = ledger_of(request).dataset_queries.matching_item_ids(
            dataset_id, at.version, search=str(form.get("search") or "").strip() or None, meta_key=key,
            meta_value=value, limit=MAX_SELECTION + 1,
        )
    else:
        try:
            ids = list(dict.fromkeys(UUID(str(value)) for value in form.getlist("ids")))
        except ValueError:
            raise FormError("ids", "the selection holds something that is not an item id") from None
    if not ids:
        raise FormError("ids", "Select at least one item first.")
    if len(ids) > MAX_SELECTION:
        raise FormError("ids", f"A selection may hold at most {MAX_SELECTION:,} items.")
    return at, ids


def _selection_failed(request: Request, message: str) -> HTMLResponse:
    """Say what is wrong with the selection: beside the buttons (htmx), else as a page."""
    if request.headers.get("HX-Request"):
        return templates.TemplateResponse(request, "partials/form_error.html", {"message": message}, status_code=422)
    return error_page(request, 422, message)


@router.post("/datasets/{dataset_id}/selection/export", openapi_extra=declare("reader"))
async def export_selection(request: Request, dataset_id: UUID) -> Response:
    form = await request.form()
    file_format = str(form.get("format") or "jsonl")
    try:
        if file_format not in MEDIA_TYPES:
            raise FormError("format", "Choose CSV, JSON or JSONL.")
        at, ids = await asyncio.to_thread(_selection, request, form, dataset_id)
    except FormError as error:
        return _selection_failed(request, error.message)
    queries = ledger_of(request).dataset_queries

    def pages() -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(ids), 1000):
            yield queries.items_by_ids(dataset_id, at.version, ids[start:start + 1000])

    filename = f"{at.dataset.name}-v{at.version}-selection.{file_format}".replace('"', "")
    return StreamingResponse(export_items(pages(), file_format), media_type=MEDIA_TYPES[file_format], headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "X-Dataset-Version": str(at.version)})


async def _on_selection(request: Request, dataset_id: UUID, act: Callable[[Any, Any, list[UUID]], str]) -> Response:
    """Do `act(form, at, ids)` to the selected items (in a worker thread) and go where it
    says; a refusal is said beside the buttons (htmx) or as a page."""
    form = await request.form()

    def run() -> str:
        at, ids = _selection(request, form, dataset_id)
        return act(form, at, ids)

    try:
        target = await asyncio.to_thread(run)
    except FormError as error:
        return _selection_failed(request, error.message)
    except DomainError as error:
        return _selection_failed(request, error.detail)
    return redirect(request, target)


@router.post("/datasets/{dataset_id}/selection/new-dataset")
async def dataset_from_selection(request: Request, dataset_id: UUID) -> Response:
    def new_dataset(form: Any, at: Any, ids: list[UUID]) -> str:
        name = text_field(form, "name", label="Name", required=True)
        created = ledger_of(request).dataset_use_cases.dataset_from_items(
            name=name, source_dataset_id=dataset_id, item_ids=ids, version=at.version, actor=actor_of(request))
        return f"/datasets/{created.id}"

    return await _on_selection(request, dataset_id, new_dataset)


@router.post("/datasets/{dataset_id}/selection/copy")
async def copy_selection(request: Request, dataset_id: UUID) -> Response:
    def copy(form: Any, at: Any, ids: list[UUID]) -> str:
        try:
            target = UUID(str(form.get("target") or ""))
        except ValueError:
            raise FormError("target", "Choose the dataset to copy the items to.") from None
        scope, principal = ledger_of(request).scope, principal_of(request)
        if scope.dataset(principal, target) != scope.dataset(principal, dataset_id):
            raise FormError("target", "Items are copied within a project; choose a dataset of this one.")
        ledger_of(request).dataset_use_cases.copy_items(dataset_id, target_dataset_id=target, item_ids=ids,
                                                         version=at.version, actor=actor_of(request))
        return f"/datasets/{target}"

    return await _on_selection(request, dataset_id, copy)


@router.post("/datasets/{dataset_id}/selection/delete")
async def delete_selection(request: Request, dataset_id: UUID) -> Response:
    def delete(form: Any, at: Any, ids: list[UUID]) -> str:
        if at.is_old:
            raise FormError("version", "Items can only be deleted from the current version.")
        ledger_of(request).dataset_use_cases.delete_items(dataset_id, ids, actor=actor_of(request))
        return back_url(request, item=None, page=None)

    return await _on_selection(request, dataset_id, delete)
