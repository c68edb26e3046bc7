"""Import use case: a CSV / JSON / JSONL file on disk into a dataset as one version. The JSON
API and the web UI both call it. Synchronous on purpose: callers on the event loop run it in
a thread (asyncio.to_thread) so a big file never blocks other requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from evalledger.domain.errors import DomainError, ExternalIdTakenError, InvalidRequestError
from evalledger.service_layer.datasets import DatasetUseCases
from evalledger.transfer.importing import ImportFileError, Remedy, detect_format, parse_mapping, read_items

PREVIEW_ROWS = 20
MODES = ("append", "upsert", "replace")


def refusal(error: ImportFileError, kind: type[DomainError] = InvalidRequestError, **extra: Any) -> DomainError:
    """An import refused: `detail` words the remedy as API query parameters; `message` and
    `remedy` carry them apart, so a client (the CLI, the UI) can word the remedy its own way."""
    remedy = {"remedy": error.remedy.wire()} if error.remedy else {}
    return kind(str(error), message=error.message, **remedy, **extra)


def column_roles(mapping: list[str] | None) -> dict[str, str]:
    """`column=role` pairs as a mapping; a malformed one is refused (422)."""
    try:
        return parse_mapping(mapping or [])
    except ImportFileError as error:
        raise refusal(error) from None


def import_file(
    cases: DatasetUseCases,
    dataset_id: UUID,
    path: Path,
    *,
    filename: str | None,
    file_format: str | None = None,
    mode: str = "append",
    dry_run: bool = False,
    skip_invalid: bool = False,
    mapping: list[str] | None = None,
    actor: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """Validate every row, then (unless `dry_run`) write the valid items as one version.
    Rows with errors refuse the whole import unless `skip_invalid`. The answer is the import
    summary (`dryRun` and `preview` for a dry run; counts and `version` otherwise)."""
    if mode not in MODES:
        raise InvalidRequestError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    roles = column_roles(mapping)
    dataset = cases.queries.dataset_row(dataset_id)
    try:
        kind = detect_format(filename, file_format)
        report = read_items(
            path, file_format=kind, filename=filename or f"upload.{kind}", mapping=roles,
            input_schema=dataset["input_schema"], expected_output_schema=dataset["expected_output_schema"],
        )
    except ImportFileError as error:
        raise refusal(error) from None
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
        return {**summary, "dryRun": True, "preview": preview}
    if report.errors and not skip_invalid:
        first = report.errors[0]
        raise refusal(
            ImportFileError(f"{len(report.invalid_rows)} invalid row(s); nothing was imported. First: row "
                            f"{first['row']} {first['field']}: {first['message']}",
                            Remedy("skipInvalid", "true", "to import the valid rows")),
            errors=[{"field": f"row {e['row']}/{e['field']}".rstrip("/"), "message": e["message"]}
                    for e in report.errors[:100]],
            rows=report.errors, warnings=report.warnings or None,
        )
    if not report.items and mode != "replace":
        raise InvalidRequestError("the file holds no valid rows; nothing to import")
    items = [item for _, item in report.items]
    try:
        written, outcome = cases.datasets.import_items(dataset_id, items, mode=mode, actor=actor, reason=reason,
                                                       checked=True)
    except ExternalIdTakenError as error:
        message = error.detail.partition("; import with mode=upsert")[0]
        raise refusal(ImportFileError(message, Remedy("mode", "upsert", "to update those items")),
                      ExternalIdTakenError) from None
    cases.read_your_writes(written)
    return {
        **summary,
        "version": written.dataset_version,
        "newVersion": written.changed,
        "added": len(outcome.added),
        "updated": len(outcome.updated),
        "removed": len(outcome.removed),
        "unchanged": outcome.unchanged,
        "skippedRows": sorted(report.invalid_rows) if skip_invalid else [],
    }
