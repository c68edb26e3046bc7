"""Runs, their results, analytics, comparisons and reviews on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from evalledger.api.models.base import *  # noqa: F403
from evalledger.api.models.datasets import *  # noqa: F403


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
