"""The wire format as pydantic models: request bodies (validated on the way in) and
response bodies (documented in OpenAPI, and used by `evalledger.Client` to type what it
returns). camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from evalledger.api.wire import ABSENT_IF_NONE
from evalledger.domain.datasets import TAG_PATTERN

JSONValue = Any


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def _json_type(name: str, *types: type) -> Any:
    """A number or boolean of a request body as its JSON type only: pydantic would also take
    `"3"` or `true` for an integer, which the OpenAPI document (and a client) says it is not."""

    def check(value: Any) -> Any:
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise ValueError(f"must be a JSON {name}")
        return value

    return BeforeValidator(check)


JSON_INTEGER, JSON_NUMBER = _json_type("integer", int, float), _json_type("number", int, float)
Int = Annotated[int, JSON_INTEGER]
Number = Annotated[float, JSON_NUMBER]
Bool = Annotated[bool, _json_type("boolean", bool)]
# Optional values keep their bounds inside (else the document would lose `minimum`).
Version = Annotated[int, Field(ge=0), JSON_INTEGER]


class ResponseModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


# -- requests ----------------------------------------------------------------------------

Name = Field(min_length=1, max_length=200)
ExternalId = Field(default=None, min_length=1, max_length=256)


class DatasetDetails(WireModel):
    name: str = Name
    description: str = Field(default="", max_length=10_000)
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    input_schema: dict[str, JSONValue] | None = None
    expected_output_schema: dict[str, JSONValue] | None = None


class DatasetCreate(DatasetDetails):
    project: str | None = Field(
        default=None, max_length=63,
        description="The project's slug. A project key creates in its own project (naming another is refused); "
                    "an instance key may name any project (default: `default`).")


class DatasetReplace(DatasetDetails):
    """PUT: every detail is set; those left out take their defaults."""


class DatasetPatch(WireModel):
    """PATCH: only the details given change. `null` clears a schema. (`None` defaults mean
    "left out": a given `null` name, description or metadata fails their type.)"""

    name: str = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    description: str = Field(default=None, max_length=10_000)  # type: ignore[assignment]
    metadata: dict[str, JSONValue] = Field(default=None)  # type: ignore[assignment]
    input_schema: dict[str, JSONValue] | None = None
    expected_output_schema: dict[str, JSONValue] | None = None


# In the OpenAPI document: any JSON value but null (the validators below refuse null).
NOT_NULL = {"not": {"type": "null"}}


class ItemCreate(WireModel):
    input: JSONValue = Field(description="Any JSON value except null.", json_schema_extra=NOT_NULL)
    expected_output: JSONValue = None
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    external_id: str | None = ExternalId

    @field_validator("input")
    @classmethod
    def _input_not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("input is required and may not be null")
        return value


class ItemsBatchCreate(WireModel):
    items: list[ItemCreate] = Field(min_length=1)


class ItemPatch(WireModel):
    """Only the fields given change; `expectedOutput: null` clears it."""

    input: JSONValue = Field(default=None, description="Any JSON value except null.", json_schema_extra=NOT_NULL)
    expected_output: JSONValue = None
    metadata: dict[str, JSONValue] = Field(default=None)  # type: ignore[assignment]
    external_id: str | None = ExternalId

    @field_validator("input")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out but not null")
        return value


class ItemsBatchDelete(WireModel):
    item_ids: list[UUID] = Field(min_length=1)


def _iso_only(value: Any) -> Any:
    # pydantic would read a bare number as seconds since 1970; the API promises ISO 8601.
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("must be an ISO 8601 timestamp, e.g. 2026-01-31T12:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_only)]


# -- responses ---------------------------------------------------------------------------


class Pagination(ResponseModel):
    total: int
    page: int
    per_page: int
    has_more: bool


class Dataset(ResponseModel):
    id: UUID
    name: str
    description: str
    metadata: dict[str, JSONValue]
    input_schema: dict[str, JSONValue] | None
    expected_output_schema: dict[str, JSONValue] | None
    version: int = Field(description="Current dataset version (0 when created; +1 per item change).")
    item_count: int
    created_at: datetime
    updated_at: datetime
    project_id: UUID = Field(description="The project the dataset and its runs belong to.")


class DatasetList(ResponseModel):
    datasets: list[Dataset]
    pagination: Pagination


class Item(ResponseModel):
    id: UUID
    dataset_id: UUID
    external_id: str | None
    input: JSONValue
    expected_output: JSONValue
    metadata: dict[str, JSONValue] | None
    source: dict[str, JSONValue] | None = Field(
        default=None, description="Where the item came from: an import (file, format, row) or a copy (dataset, item)."
    )
    version: int = Field(description="The dataset version that produced this revision.")
    valid_from: int
    valid_to: int | None = Field(description="First version where this revision no longer holds; null if current.")
    created_at: datetime
    updated_at: datetime
    purged_at: datetime | None = Field(
        default=None, description="When the item's content was purged (erased from every version); null if never."
    )


class ItemRevision(Item):
    deleted: bool


class ItemList(ResponseModel):
    items: list[Item]
    version: int = Field(description="The dataset version the listing shows.")
    pagination: Pagination


class ItemHistory(ResponseModel):
    item_id: UUID
    history: list[ItemRevision]


class DatasetVersion(ResponseModel):
    version: int
    created_at: datetime
    added: int
    updated: int
    removed: int
    item_count: int
    actor: str
    reason: str | None
    tags: list[str] = Field(default_factory=list, description="The tags that name this version.")


class VersionList(ResponseModel):
    versions: list[DatasetVersion]
    pagination: Pagination


TagName = Annotated[str, Field(pattern=TAG_PATTERN, max_length=100)]


class TagSet(WireModel):
    """Point a tag at a version."""

    version: Version | None = Field(default=None, description="The version to tag (default: the current one).")
    move: Bool = Field(default=False, description="Move the tag when it names another version (else 409).")


class DatasetTag(ResponseModel):
    tag: str
    version: int = Field(description="The dataset version the tag names.")
    tagged_at: datetime = Field(description="When the tag came to name this version.")
    actor: str
    reason: str | None


class TagList(ResponseModel):
    dataset_id: UUID
    tags: list[DatasetTag]


class TagWritten(DatasetTag):
    dataset_id: UUID
    outcome: Literal["tagged", "moved", "unchanged"]
    previous_version: int | None = Field(description="The version a moved tag named before; else null.")


class TagDeleted(ResponseModel):
    dataset_id: UUID
    tag: str
    version: int = Field(description="The version the tag named (it stays).")
    deleted: bool


def _field_path(change: Any) -> str:
    """A changed field's path as the wire names it: the item field in camelCase, then the JSON keys."""
    return ".".join((to_camel(change.path[0]), *change.path[1:]))


