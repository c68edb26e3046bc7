"""Routes that move items in and out: import, export, duplicate and copy."""

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from evalledger.api import models
from evalledger.api.datasets import PROBLEMS, Actor, LedgerDep, Reason
from evalledger.api.routing import Route
from evalledger.api.wire import answer, encoder
from evalledger.api.security import PrincipalDep
from evalledger.domain.errors import InvalidRequestError
from evalledger.domain.runs import declared_scorer_ids
from evalledger.service_layer.transfer import column_roles, import_file
from evalledger.transfer.copying import OnConflict
from evalledger.transfer.exporting import MEDIA_TYPES, export_items, export_results

class DuplicateRequest(models.WireModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    version: models.Version | None = Field(default=None, description="Version to copy (default: current).")


class CopyRequest(models.WireModel):
    target_dataset_id: UUID
    item_ids: list[UUID] = Field(min_length=1, max_length=10_000)
    version: models.Version | None = None
    on_conflict: OnConflict = Field(
        default="refuse", description="An item whose externalId the target already uses: refuse the copy (409), "
        "skip the item, or drop its externalId in the copy.")


class FromItemsRequest(models.WireModel):
    name: str = Field(min_length=1, max_length=200)
    source_dataset_id: UUID
    item_ids: list[UUID] = Field(min_length=1, max_length=10_000)
    version: models.Version | None = None


async def _save_upload(request: Request, filename: str | None) -> tuple[Path, str | None]:
    """The request's file on disk (multipart `file` field, or the raw body), and its name
    (`filename` if given, else the uploaded file's)."""
    handle, name = tempfile.mkstemp(prefix="evalledger-import-")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                form = await request.form(max_files=1, max_part_size=2**40)
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise InvalidRequestError("a multipart import needs its file in the field 'file'")
                filename = filename or upload.filename
                while chunk := await upload.read(1 << 20):
                    out.write(chunk)
            else:
                async for chunk in request.stream():
                    out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, filename


def file_answer(formats: tuple[str, ...]) -> dict[str, Any]:
    """The OpenAPI answer of an export: a file in one of `formats` (by `?format=`)."""
    return {"description": "The file, as an attachment",
            "content": {MEDIA_TYPES[f].split(";")[0]: FILE_CONTENT[f] for f in formats}}


FILE_CONTENT: dict[str, dict[str, Any]] = {
    "csv": {"schema": {"type": "string"}, "example": "input,expectedOutput,metadata,externalId\n"
                                                     "What is 2+2?,4,{},q-1\n"},
    "jsonl": {"schema": {"type": "string"}, "example": '{"input": "What is 2+2?", "expectedOutput": "4"}\n'},
    "json": {"schema": {"type": "array", "items": {"type": "object"}},
             "example": [{"input": "What is 2+2?", "expectedOutput": "4", "metadata": {}, "externalId": "q-1"}]},
}


router = APIRouter(tags=["import and export"], responses=PROBLEMS, route_class=Route)


@router.post(
    "/api/datasets/{dataset_id:uuid}/items/import",
    summary="Import CSV, JSON (an array) or JSONL as one new version",
    description="Send the file as the raw body (with `?filename=` or `?format=`) or as multipart field "
    "`file`. CSV columns map to roles with `?map=column=role` (repeatable; roles: input, expectedOutput, "
    "metadata, externalId, ignore). Everything is validated before anything is written; errors name "
    "their row (the CSV header is row 1).",
    status_code=201,
    response_model=models.ImportResult,
    responses={200: {"model": models.ImportResult,
                     "description": "A dry run, or an import that changed nothing (no new version)"}},
    openapi_extra={"requestBody": {"content": {"text/csv": {}, "application/json": {},
                                               "application/x-ndjson": {}, "multipart/form-data": {}}}},
)
async def import_items(
    dataset_id: UUID,
    request: Request,
    ledger: LedgerDep,
    actor: Actor,
    file_format: Annotated[Literal["csv", "json", "jsonl"] | None, Query(alias="format")] = None,
    mode: Annotated[Literal["append", "upsert", "replace"], Query()] = "append",
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
    skip_invalid: Annotated[bool, Query(alias="skipInvalid")] = False,
    mapping: Annotated[list[str] | None, Query(alias="map", description="column=role")] = None,
    filename: Annotated[str | None, Query(max_length=1000, description="The file's name (its extension "
                                                                       "tells the format)")] = None,
    reason: Reason = None,
) -> Response:
    """Validates every row, then writes the valid items as one new version (or only checks them with
    `dryRun`)."""
    await asyncio.to_thread(ledger.dataset_queries.dataset_row, dataset_id)  # 404 before the upload is read
    column_roles(mapping)  # a malformed mapping is refused before the upload is read
    path, filename = await _save_upload(request, filename)
    try:
        outcome = await asyncio.to_thread(
            import_file, ledger.dataset_use_cases, dataset_id, path, filename=filename, file_format=file_format,
            mode=mode, dry_run=dry_run, skip_invalid=skip_invalid, mapping=mapping, actor=actor, reason=reason,
        )
    finally:
        path.unlink(missing_ok=True)
    return answer(models.ImportResult, outcome, 201 if not dry_run and outcome.new_version else 200)


@router.get("/api/datasets/{dataset_id:uuid}/items/export", summary="Export a version's items (streamed)",
            response_class=StreamingResponse, responses={200: file_answer(("csv", "json", "jsonl"))})
def export(
    dataset_id: UUID,
    ledger: LedgerDep,
    file_format: Annotated[Literal["csv", "json", "jsonl"], Query(alias="format")] = "jsonl",
    version: Annotated[int | None, Query(ge=0)] = None,
    include_ids: Annotated[bool, Query(alias="includeIds")] = False,
    tag: Annotated[str | None, Query(max_length=100, description="A version tag: the version it names")] = None,
) -> StreamingResponse:
    """Every item of a version (default: current; or the one `tag` names) as CSV, JSON or JSONL
    (`format`), streamed; `includeIds` adds the item ids."""
    at = ledger.dataset_queries.resolve_version(dataset_id, version, None, tag)
    pages = ledger.dataset_queries.iter_item_pages(dataset_id, at, page_size=5000)
    filename = f"dataset-{dataset_id}-v{at}.{file_format}"
    return StreamingResponse(
        export_items(pages, file_format, with_ids=include_ids),
        media_type=MEDIA_TYPES[file_format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "X-Dataset-Version": str(at)},
    )


@router.get("/api/datasets/runs/{run_id:uuid}/results/export", summary="Export a run's results (streamed)",
            response_class=StreamingResponse, responses={200: file_answer(("csv", "jsonl"))})
def export_run_results(
    run_id: UUID,
    ledger: LedgerDep,
    file_format: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "jsonl",
) -> StreamingResponse:
    """Every result of a run as CSV or JSONL, streamed."""
    run = ledger.run_queries.run_row(run_id)  # 404 before the stream starts
    result = encoder(models.RunResult)  # the file's rows are the results as the API answers them
    # CSV gives each scorer columns of its own: every declared scorer, then any other with a score.
    scorer_ids = [*declared_scorer_ids(run["scorers"]), *sorted(ledger.run_queries.score_summary(run_id))]
    return StreamingResponse(
        export_results(([result(r) for r in page] for page in ledger.run_queries.iter_result_pages(run_id)),
                       file_format, scorer_ids),
        media_type=MEDIA_TYPES[file_format],
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-results.{file_format}"'},
    )


@router.post("/api/datasets/{dataset_id:uuid}/duplicate", status_code=201, response_model=models.DatasetWritten,
             summary="A new dataset with a version's items (one version), recording their origin")
def duplicate(dataset_id: UUID, body: DuplicateRequest, ledger: LedgerDep, actor: Actor,
              reason: Reason = None) -> Response:
    """A new dataset with the details and the items of a version of this one; each item records where it came
    from."""
    return answer(models.DatasetWritten, ledger.dataset_use_cases.duplicate_dataset(
        dataset_id, name=body.name, version=body.version, actor=actor, reason=reason), 201)


@router.post("/api/datasets/{dataset_id:uuid}/items/{item_id:uuid}/duplicate", status_code=201,
             response_model=models.ItemsWritten, summary="Duplicate one item in its dataset (one version)")
def duplicate_item(dataset_id: UUID, item_id: UUID, ledger: LedgerDep, actor: Actor,
                   reason: Reason = None) -> Response:
    """A copy of one item in the same dataset (without its externalId), in a new version."""
    return answer(models.ItemsWritten, ledger.dataset_use_cases.duplicate_item(dataset_id, item_id, actor=actor,
                                                                             reason=reason), 201)


@router.post("/api/datasets/{dataset_id:uuid}/items/copy", status_code=201, response_model=models.ItemsWritten,
             summary="Copy selected items into another dataset (one version there)")
def copy_items(dataset_id: UUID, body: CopyRequest, ledger: LedgerDep, principal: PrincipalDep, actor: Actor,
               reason: Reason = None) -> Response:
    """Copies the named items of a version into another dataset of the same project, in one new version there;
    each copy records its origin."""
    if ledger.scope.dataset(principal, body.target_dataset_id) != ledger.scope.dataset(principal, dataset_id):
        raise InvalidRequestError("items are copied within a project; the target dataset is in another one")
    copied = ledger.dataset_use_cases.copy_items(
        dataset_id, target_dataset_id=body.target_dataset_id, item_ids=body.item_ids, version=body.version,
        on_conflict=body.on_conflict, actor=actor, reason=reason,
    )
    return answer(models.ItemsWritten, copied, 201 if copied.count else 200)


@router.post("/api/datasets/from-items", status_code=201, response_model=models.DatasetWritten,
             summary="A new dataset from selected items of another")
def from_items(body: FromItemsRequest, ledger: LedgerDep, principal: PrincipalDep, actor: Actor,
               reason: Reason = None) -> Response:
    """A new dataset (in the source's project) holding copies of the named items of another dataset's
    version."""
    ledger.scope.dataset(principal, body.source_dataset_id)
    return answer(models.DatasetWritten, ledger.dataset_use_cases.dataset_from_items(
        name=body.name, source_dataset_id=body.source_dataset_id, item_ids=body.item_ids, version=body.version,
        actor=actor, reason=reason,
    ), 201)


