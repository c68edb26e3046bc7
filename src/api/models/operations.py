"""Imports and the read models' status and rebuilds on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from evalledger.api.models.base import *  # noqa: F403
from evalledger.api.wire import ABSENT_IF_NONE


# -- import, projections -----------------------------------------------------------------


class RowProblem(ResponseModel):
    row: int = Field(description="Row number in the file (a CSV's header is row 1).")
    field: str
    message: str


class ImportPreviewRow(ResponseModel):
    row: int
    input: JSONValue
    expected_output: JSONValue
    metadata: dict[str, JSONValue] | None
    external_id: str | None


class ImportResult(ResponseModel):
    """What an import did (or, with `dryRun`, would do)."""

    dataset_id: UUID
    format: Literal["csv", "json", "jsonl"]
    mode: Literal["append", "upsert", "replace"]
    rows: int
    valid_rows: int
    invalid_rows: int
    errors: list[RowProblem]
    warnings: list[RowProblem]
    # Present on a dry run only, or on a run import only: absent (not null) otherwise.
    dry_run: Annotated[bool | None, ABSENT_IF_NONE] = Field(
        default=None, description="Present (true) on a dry run, which writes nothing.")
    preview: Annotated[list[ImportPreviewRow] | None, ABSENT_IF_NONE] = Field(
        default=None, description="Dry run: the first rows as items.")
    version: Annotated[int | None, ABSENT_IF_NONE] = Field(
        default=None, description="The dataset version after the import.")
    new_version: Annotated[bool | None, ABSENT_IF_NONE] = Field(
        default=None, description="False when the import changed nothing.")
    added: Annotated[int | None, ABSENT_IF_NONE] = None
    updated: Annotated[int | None, ABSENT_IF_NONE] = None
    removed: Annotated[int | None, ABSENT_IF_NONE] = None
    unchanged: Annotated[int | None, ABSENT_IF_NONE] = None
    skipped_rows: Annotated[list[int] | None, ABSENT_IF_NONE] = None


class ProjectionStatus(ResponseModel):
    name: str
    position: int = Field(description="The last event of the log applied to this read model.")
    head: int = Field(description="The last event in the log.")
    lag: int
    running: bool
    leader: bool = Field(description="Whether this process leads the read model (applies it in the background).")
    last_error: str | None


class RebuildReport(ResponseModel):
    projection: str
    position: int
    events: int
    seconds: float
    events_per_second: int | None


class RebuildState(ResponseModel):
    """A rebuild in the background: how far it has come and how it ended."""

    projection: Annotated[str | None, ABSENT_IF_NONE] = Field(
        default=None, description="Named when the state answers the rebuild's start.")
    state: Literal["running", "done", "failed"]
    started_at: datetime
    position: int
    head: int | None
    finished_at: datetime | None
    report: RebuildReport | None
    error: str | None


class ProjectionWithRebuild(ProjectionStatus):
    rebuild: RebuildState | None


class ProjectionList(ResponseModel):
    projections: list[ProjectionWithRebuild]