class FieldChange(ResponseModel):
    wire_sources: ClassVar[dict[str, Any]] = {"field": _field_path}

    field: str
    before: JSONValue
    after: JSONValue
    kind: Annotated[Literal["added", "removed"] | None, ABSENT_IF_NONE] = None


class ItemDiff(ResponseModel):
    item_id: UUID
    change: Literal["added", "removed", "changed"]
    before: Annotated[Item | None, ABSENT_IF_NONE] = None
    after: Annotated[Item | None, ABSENT_IF_NONE] = None
    changes: Annotated[list[FieldChange] | None, ABSENT_IF_NONE] = None


class DiffSummary(ResponseModel):
    added: int
    removed: int
    changed: int


class Diff(ResponseModel):
    dataset_id: UUID
    from_version: int
    to_version: int
    summary: DiffSummary
    changes: list[ItemDiff]
    pagination: Pagination


class Event(ResponseModel):
    type: str
    aggregate_version: int = Field(description="Position of the event in the dataset's own stream (1-based).")
    version: int | None = Field(description="Dataset version after the event (item-changing events only).")
    timestamp: datetime
    actor: str
    reason: str | None
    payload: dict[str, JSONValue]


class EventList(ResponseModel):
    events: list[Event]
    next_after: int | None = Field(default=None, description="Pass as `after` for the next events; null at the end.")
    pagination: Pagination


class FeedEvent(Event):
    position: int = Field(description="Position in the global log (ascending, gap-free order of commits).")
    aggregate_id: UUID
    aggregate_type: str


class EventFeed(ResponseModel):
    events: list[FeedEvent]
    next_after: int | None
    head: int


class ItemRef(ResponseModel):
    id: UUID
    external_id: str | None


class DatasetWritten(Dataset):
    """A dataset after a write; `version` is the version it is at."""


class DatasetDeleted(ResponseModel):
    dataset_id: UUID
    version: int
    deleted: bool


