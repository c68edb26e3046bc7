"""Did the candidate run get worse than the baseline? Per scorer and per item, with
statistics over the paired items only.

Items are paired by item id (repetitions averaged per item). A reviewer's score replaces
the automatic one (`reviewedA` / `reviewedB` count such results per scorer). Each item of
the page says how B's output differs from A's (`outputDiff`, first repetitions). For each scorer: means, the
paired difference with a confidence interval and a p-value (see paired.py), counts of
items improved / regressed / unchanged, and a verdict that needs both significance
(p < alpha) and, when a threshold is set for that scorer, a difference at least that
large. When the runs pinned different versions of a dataset, each paired item says
whether its content changed between them, field by field. What the runs used (tokens and
cost, the target's and each scorer's) is set side by side with B's difference (`usage`).

Answers are typed snake_case objects: a comparison holds one page of its items and how many
there are; `api/` writes them, with the page's pagination, as the wire has them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import numpy as np

from evalledger.analysis.output_diff import OutputDiff, runs_output_diff
from evalledger.analysis.paired import paired
from evalledger.domain.errors import ConflictError, InvalidRequestError
from evalledger.domain.runs import FINISHED
from evalledger.projections.dataset_queries import DatasetQueries, FieldChange
from evalledger.projections.run_analytics import Usage, UsagePerItem
from evalledger.projections.run_queries import RunQueries

# Score differences smaller than this are "unchanged" for an item.
EPSILON = 1e-9
STATUS_ORDER = ("regressed", "improved", "unchanged", "onlyInA", "onlyInB")


@dataclass(frozen=True)
class Threshold:
    value: float = 0.0
    direction: Literal["higher-is-better", "lower-is-better"] = "higher-is-better"

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "higher-is-better" else -1.0


@dataclass(frozen=True)
class CompareOptions:
    thresholds: dict[str, Threshold] = field(default_factory=dict)
    alpha: float = 0.05
    allow_partial: bool = False
    items_page: int = 0
    items_per_page: int = 100
    item_status: str | None = None


@dataclass(slots=True)
class ConfidenceInterval:
    level: float
    low: float | None
    high: float | None


@dataclass(slots=True)
class ScorerComparison:
    paired_items: int
    mean_a: float | None
    mean_b: float | None
    delta: float | None
    confidence_interval: ConfidenceInterval
    p_value: float | None
    test: str | None
    improved: int
    regressed: int
    unchanged: int
    threshold: Threshold
    verdict: str  # regressed, improved, no-significant-change
    reviewed_a: int
    reviewed_b: int


@dataclass(slots=True)
class ScoreChange:
    a: float | None
    b: float | None
    delta: float | None


@dataclass(slots=True)
class ContentChange:
    """How an item changed between the two runs' pinned versions."""

    change: str  # added, removed, changed
    fields: list[FieldChange] | None


@dataclass(slots=True)
class ComparisonItem:
    item_id: UUID
    status: str  # one of STATUS_ORDER
    scores: dict[str, ScoreChange]
    content_changed: bool | None = None  # None: the runs pinned one version
    content_change: ContentChange | None = None
    output_diff: OutputDiff | None = None


@dataclass(slots=True)
class Percentiles:
    p50: float | None
    p95: float | None


@dataclass(slots=True)
class LatencyComparison:
    a: Percentiles
    b: Percentiles
    delta: Percentiles


@dataclass(slots=True)
class UsageDelta:
    input_tokens: float | None
    output_tokens: float | None
    cost: float | None
    total_cost: float | None
    per_item: UsagePerItem


@dataclass(slots=True)
class UsageComparison:
    a: Usage
    b: Usage
    delta: UsageDelta  # B minus A; None where either run reported nothing


@dataclass(slots=True)
class ComparisonWarning:
    code: str
    message: str


@dataclass(slots=True)
class Comparison:
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
    latency: LatencyComparison
    usage: UsageComparison
    warnings: list[ComparisonWarning]
    items: list[ComparisonItem]  # one page of them, worst news first
    items_total: int  # items of the asked status (all of them: no status asked)
    items_page: int
    items_per_page: int


