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
from evalledger.api.encoding import through
from evalledger.api.routing import Route
from evalledger.bootstrap import Ledger
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import NewItem
from evalledger.domain.errors import DomainError, ExternalIdTakenError, InvalidRequestError, ItemPurgedError
from evalledger.domain.runs import declared_scorer_ids
from evalledger.transfer.exporting import MEDIA_TYPES, export_items, export_results
from evalledger.transfer.copying import OnConflict, settle_external_ids
from evalledger.transfer.importing import ImportFileError, Remedy, detect_format, parse_mapping, read_items

PREVIEW_ROWS = 20


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


def _items_of(ledger: Ledger, dataset_id: UUID, version: int | None, item_ids: list[UUID] | None,
              origin: dict[str, Any]) -> list[NewItem]:
    """Items of a dataset version (all, or the named ones) as new items that record their origin.

    Purged items have no content to copy: naming one is refused (409 item-purged); a copy of
    a whole version leaves them out."""
    at = ledger.dataset_queries.resolve_version(dataset_id, version)
    wanted = {str(i) for i in item_ids} if item_ids is not None else None
    items = []
    for page in ledger.dataset_queries.iter_item_pages(dataset_id, at):
        for item in page:
            if wanted is not None and str(item["id"]) not in wanted:
                continue
            if item["purgedAt"] is not None:
                if wanted is not None:
                    raise ItemPurgedError(f"item {item['id']} was purged; there is no content to copy")
                continue
            items.append(NewItem(
                content=ItemContent(item["input"], item["expectedOutput"], item["metadata"] or {}),
                external_id=item["externalId"],
                source={**origin, "datasetId": str(dataset_id), "version": at, "itemId": str(item["id"])},
            ))
    if wanted is not None and len(items) != len(wanted):
        found = {item.source["itemId"] for item in items if item.source}
        missing = sorted(wanted - found)
        raise InvalidRequestError(f"{len(missing)} item(s) are not in dataset {dataset_id} at version {at}: "
                                  f"{', '.join(missing[:10])}")
    return items


def _refusal(error: ImportFileError, kind: type[DomainError] = InvalidRequestError, **extra: Any) -> DomainError:
    """An import refused: `detail` words the remedy as query parameters; `message` and
    `remedy` carry them apart, so a client (the CLI) can word the remedy its own way."""
    remedy = {"remedy": error.remedy.wire()} if error.remedy else {}
    return kind(str(error), message=error.message, **remedy, **extra)


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