class ItemWritten(ResponseModel):
    dataset_id: UUID
    version: int = Field(description="The dataset version this write produced (or the current one if it changed nothing).")
    changed: bool
    item: Item


class ItemsWritten(ResponseModel):
    dataset_id: UUID
    version: int
    count: int
    items: list[ItemRef]
    skipped_item_ids: Annotated[list[UUID] | None, ABSENT_IF_NONE] = Field(
        default=None, description="Copy with onConflict=skip: the source items left out.")


class ItemsDeleted(ResponseModel):
    dataset_id: UUID
    version: int
    count: int
    item_ids: list[UUID]


class ItemPurged(ResponseModel):
    dataset_id: UUID
    item_id: UUID
    purged_at: datetime
    changed: bool = Field(description="False when the item had been purged before.")
    aggregate_version: int


class FieldError(ResponseModel):
    field: str
    message: str


class Problem(ResponseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class HealthProjection(ResponseModel):
    name: str
    lag: int
    running: bool


class Health(ResponseModel):
    status: str
    projections: list[HealthProjection] = Field(
        description="Each read model's lag; with a valid key, also its position, the log's head and its last error.")
    database: str | None = Field(default=None, description="With a valid key only: the PostgreSQL in use (no "
                                 "password).")


# -- runs --------------------------------------------------------------------------------


RunTag = Annotated[str, Field(min_length=1, max_length=100)]


class PromptSpec(WireModel):
    template: str = Field(max_length=100_000)
    version: str | None = Field(default=None, min_length=1, max_length=200)


class RunCreate(WireModel):
    target: dict[str, JSONValue] | None = Field(
        default=None,
        description='What to run: {"type": "registered", "name": ...}, {"type": "http", "url": ...} or '
        '{"type": "openai", "baseUrl": ..., "model": ..., "promptTemplate": ...}. Leave out for a '
        "caller-driven run (you submit the results).",
    )
    scorers: list[str | dict[str, JSONValue]] = Field(
        default_factory=list, description='Scorer names or {"name", "id", "options"} objects.'
    )
    version: Version | None = Field(default=None, description="Dataset version to pin (default: current).")
    tag: TagName | None = Field(
        default=None, description="Pin the version this tag names instead (recorded as metadata.datasetTag).")
    model: str | None = Field(default=None, min_length=1, max_length=200,
                              description="The model the run evaluates (recorded as metadata.model).")
    prompt: PromptSpec | None = Field(default=None, description="The prompt template and its version "
                                      "(metadata.prompt; no version: a digest of the template).")
    code_version: str | None = Field(default=None, min_length=1, max_length=200,
                                     description="The code's version, e.g. a git commit (metadata.codeVersion).")
    tags: list[RunTag] | None = Field(default=None, max_length=50, description="Free-form tags (metadata.tags); "
                                      "runs are listed by them (`GET .../runs?tag=`).")
    max_concurrency: Int = Field(default=8, ge=1, le=256)
    item_timeout_ms: Int = Field(default=60_000, ge=1, le=3_600_000)
    max_retries: Int = Field(default=2, ge=0, le=10)
    repetitions: Int = Field(default=1, ge=1, le=100)
    name: str = Field(default="", max_length=200)
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    run_id: UUID | None = Field(
        default=None, description="Your own id: creating the same run again is then a no-op (409 if it differs)."
    )


class ScoreSubmission(WireModel):
    scorer_id: str = Field(min_length=1, max_length=200)
    score: Annotated[float, Field(ge=0.0, le=1.0), JSON_NUMBER] | None = None
    reason: str | None = None
    error: str | None = None
    usage: dict[str, JSONValue] | None = None  # what scoring used: inputTokens, outputTokens, cost, model


class ResultSubmission(WireModel):
    item_id: UUID
    repetition: Int = Field(default=0, ge=0)
    output: JSONValue = None
    error: str | None = None
    latency_ms: Annotated[float, Field(ge=0), JSON_NUMBER] | None = None
    attempt: Int = Field(default=1, ge=1)
    trace_id: str | None = Field(default=None, max_length=500)
    span_id: str | None = Field(default=None, max_length=500)
    scores: list[ScoreSubmission] = Field(default_factory=list)
    usage: dict[str, JSONValue] | None = None  # inputTokens, outputTokens, cost, model (targets.read_usage)


class ResultsSubmission(WireModel):
    results: list[ResultSubmission] = Field(min_length=1)


class RunProgress(ResponseModel):
    done: int
    total: int
    fraction: float


class RunStatusReason(ResponseModel):
    reason: str = Field(description="What stopped the run from starting or going on, last time it was tried")
    attempts: int
    since: datetime
    next_attempt_at: datetime


class Run(ResponseModel):
    id: UUID
    dataset_id: UUID
    dataset_version: int
    name: str
    status: Literal["pending", "running", "completed", "failed", "cancelled"]
    caller_driven: bool
    target: dict[str, JSONValue] | None
    scorers: list[JSONValue]
    settings: dict[str, int]
    metadata: dict[str, JSONValue]
    total_items: int
    repetitions: int
    expected_results: int
    succeeded_count: int
    failed_count: int
    pending_count: int
    skipped_count: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: RunProgress
    score_summary: dict[str, JSONValue] | None = Field(
        default=None, description="Per scorer: count, mean, median, std, min, max, passRate (at 0.5), errorCount "
        "(finished runs; see /analytics for more).")
    status_reason: RunStatusReason | None = Field(
        default=None, description="Present while the run cannot start or go on (the database refused a connection, "
        "say): why, and when this process tries again, which it does until it can.")


class RunList(ResponseModel):
    runs: list[Run]
    pagination: Pagination


class Score(ResponseModel):
    scorer_id: str
    score: float | None
    reason: str | None
    error: str | None


class RunResult(ResponseModel):
    item_id: UUID
    repetition: int
    status: Literal["succeeded", "failed"]
    input: JSONValue
    expected_output: JSONValue
    item_metadata: dict[str, JSONValue] | None
    output: JSONValue
    error: str | None
    latency_ms: float | None
    attempt: int = Field(description="Attempts made (1 + retries).")
    retry_errors: list[str]
    trace_id: str | None
    span_id: str | None = Field(default=None, description="The result's span (with OpenTelemetry configured).")
    trace_url: str | None = Field(default=None, description="A link to the trace (EVALLEDGER_TRACE_URL's "
                                  "template filled with the ids).")
    scores: list[Score] = Field(description="The scores that count: a reviewer's override replaces the automatic "
                                "score (marked `reviewed`, with `automaticScore`).")
    started_at: datetime | None
    recorded_at: datetime
    review: dict[str, JSONValue] | None = Field(
        default=None, description="What the result's reviews add up to: verdict, comment, flagged, scores, "
        "criteria, reviews (how many), actor, reason, reviewedAt.")
    flagged: bool = Field(default=False, description="Flagged for follow-up by a reviewer.")


class RunResultList(ResponseModel):
    results: list[RunResult]
    pagination: Pagination


class ResultsAccepted(ResponseModel):
    run_id: UUID
    accepted: int
    aggregate_version: int


class Catalog(ResponseModel):
    builtin: list[dict[str, JSONValue]]
    registered: list[dict[str, JSONValue]]


# -- analytics and comparison -------------------------------------------------------------


class ScorerStats(ResponseModel):
    count: int
    mean: float | None
    median: float | None
    std: float | None
    min: float | None
    max: float | None
    pass_rate: float | None
    error_count: int
    reviewed_count: int = Field(default=0, description="Results whose score here is a reviewer's (issue 18).")


class LatencyStats(ResponseModel):
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    max: float | None = None


class UsagePerItem(ResponseModel):
    input_tokens: float | None
    output_tokens: float | None
    cost: float | None


class UsageTotals(ResponseModel):
    results: int = Field(description="Results (or scores) that reported usage.")
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    models: list[str]
    per_item: UsagePerItem = Field(description="Means over the results that reported usage.")


class Usage(UsageTotals):
    """What a run used, as its target (and its scorers: an LLM judge) reported it."""

    scorers: dict[str, UsageTotals] = Field(default_factory=dict, description="Per scorer that reported usage.")
    total_cost: float | None = Field(default=None, description="The target's cost and the scorers' together.")


class UsageDelta(ResponseModel):
    input_tokens: float | None
    output_tokens: float | None
    cost: float | None
    total_cost: float | None
    per_item: UsagePerItem


class UsageComparison(ResponseModel):
    a: Usage
    b: Usage
    delta: UsageDelta = Field(description="B minus A; null where either run reported nothing.")


class RunAnalytics(ResponseModel):
    run_id: UUID
    status: str
    partial: bool
    threshold: float
    results: int
    succeeded: int
    failed: int
    success_rate: float | None
    latency_ms: LatencyStats
    scorers: dict[str, ScorerStats]
    usage: Usage | None = None
    group_by: str | None = None
    groups: dict[str, dict[str, JSONValue]] | None = None
    repetitions: dict[str, JSONValue] | None = None


class ThresholdSpec(WireModel):
    value: Number = Field(default=0.0, ge=0.0, description="Smallest difference that counts.")
    direction: Literal["higher-is-better", "lower-is-better"] = "higher-is-better"


class CompareRequest(WireModel):
    run_id_a: UUID = Field(description="The baseline run.")
    run_id_b: UUID | None = Field(default=None, description="The candidate run.")
    candidates: list[UUID] | None = Field(
        default=None, min_length=1, max_length=20, description="Several candidate runs, each compared with A."
    )
    thresholds: dict[str, ThresholdSpec] = Field(default_factory=dict, description="Per scorer id.")
    alpha: Number = Field(default=0.05, gt=0.0, lt=0.5, description="Significance level.")
    allow_partial: Bool = Field(default=False, description="Compare runs still in progress (marked partial).")
    items_page: Int = Field(default=0, ge=0)
    items_per_page: Int = Field(default=100, ge=1, le=10_000)
    item_status: Literal["regressed", "improved", "unchanged", "onlyInA", "onlyInB"] | None = None


class ScorerComparison(ResponseModel):
    paired_items: int
    mean_a: float | None
    mean_b: float | None
    delta: float | None
    confidence_interval: dict[str, float | None]
    p_value: float | None
    test: str | None
    improved: int
    regressed: int
    unchanged: int
    threshold: dict[str, JSONValue]
    verdict: Literal["regressed", "improved", "no-significant-change"]
    reviewed_a: int = Field(default=0, description="Results of run A whose score is a reviewer's.")
    reviewed_b: int = Field(default=0, description="Results of run B whose score is a reviewer's.")


class ScoreChange(ResponseModel):
    a: float | None
    b: float | None
    delta: float | None


class ComparisonItem(ResponseModel):
    item_id: UUID
    status: Literal["regressed", "improved", "unchanged", "onlyInA", "onlyInB"]
    scores: dict[str, ScoreChange] = Field(description="Per scorer: the item's score in A and B (repetitions "
                                           "averaged) and B minus A.")
    content_changed: bool | None = Field(default=None, description="The runs pinned different versions: whether "
                                         "the item's content changed between them.")
    content_change: dict[str, JSONValue] | None = None
    output_diff: OutputDiff | None = Field(default=None, description="How B's output differs from A's.")


class Comparison(ResponseModel):
    run_id_a: UUID
    run_id_b: UUID
    dataset_version_a: int
    dataset_version_b: int
    partial: bool
    alpha: float
    paired_items: int
    only_in_a: int
    only_in_b: int
    has_regression: bool
    scorers: dict[str, ScorerComparison]
    latency: dict[str, dict[str, float | None]]
    usage: UsageComparison | None = Field(default=None, description="Tokens and cost of each run, and the delta.")
    warnings: list[dict[str, str]]
    items: list[ComparisonItem]
    items_pagination: Pagination


class MultiComparison(ResponseModel):
    run_id_a: UUID
    has_regression: bool
    comparisons: list[Comparison]


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
    dry_run: bool | None = Field(default=None, description="Present (true) on a dry run, which writes nothing.")
    preview: list[ImportPreviewRow] | None = Field(default=None, description="Dry run: the first rows as items.")
    version: int | None = Field(default=None, description="The dataset version after the import.")
    new_version: bool | None = Field(default=None, description="False when the import changed nothing.")
    added: int | None = None
    updated: int | None = None
    removed: int | None = None
    unchanged: int | None = None
    skipped_rows: list[int] | None = None


class ProjectionStatus(ResponseModel):
    name: str
    position: int = Field(description="The last event of the log applied to this read model.")
    head: int = Field(description="The last event in the log.")
    lag: int
    running: bool
    last_error: str | None


class RebuildReport(ResponseModel):
    projection: str
    position: int
    events: int
    seconds: float
    events_per_second: int | None


class RebuildState(ResponseModel):
    """A rebuild in the background: how far it has come and how it ended."""

    projection: str | None = None
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


# -- reviews (issue 18) -------------------------------------------------------------------

ReviewScore = Annotated[float, Field(ge=0.0, le=1.0), JSON_NUMBER]
ScorerName = Annotated[str, Field(min_length=1, max_length=200)]


class ReviewCreate(WireModel):
    """A review says only what it changes; what it leaves out stays as earlier reviews left it."""

    repetition: Int = Field(default=0, ge=0, le=1_000_000)
    verdict: Literal["pass", "fail"] | None = None
    scores: dict[ScorerName, ReviewScore | None] = Field(
        default_factory=dict, max_length=100,
        description="Per scorer of the run: the reviewer's score (0..1), which overrides the automatic one; null "
        "goes back to the automatic score.")
    criteria: dict[ScorerName, ReviewScore | None] = Field(
        default_factory=dict, max_length=100,
        description="Scores on criteria of the reviewer's own (not scorers of the run); null removes one.")
    comment: str | None = Field(default=None, max_length=10_000, description="An empty comment removes it.")
    flagged: Bool | None = Field(default=None, description="Flag (or unflag) the result for follow-up.")


class ScoreHistoryEntry(ResponseModel):
    scorer_id: str
    score: float | None = Field(description="null: the review took its override back")
    source: Literal["automatic", "review", "criterion"]
    actor: str | None
    at: datetime
    reason: str | None


class ResultReviewRecord(ResponseModel):
    actor: str
    at: datetime
    reason: str | None
    verdict: Literal["pass", "fail"] | None
    scores: list[dict[str, JSONValue]]
    criteria: list[dict[str, JSONValue]]
    comment: str | None
    flagged: bool | None


class OutputDiff(ResponseModel):
    kind: Literal["text", "json", "missingOutput", "noExpectedOutput"]
    equal: bool
    segments: list[dict[str, str]] | None = Field(
        default=None, description="text: runs of the two texts, each `op` equal, del (expected only) or add "
        "(output only).")
    changes: list[dict[str, JSONValue]] | None = Field(
        default=None, description="json: field-level changes from the expected output to the output.")


class ResultDetail(RunResult):
    automatic_scores: list[Score]
    reviews: list[ResultReviewRecord]
    score_history: list[ScoreHistoryEntry]
    output_diff: OutputDiff


class RescoreCreate(WireModel):
    """Scorers to apply to a finished run's stored outputs, in a derived run."""

    scorers: list[str | dict[str, JSONValue]] = Field(
        min_length=1, max_length=50, description='Scorer names or {"name", "id", "options"} objects; give a new '
        "version of a scorer the old one's `id` to compare the two.")
    name: str = Field(default="", max_length=200)
    max_concurrency: Int | None = Field(default=None, ge=1, le=256, description="Default: the source run's.")
    item_timeout_ms: Int | None = Field(default=None, ge=1, le=3_600_000, description="Default: the source run's.")
    max_retries: Int | None = Field(default=None, ge=0, le=10, description="Default: the source run's.")


# -- projects and keys ---------------------------------------------------------------------

Slug = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
             description="Lowercase letters, digits and inner hyphens; the project's name in URLs.")
