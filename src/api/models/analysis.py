"""Run analytics and comparisons on the wire, and how a result's output differs."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from evalledger.api.models.base import *  # noqa: F403
from evalledger.api.models.datasets import FieldChange
from evalledger.api.paging import paged
from evalledger.api.wire import ABSENT_IF_NONE, encode, encode_by_name



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


class AnalyticsGroup(ResponseModel):
    """One value of the metadata field a run's analytics are grouped by (`RunAnalytics.groups`,
    documented there as free-form JSON)."""

    results: int
    succeeded: int
    failed: int
    success_rate: float | None
    latency_ms: LatencyStats
    scorers: dict[str, ScorerStats]


class VariableItem(ResponseModel):
    item_id: UUID
    mean: float | None
    variance: float | None
    repetitions: int


class RepetitionSpread(ResponseModel):
    """How much one scorer's scores of an item vary across repetitions (`RunAnalytics.repetitions`)."""

    mean_variance: float | None
    max_variance: float | None
    most_variable_items: list[VariableItem]


class RunAnalytics(ResponseModel):
    wire_sources: ClassVar[dict[str, Any]] = {
        "groups": lambda o: encode_by_name(AnalyticsGroup, o.groups),
        "repetitions": lambda o: encode_by_name(RepetitionSpread, o.repetitions),
    }

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
    group_by: Annotated[str | None, ABSENT_IF_NONE] = None
    groups: Annotated[dict[str, dict[str, JSONValue]] | None, ABSENT_IF_NONE] = None
    repetitions: Annotated[dict[str, JSONValue] | None, ABSENT_IF_NONE] = None


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
    wire_sources: ClassVar[dict[str, Any]] = {
        "confidence_interval": lambda o: {"level": o.confidence_interval.level, "low": o.confidence_interval.low,
                                          "high": o.confidence_interval.high},
        "threshold": lambda o: {"value": o.threshold.value, "direction": o.threshold.direction},
    }

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


class OutputDiff(ResponseModel):
    wire_sources: ClassVar[dict[str, Any]] = {
        "segments": lambda o: None if o.segments is None else [{"op": s.op, "text": s.text} for s in o.segments],
        "changes": lambda o: None if o.changes is None else [encode(FieldChange, c) for c in o.changes],
    }

    kind: Literal["text", "json", "missingOutput", "noExpectedOutput"]
    equal: bool
    segments: Annotated[list[dict[str, str]] | None, ABSENT_IF_NONE] = Field(
        default=None, description="text: runs of the two texts, each `op` equal, del (expected only) or add "
        "(output only).")
    changes: Annotated[list[dict[str, JSONValue]] | None, ABSENT_IF_NONE] = Field(
        default=None, description="json: field-level changes from the expected output to the output.")
    missing: Annotated[list[Literal["A", "B"]] | None, ABSENT_IF_NONE] = Field(
        default=None, description="missingOutput of two runs: the runs without an output.")


def _content_change(o: Any) -> dict[str, Any] | None:
    change = o.content_change
    if change is None:
        return None
    return {"change": change.change,
            "fields": None if change.fields is None else [encode(FieldChange, c) for c in change.fields]}


class ComparisonItem(ResponseModel):
    wire_sources: ClassVar[dict[str, Any]] = {"content_change": _content_change}

    item_id: UUID
    status: Literal["regressed", "improved", "unchanged", "onlyInA", "onlyInB"]
    scores: dict[str, ScoreChange] = Field(description="Per scorer: the item's score in A and B (repetitions "
                                           "averaged) and B minus A.")
    content_changed: Annotated[bool | None, ABSENT_IF_NONE] = Field(
        default=None, description="The runs pinned different versions: whether the item's content changed between "
        "them.")
    content_change: Annotated[dict[str, JSONValue] | None, ABSENT_IF_NONE] = None
    output_diff: Annotated[OutputDiff | None, ABSENT_IF_NONE] = Field(default=None, description="How B's output "
                                                                      "differs from A's.")


def _latency(o: Any) -> dict[str, dict[str, float | None]]:
    return {side: {"p50": value.p50, "p95": value.p95}
            for side, value in (("a", o.latency.a), ("b", o.latency.b), ("delta", o.latency.delta))}


class Comparison(ResponseModel):
    wire_sources: ClassVar[dict[str, Any]] = {
        "latency": _latency,
        "warnings": lambda o: [{"code": w.code, "message": w.message} for w in o.warnings],
        "items_pagination": lambda o: paged(o.items_total, o.items_page, o.items_per_page),
    }

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
