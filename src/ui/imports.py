"""The import page: upload a CSV / JSON / JSONL file, see its first rows, map CSV columns to
item fields, check it (a dry run with row-numbered errors), then import it as one version.

The upload is kept in a temporary folder of its own between the steps (named by a random
token), so checking and importing never send the file again. The work runs in a thread
(asyncio.to_thread): a 100k-row file keeps the page and the service answering."""

from __future__ import annotations

import asyncio
import csv
import itertools
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from evalledger.domain.errors import DomainError, InvalidRequestError
from evalledger.service_layer.transfer import MODES, ImportSummary, import_file
from evalledger.transfer.importing import ROLES, ImportFileError, detect_format
from evalledger.api.security import declare
from evalledger.ui.app import PageRoute
from evalledger.ui.datasets import dataset_at, ledger_of
from evalledger.ui.forms import FormError, actor_of, text_field
from evalledger.ui.templating import templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)

UPLOADS = Path(tempfile.gettempdir()) / "evalledger-ui-imports"
KEEP_SECONDS = 24 * 3600
PREVIEW_ROWS = 10
# Up to this size the upload answers with a first dry run; a bigger file shows its first
# rows at once and is checked when the person asks (a dry run reads every row).
CHECK_ON_UPLOAD_BYTES = 2 * 1024 * 1024
# Column names people commonly use for each role, to pre-fill the mapping (the person can
# change every choice; the product's own default is: a column named like a role takes it).
GUESSES = {
    "input": {"input", "question", "prompt", "query", "text"},
    "expectedOutput": {"expectedoutput", "expected_output", "expected", "answer", "output", "reference", "label"},
    "externalId": {"externalid", "external_id", "id", "key"},
}


def _guess_role(column: str) -> str:
    name = column.strip().lower()
    for role, names in GUESSES.items():
        if name in names:
            return role
    return "metadata" if name == "metadata" else "ignore"