Role = Literal["reader", "writer", "admin"]


class ProjectCreate(WireModel):
    name: str = Name
    slug: str = Slug


class Project(ResponseModel):
    id: UUID
    name: str
    slug: str
    created_at: datetime | None = Field(description="null for the default project, which always exists.")
    created_by: str | None


class ProjectList(ResponseModel):
    projects: list[Project]


class KeyCreate(WireModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w][\w .@:+-]{0,99}$",
                      description="What the key is for (shown in lists and recorded as the actor of its changes).")
    role: Role


class ApiKey(ResponseModel):
    id: UUID
    project_id: UUID | None = Field(description="null for an instance key.")
    name: str
    role: Role
    prefix: str = Field(description="The secret's first characters, to recognise it.")
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = None
    revoked_at: datetime | None
    revoked_by: str | None
    rotated_from: UUID | None


class IssuedKey(ApiKey):
    secret: str = Field(description="The key itself. Shown this once: only a hash of it is stored.")


class ApiKeyList(ResponseModel):
    keys: list[ApiKey]


class Me(ResponseModel):
    key_id: UUID | None = Field(description="null for the key set by EVALLEDGER_ADMIN_KEY.")
    name: str
    role: Role
    project: Project | None = Field(description="null for an instance key (it sees every project).")
    actor: str = Field(description="What the audit trail records for this key's changes.")
