"""Runs, their results and reviews on the wire (analytics and comparisons: analysis.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from evalledger.api.models.analysis import *  # noqa: F403
from evalledger.api.models.base import *  # noqa: F403
from evalledger.api.models.datasets import *  # noqa: F403
from evalledger.api.wire import ABSENT_IF_NONE, AS_RECORDED, PresentWhen, encode_by_name


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
    failed: Annotated[int | None, PresentWhen("live")] = Field(
        default=None, description="Live counters (while this process executes the run): results that failed.")
    items_per_second: Annotated[float | None, PresentWhen("live")] = None
    eta_seconds: Annotated[float | None, PresentWhen("live")] = Field(
        default=None, description="Seconds left at the current rate (null until there is a rate).")
    live: Annotated[bool | None, PresentWhen("live")] = Field(
        default=None, description="true: the counters are the executor's own, ahead of the read model.")


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
    wire_sources: ClassVar[dict[str, Any]] = {"score_summary": lambda o: encode_by_name(ScorerStats, o.score_summary)}

    progress: RunProgress
    score_summary: Annotated[dict[str, JSONValue] | None, ABSENT_IF_NONE] = Field(
        default=None, description="Per scorer: count, mean, median, std, min, max, passRate (at 0.5), errorCount "
        "(finished runs; see /analytics for more).")
    status_reason: Annotated[RunStatusReason | None, ABSENT_IF_NONE] = Field(
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
    trace_url: Annotated[str | None, ABSENT_IF_NONE] = Field(
        default=None, description="A link to the trace (EVALLEDGER_TRACE_URL's template filled with the ids).")
    usage: dict[str, JSONValue] | None = Field(
        default=None, description="What the target used, as it reported it: inputTokens, outputTokens, cost, model.")
    scores: Annotated[list[Score], AS_RECORDED] = Field(
        description="The scores that count: a reviewer's override replaces the automatic score (marked `reviewed`, "
        "with `automaticScore`).")
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


class ResultDetail(RunResult):
    automatic_scores: Annotated[list[Score], AS_RECORDED]
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