def _upload_dir(token: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{32}", token):
        raise FormError("token", "this upload is unknown or has expired; choose the file again")
    folder = UPLOADS / token
    if not folder.is_dir():
        raise FormError("token", "this upload is unknown or has expired; choose the file again")
    return folder


def _uploaded_file(token: str) -> Path:
    files = [p for p in _upload_dir(token).iterdir() if p.is_file()]
    if not files:
        raise FormError("token", "this upload is unknown or has expired; choose the file again")
    return files[0]


def _forget_old_uploads() -> None:
    if not UPLOADS.is_dir():
        return
    cutoff = time.time() - KEEP_SECONDS
    for folder in UPLOADS.iterdir():
        if folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


def _text_preview(path: Path) -> list[str]:
    """The first lines of a JSON / JSONL file, as text, for the person to recognise it."""
    with path.open(encoding="utf-8-sig", errors="replace") as text:
        return [line.rstrip("\n")[:500] for line in itertools.islice(text, PREVIEW_ROWS)]


def _csv_preview(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and first rows of a CSV file, as they are (before any mapping)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as text:
            rows = list(itertools.islice(csv.reader(text), PREVIEW_ROWS + 1))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ImportFileError(f"the CSV file cannot be read: {error}") from None
    if not rows:
        raise ImportFileError("the CSV file is empty")
    return rows[0], rows[1:]


@router.get("/datasets/{dataset_id}/import", response_class=HTMLResponse, openapi_extra=declare("writer"))
def import_page(request: Request, dataset_id: UUID) -> HTMLResponse:
    at = dataset_at(request, dataset_id)
    return templates.TemplateResponse(request, "datasets/import.html", {**at.context(), "tab": "items"})


@router.post("/datasets/{dataset_id}/import/upload", response_class=HTMLResponse)
async def upload(request: Request, dataset_id: UUID) -> Response:
    """Keep the file, then show its first rows, the column mapping and a first check."""
    at = await asyncio.to_thread(dataset_at, request, dataset_id)
    form = await request.form(max_files=1, max_part_size=2**40)
    upload_file = form.get("file")
    if upload_file is None or isinstance(upload_file, str) or not upload_file.filename:
        return _problem(request, "Choose a CSV, JSON or JSONL file first.")
    filename = Path(upload_file.filename).name
    try:
        file_format = detect_format(filename, None)
    except ImportFileError as error:
        return _problem(request, f"“{filename}”: {error}. Name it .csv, .json or .jsonl.")
    await asyncio.to_thread(_forget_old_uploads)
    token = uuid4().hex
    folder = UPLOADS / token
    folder.mkdir(parents=True)
    path = folder / filename
    with path.open("wb") as out:
        while chunk := await upload_file.read(1 << 20):
            await asyncio.to_thread(out.write, chunk)
    columns: list[str] = []
    raw_rows: list[list[str]] = []
    if file_format == "csv":
        try:
            columns, raw_rows = await asyncio.to_thread(_csv_preview, path)
        except ImportFileError as error:
            shutil.rmtree(folder, ignore_errors=True)
            return _problem(request, f"“{filename}”: {error}")
    lines = [] if file_format == "csv" else await asyncio.to_thread(_text_preview, path)
    mapping = {column: _guess_role(column) for column in columns}
    size = path.stat().st_size
    check = await _check(request, dataset_id, path, mapping, mode="append") if size <= CHECK_ON_UPLOAD_BYTES else None
    return templates.TemplateResponse(request, "datasets/_import_preview.html", {
        **at.context(), "token": token, "filename": filename, "format": file_format, "size": size, "lines": lines,
        "columns": columns, "raw_rows": raw_rows, "mapping": mapping, "roles": ROLES, "modes": MODES,
        "check": check,
    })


def _problem(request: Request, message: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "partials/form_error.html", {"message": message}, status_code=422)


def _mapping_of(form: Any) -> dict[str, str]:
    mapping = {}
    for key, value in form.multi_items():
        if key.startswith("map:"):
            if value not in ROLES:
                raise FormError(key, f"“{value}” is not a role; choose one of {', '.join(ROLES)}")
            mapping[key[4:]] = str(value)
    return mapping


@dataclass(frozen=True, slots=True)
class ImportRefused:
    """The file as a whole was refused: why, and the rows found wrong."""

    refused: str
    errors: list[dict[str, Any]]


async def _check(request: Request, dataset_id: UUID, path: Path, mapping: dict[str, str], *, mode: str,
                 run: bool = False, skip_invalid: bool = False,
                 reason: str | None = None) -> ImportSummary | ImportRefused:
    """A dry run (or the import itself when `run`): the import's summary, or why the file as a
    whole was refused."""
    try:
        return await asyncio.to_thread(
            import_file, ledger_of(request).dataset_use_cases, dataset_id, path, filename=path.name, mode=mode,
            dry_run=not run, skip_invalid=skip_invalid, mapping=[f"{c}={r}" for c, r in mapping.items()],
            actor=actor_of(request), reason=reason,
        )
    except InvalidRequestError as error:
        return ImportRefused(error.detail, error.extra.get("rows", []))


async def _step(request: Request, dataset_id: UUID, token: str, *, run: bool) -> Response:
    form = await request.form()
    try:
        path = _uploaded_file(token)
        mapping = _mapping_of(form)
        mode = str(form.get("mode") or "append")
        if mode not in MODES:
            raise FormError("mode", f"choose one of {', '.join(MODES)}")
        reason = text_field(form, "reason", label="Reason", max_length=2000) or None
    except FormError as error:
        return _problem(request, error.message)
    result = await _check(request, dataset_id, path, mapping, mode=mode, run=run,
                          skip_invalid=form.get("skipInvalid") == "1", reason=reason)
    refused = isinstance(result, ImportRefused)
    done = run and not refused
    if done:
        shutil.rmtree(path.parent, ignore_errors=True)
    at = await asyncio.to_thread(dataset_at, request, dataset_id)
    return templates.TemplateResponse(request, "datasets/_import_result.html", {
        **at.context(), "check": result, "done": done, "ran": run,
    }, status_code=422 if refused else 200)


@router.post("/datasets/{dataset_id}/import/{token}/check", response_class=HTMLResponse)
async def check_import(request: Request, dataset_id: UUID, token: str) -> Response:
    return await _step(request, dataset_id, token, run=False)


@router.post("/datasets/{dataset_id}/import/{token}/run", response_class=HTMLResponse)
async def run_import(request: Request, dataset_id: UUID, token: str) -> Response:
    try:
        return await _step(request, dataset_id, token, run=True)
    except DomainError as error:
        return _problem(request, error.detail)