class RunComparer:
    def __init__(self, runs: RunQueries, datasets: DatasetQueries) -> None:
        self.runs = runs
        self.datasets = datasets

    def compare(self, run_a: UUID, run_b: UUID, options: CompareOptions) -> Comparison:
        if run_a == run_b:
            raise InvalidRequestError("a run compared with itself shows no difference; give two different runs")
        a, b = self.runs.run_row(run_a), self.runs.run_row(run_b)
        unfinished = [r["run_id"] for r in (a, b) if r["status"] not in FINISHED]
        if unfinished and not options.allow_partial:
            raise ConflictError(
                f"run(s) {', '.join(map(str, unfinished))} still in progress; compare when finished, or pass "
                "allowPartial=true for a partial comparison",
            )
        presence = self.runs.item_presence(run_a, run_b)
        rows = self.runs.paired_scores(run_a, run_b)
        item_ids = [row[0] for row in presence]
        index = {item_id: k for k, item_id in enumerate(item_ids)}
        in_a = np.array([row[1] for row in presence], dtype=bool)
        in_b = np.array([row[2] for row in presence], dtype=bool)
        scorer_ids = sorted({row[1] for row in rows})
        column = {scorer_id: k for k, scorer_id in enumerate(scorer_ids)}
        scores_a = np.full((len(item_ids), len(scorer_ids)), np.nan)
        scores_b = np.full_like(scores_a, np.nan)
        for item_id, scorer_id, score_a, score_b in rows:
            k, j = index[item_id], column[scorer_id]
            if score_a is not None:
                scores_a[k, j] = score_a
            if score_b is not None:
                scores_b[k, j] = score_b
        both = in_a & in_b
        signs = np.array([options.thresholds.get(s, Threshold()).sign for s in scorer_ids])
        directional = (scores_b - scores_a) * signs  # > 0: better
        regressed_cell = directional < -EPSILON
        improved_cell = directional > EPSILON

        # Reviewed scores count where there are any (run_queries); say how many, per run.
        reviewed_a, reviewed_b = self.runs.review_counts(run_a), self.runs.review_counts(run_b)
        scorers = {}
        for scorer_id, j in column.items():
            threshold = options.thresholds.get(scorer_id, Threshold())
            valid = both & ~np.isnan(scores_a[:, j]) & ~np.isnan(scores_b[:, j])
            result = paired(scores_a[valid, j], scores_b[valid, j], confidence=1 - options.alpha)
            verdict = "no-significant-change"
            if result.p_value is not None and result.p_value < options.alpha and result.delta is not None:
                gain = result.delta * threshold.sign
                if abs(result.delta) >= threshold.value:
                    verdict = "improved" if gain > 0 else "regressed" if gain < 0 else verdict
            improved = int(np.count_nonzero(improved_cell[valid, j]))
            regressed = int(np.count_nonzero(regressed_cell[valid, j]))
            scorers[scorer_id] = ScorerComparison(
                paired_items=result.n, mean_a=result.mean_a, mean_b=result.mean_b, delta=result.delta,
                confidence_interval=ConfidenceInterval(1 - options.alpha, result.ci_low, result.ci_high),
                p_value=result.p_value, test=result.test, improved=improved, regressed=regressed,
                unchanged=int(np.count_nonzero(valid)) - improved - regressed, threshold=threshold, verdict=verdict,
                reviewed_a=reviewed_a.get(scorer_id, 0), reviewed_b=reviewed_b.get(scorer_id, 0),
            )

        status = np.full(len(item_ids), "unchanged", dtype=object)
        status[both & improved_cell.any(axis=1)] = "improved"
        status[both & regressed_cell.any(axis=1)] = "regressed"
        status[in_a & ~in_b] = "onlyInA"
        status[in_b & ~in_a] = "onlyInB"

        warnings = self._warnings(a, b, int(both.sum()))
        content_changes = self._content_changes(a, b)
        items, total = self._items_page(item_ids, status, scores_a, scores_b, scorer_ids, content_changes, options)
        self._add_output_diffs(run_a, run_b, items)
        return Comparison(
            run_id_a=run_a,
            run_id_b=run_b,
            dataset_version_a=a["dataset_version"],
            dataset_version_b=b["dataset_version"],
            partial=bool(unfinished),
            alpha=options.alpha,
            paired_items=int(both.sum()),
            only_in_a=int((in_a & ~in_b).sum()),
            only_in_b=int((in_b & ~in_a).sum()),
            has_regression=any(s.verdict == "regressed" for s in scorers.values()),
            scorers=scorers,
            latency=self._latency(run_a, run_b),
            usage=self._usage(run_a, run_b),
            warnings=warnings,
            items=items,
            items_total=total,
            items_page=options.items_page,
            items_per_page=options.items_per_page,
        )

    def _add_output_diffs(self, run_a: UUID, run_b: UUID, entries: list[ComparisonItem]) -> None:
        """Each item of the page: how B's output differs from A's (first repetitions)."""
        ids = [entry.item_id for entry in entries]
        if not ids:
            return
        outputs_a, outputs_b = self.runs.first_outputs(run_a, ids), self.runs.first_outputs(run_b, ids)
        for entry in entries:
            entry.output_diff = runs_output_diff(outputs_a.get(entry.item_id), outputs_b.get(entry.item_id))

    def _items_page(
        self,
        item_ids: list[UUID],
        status: np.ndarray,
        scores_a: np.ndarray,
        scores_b: np.ndarray,
        scorer_ids: list[str],
        content_changes: dict[UUID, ContentChange] | None,
        options: CompareOptions,
    ) -> tuple[list[ComparisonItem], int]:
        """Items, worst news first: regressions by how much, then improvements, unchanged,
        and items in only one run; one page of them, and how many there are."""
        rank = np.array([STATUS_ORDER.index(s) for s in status]) if len(status) else np.array([], dtype=int)
        worst = np.nan_to_num(np.nanmin(scores_b - scores_a, axis=1, initial=0.0), nan=0.0) if len(status) else rank
        order = np.lexsort((worst, rank))
        if options.item_status:
            order = order[status[order] == options.item_status]
        start = options.items_page * options.items_per_page
        page = order[start : start + options.items_per_page]
        entries = []
        for k in page:
            scores = {}
            for j, scorer_id in enumerate(scorer_ids):
                a_score = None if np.isnan(scores_a[k, j]) else float(scores_a[k, j])
                b_score = None if np.isnan(scores_b[k, j]) else float(scores_b[k, j])
                delta = b_score - a_score if a_score is not None and b_score is not None else None
                scores[scorer_id] = ScoreChange(a_score, b_score, delta)
            entry = ComparisonItem(item_ids[k], str(status[k]), scores)
            if content_changes is not None:
                entry.content_change = content_changes.get(item_ids[k])
                entry.content_changed = entry.content_change is not None
            entries.append(entry)
        return entries, len(order)

    def _content_changes(self, a: dict[str, Any], b: dict[str, Any]) -> dict[UUID, ContentChange] | None:
        """Item changes between the two pinned versions (None when there is nothing to say)."""
        if a["dataset_id"] != b["dataset_id"] or a["dataset_version"] == b["dataset_version"]:
            return None
        changes: dict[UUID, ContentChange] = {}
        page = 0
        while True:
            diff = self.datasets.diff(a["dataset_id"], a["dataset_version"], b["dataset_version"], page, 10_000)
            for entry in diff.changes:
                changes[entry.item_id] = ContentChange(entry.change, entry.changes)
            if (page + 1) * 10_000 >= diff.total:
                return changes
            page += 1

    def _latency(self, run_a: UUID, run_b: UUID) -> LatencyComparison:
        la, lb = self.runs.latency(run_a), self.runs.latency(run_b)

        def delta(a: float | None, b: float | None) -> float | None:
            return b - a if a is not None and b is not None else None

        return LatencyComparison(Percentiles(la.p50, la.p95), Percentiles(lb.p50, lb.p95),
                                 Percentiles(delta(la.p50, lb.p50), delta(la.p95, lb.p95)))

    def _usage(self, run_a: UUID, run_b: UUID) -> UsageComparison:
        """What each run used (tokens, cost: totals, means per result, each scorer's) and B's
        difference from A (None where either run reported nothing)."""
        ua, ub = self.runs.usage(run_a), self.runs.usage(run_b)

        def delta(a: float | None, b: float | None) -> float | None:
            return b - a if a is not None and b is not None else None

        per_a, per_b = ua.per_item, ub.per_item
        return UsageComparison(ua, ub, UsageDelta(
            input_tokens=delta(ua.input_tokens, ub.input_tokens),
            output_tokens=delta(ua.output_tokens, ub.output_tokens),
            cost=delta(ua.cost, ub.cost), total_cost=delta(ua.total_cost, ub.total_cost),
            per_item=UsagePerItem(delta(per_a.input_tokens, per_b.input_tokens),
                                  delta(per_a.output_tokens, per_b.output_tokens), delta(per_a.cost, per_b.cost)),
        ))

    @staticmethod
    def _warnings(a: dict[str, Any], b: dict[str, Any], paired_count: int) -> list[ComparisonWarning]:
        warnings = []
        if a["dataset_id"] != b["dataset_id"]:
            warnings.append(ComparisonWarning("different-datasets",
                                              "the runs are on different datasets; items pair by id only"))
        elif a["dataset_version"] != b["dataset_version"]:
            warnings.append(ComparisonWarning("different-dataset-versions",
                                    f"the runs pinned versions {a['dataset_version']} and {b['dataset_version']};"
                                    " items whose content changed are marked"))
        for run, name in ((a, "A"), (b, "B")):
            if run["recorded"] == 0:
                warnings.append(ComparisonWarning("empty-run", f"run {name} ({run['run_id']}) has no results"))
        if paired_count == 0:
            warnings.append(ComparisonWarning("no-overlapping-items",
                                    "no item has results in both runs; there is nothing to compare"))
        return warnings