def build_router() -> APIRouter:
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
        file_format: Annotated[Literal["csv", "json", "jsonl"] | None, Query(alias="format")] = None,
        mode: Annotated[Literal["append", "upsert", "replace"], Query()] = "append",
        dry_run: Annotated[bool, Query(alias="dryRun")] = False,
        skip_invalid: Annotated[bool, Query(alias="skipInvalid")] = False,
        mapping: Annotated[list[str] | None, Query(alias="map", description="column=role")] = None,
        filename: Annotated[str | None, Query(max_length=1000, description="The file's name (its extension "
                                                                           "tells the format)")] = None,
        actor: Actor = "anonymous",
        reason: Reason = None,
    ) -> Response:
        dataset = await asyncio.to_thread(ledger.dataset_queries.dataset_row, dataset_id)
        try:
            roles = parse_mapping(mapping or [])
        except ImportFileError as error:
            raise _refusal(error) from None
        path, filename = await _save_upload(request, filename)
        try:
            try:
                kind = detect_format(filename, file_format)
                report = await asyncio.to_thread(
                    read_items, path, file_format=kind, filename=filename or f"upload.{kind}", mapping=roles,
                    input_schema=dataset["input_schema"], expected_output_schema=dataset["expected_output_schema"],
                )
            except ImportFileError as error:
                raise _refusal(error) from None
        finally:
            path.unlink(missing_ok=True)
        summary: dict[str, Any] = {
            "datasetId": dataset_id,
            "format": report.format,
            "mode": mode,
            "rows": report.rows,
            "validRows": len(report.items),
            "invalidRows": len(report.invalid_rows),
            "errors": report.errors,
            "warnings": report.warnings,
        }
        if dry_run:
            preview = [{"row": row, "input": item.content.input, "expectedOutput": item.content.expected_output,
                        "metadata": item.content.metadata, "externalId": item.external_id}
                       for row, item in report.items[:PREVIEW_ROWS]]
            return through(models.ImportResult, {**summary, "dryRun": True, "preview": preview}, 200)
        if report.errors and not skip_invalid:
            first = report.errors[0]
            raise _refusal(ImportFileError(
                f"{len(report.invalid_rows)} invalid row(s); nothing was imported. First: row {first['row']} "
                f"{first['field']}: {first['message']}", Remedy("skipInvalid", "true", "to import the valid rows")),
                errors=[{"field": f"row {e['row']}/{e['field']}".rstrip("/"), "message": e["message"]}
                        for e in report.errors[:100]],
                rows=report.errors, warnings=report.warnings or None,
            )
        if not report.items and mode != "replace":
            raise InvalidRequestError("the file holds no valid rows; nothing to import")
        items = [item for _, item in report.items]
        try:
            written, outcome = await asyncio.to_thread(
                ledger.datasets.import_items, dataset_id, items, mode=mode, actor=actor, reason=reason, checked=True
            )
        except ExternalIdTakenError as error:
            message = error.detail.partition("; import with mode=upsert")[0]
            raise _refusal(ImportFileError(message, Remedy("mode", "upsert", "to update those items")),
                           ExternalIdTakenError) from None
        await asyncio.to_thread(ledger.read_your_writes, written)
        return through(models.ImportResult, {
            **summary,
            "version": written.dataset_version,
            "newVersion": written.changed,
            "added": len(outcome.added),
            "updated": len(outcome.updated),
            "removed": len(outcome.removed),
            "unchanged": outcome.unchanged,
            "skippedRows": sorted(report.invalid_rows) if skip_invalid else [],
        }, 201 if written.changed else 200)

    @router.get("/api/datasets/{dataset_id:uuid}/items/export", summary="Export a version's items (streamed)",
                response_class=StreamingResponse, responses={200: file_answer(("csv", "json", "jsonl"))})
    def export(
        dataset_id: UUID,
        ledger: LedgerDep,
        file_format: Annotated[Literal["csv", "json", "jsonl"], Query(alias="format")] = "jsonl",
        version: Annotated[int | None, Query(ge=0)] = None,
        include_ids: Annotated[bool, Query(alias="includeIds")] = False,
    ) -> StreamingResponse:
        """Every item of a version as CSV, JSON or JSONL (`format`), streamed; `includeIds` adds the item ids."""
        at = ledger.dataset_queries.resolve_version(dataset_id, version)
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
        # CSV gives each scorer columns of its own: every declared scorer, then any other with a score.
        scorer_ids = [*declared_scorer_ids(run["scorers"]), *sorted(ledger.run_queries.score_summary(run_id))]
        return StreamingResponse(
            export_results(ledger.run_queries.iter_result_pages(run_id), file_format, scorer_ids),
            media_type=MEDIA_TYPES[file_format],
            headers={"Content-Disposition": f'attachment; filename="run-{run_id}-results.{file_format}"'},
        )

    @router.post("/api/datasets/{dataset_id:uuid}/duplicate", status_code=201, response_model=models.DatasetWritten,
                 summary="A new dataset with a version's items (one version), recording their origin")
    def duplicate(dataset_id: UUID, body: DuplicateRequest, ledger: LedgerDep, actor: Actor = "anonymous",
                  reason: Reason = None) -> Any:
        """A new dataset with the details and the items of a version of this one; each item records where it came
        from."""
        source = ledger.dataset_queries.dataset_row(dataset_id)
        items = _items_of(ledger, dataset_id, body.version, None, {"kind": "duplicate"})
        created = ledger.datasets.create_dataset(
            name=body.name or f"{source['name']} (copy)", description=source["description"],
            metadata={**source["metadata"], "duplicatedFrom": {"datasetId": str(dataset_id)}},
            input_schema=source["input_schema"], expected_output_schema=source["expected_output_schema"],
            actor=actor, reason=reason,
        )
        written = created
        if items:
            written, _ = ledger.datasets.import_items(created.aggregate_id, items, mode="append", actor=actor,
                                                      reason=reason)
        ledger.read_your_writes(written)
        return ledger.dataset_queries.get_dataset(created.aggregate_id)

    @router.post("/api/datasets/{dataset_id:uuid}/items/{item_id:uuid}/duplicate", status_code=201,
                 response_model=models.ItemsWritten, summary="Duplicate one item in its dataset (one version)")
    def duplicate_item(dataset_id: UUID, item_id: UUID, ledger: LedgerDep, actor: Actor = "anonymous",
                       reason: Reason = None) -> Any:
        """A copy of one item in the same dataset (without its externalId), in a new version."""
        [item] = _items_of(ledger, dataset_id, None, [item_id], {"kind": "duplicate"})
        copy = NewItem(content=item.content, external_id=None, source=item.source)
        written = ledger.datasets.add_items(dataset_id, [copy], actor=actor, reason=reason)
        ledger.read_your_writes(written)
        return {"datasetId": dataset_id, "version": written.dataset_version, "count": 1,
                "items": [{"id": written.items[0].id, "externalId": None}]}

    @router.post("/api/datasets/{dataset_id:uuid}/items/copy", status_code=201, response_model=models.ItemsWritten,
                 summary="Copy selected items into another dataset (one version there)")
    def copy_items(dataset_id: UUID, body: CopyRequest, ledger: LedgerDep, actor: Actor = "anonymous",
                   reason: Reason = None) -> Any:
        """Copies the named items of a version into another dataset, in one new version there; each copy records
        its origin."""
        items = _items_of(ledger, dataset_id, body.version, body.item_ids, {"kind": "copy"})
        for attempt in range(3):  # the target may take an externalId between the check and the write
            taken = ledger.datasets.get_dataset(body.target_dataset_id).external_ids
            copied, skipped = settle_external_ids(items, taken, body.target_dataset_id, body.on_conflict)
            if not copied:
                written = None
                break
            try:
                written, _ = ledger.datasets.import_items(body.target_dataset_id, copied, mode="append",
                                                          actor=actor, reason=reason)
                break
            except ExternalIdTakenError:
                if attempt == 2:
                    raise
        if written is None:  # every item was skipped: nothing written, no new version
            version = ledger.dataset_queries.resolve_version(body.target_dataset_id, None)
            return JSONBody({"datasetId": body.target_dataset_id, "version": version, "count": 0, "items": [],
                             "skippedItemIds": skipped})
        ledger.read_your_writes(written)
        return {"datasetId": body.target_dataset_id, "version": written.dataset_version,
                "count": len(written.items),
                "items": [{"id": i.id, "externalId": i.external_id} for i in written.items],
                "skippedItemIds": skipped}

    @router.post("/api/datasets/from-items", status_code=201, response_model=models.DatasetWritten,
                 summary="A new dataset from selected items of another")
    def from_items(body: FromItemsRequest, ledger: LedgerDep, actor: Actor = "anonymous",
                   reason: Reason = None) -> Any:
        """A new dataset holding copies of the named items of another dataset's version."""
        items = _items_of(ledger, body.source_dataset_id, body.version, body.item_ids, {"kind": "copy"})
        created = ledger.datasets.create_dataset(name=body.name, actor=actor, reason=reason)
        written, _ = ledger.datasets.import_items(created.aggregate_id, items, mode="append", actor=actor,
                                                  reason=reason)
        ledger.read_your_writes(written)
        return ledger.dataset_queries.get_dataset(created.aggregate_id)

    return router

