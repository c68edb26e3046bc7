"""Import use case: a CSV / JSON / JSONL file on disk into a dataset as one version. The JSON
API and the web UI both call it. Synchronous on purpose: callers on the event loop run it in
a thread (asyncio.to_thread) so a big file never blocks other requests."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from evalledger.domain.errors import DomainError, ExternalIdTakenError, InvalidRequestError
from evalledger.service_layer.datasets import DatasetUseCases
from evalledger.transfer.importing import (
    ImportFileError,
    Remedy,
    RowProblem,
    detect_format,
    parse_mapping,
    read_items,
)

PREVIEW_ROWS = 20
MODES = ("append", "upsert", "replace")


# The answers: typed, snake_case; `api/` and the UI put them into words.


@dataclass(slots=True)
class PreviewRow:
    """A dry run: one of the first rows, as the item it would become."""

    row: int
    input: Any
    expected_output: Any
    metadata: Any
    external_id: str | None


@dataclass(slots=True)
class ImportSummary:
    """What an import did, or (a dry run: `dry_run` and `preview`) would do; the counts and
    `version` only when it ran."""

    dataset_id: UUID
    format: str
    mode: str
    rows: int
    valid_rows: int
    invalid_rows: int
    errors: list[RowProblem]
    warnings: list[RowProblem]
    dry_run: bool | None = None
    preview: list[PreviewRow] | None = None
    version: int | None = None
    new_version: bool | None = None  # False when the import changed nothing
    added: int | None = None
    updated: int | None = None
    removed: int | None = None
    unchanged: int | None = None
    skipped_rows: list[int] | None = None


def refusal(error: ImportFileError, kind: type[DomainError] = InvalidRequestError, **extra: Any) -> DomainError:
    """An import refused: `detail` words the remedy as API query parameters; `message` and
    `remedy` carry them apart, so a client (the CLI, the UI) can word the remedy its own way."""
    remedy = {"remedy": asdict(error.remedy)} if error.remedy else {}
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
) -> ImportSummary:
    """Validate every row, then (unless `dry_run`) write the valid items as one version.
    Rows with errors refuse the whole import unless `skip_invalid`. The answer is the import
    summary."""
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
    summary = ImportSummary(dataset_id, report.format, mode, report.rows, len(report.items),
                            len(report.invalid_rows), report.errors, report.warnings)
    if dry_run:
        summary.dry_run = True
        summary.preview = [PreviewRow(row, item.content.input, item.content.expected_output, item.content.metadata,
                                      item.external_id) for row, item in report.items[:PREVIEW_ROWS]]
        return summary
    if report.errors and not skip_invalid:
        first = report.errors[0]
        raise refusal(
            ImportFileError(f"{len(report.invalid_rows)} invalid row(s); nothing was imported. First: row "
                            f"{first.row} {first.field}: {first.message}",
                            Remedy("skipInvalid", "true", "to import the valid rows")),
            errors=[{"field": f"row {e.row}/{e.field}".rstrip("/"), "message": e.message}
                    for e in report.errors[:100]],
            rows=[asdict(e) for e in report.errors], warnings=[asdict(w) for w in report.warnings] or None,
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
    summary.version, summary.new_version = written.dataset_version, written.changed
    summary.added, summary.updated, summary.removed = len(outcome.added), len(outcome.updated), len(outcome.removed)
    summary.unchanged = outcome.unchanged
    summary.skipped_rows = sorted(report.invalid_rows) if skip_invalid else []
    return summary
