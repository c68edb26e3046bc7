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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import numpy as np

from evalledger.analysis.output_diff import change_dict, runs_output_diff
from evalledger.analysis.paired import paired
from evalledger.domain.errors import ConflictError, InvalidRequestError
from evalledger.domain.runs import FINISHED
from evalledger.projections.dataset_queries import DatasetQueries
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


class RunComparer:
    def __init__(self, runs: RunQueries, datasets: DatasetQueries) -> None:
        self.runs = runs
        self.datasets = datasets

    def compare(self, run_a: UUID, run_b: UUID, options: CompareOptions) -> dict[str, Any]:
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
            scorers[scorer_id] = {
                "pairedItems": result.n,
                "meanA": result.mean_a,
                "meanB": result.mean_b,
                "delta": result.delta,
                "confidenceInterval": {"level": 1 - options.alpha, "low": result.ci_low, "high": result.ci_high},
                "pValue": result.p_value,
                "test": result.test,
                "improved": int(np.count_nonzero(improved_cell[valid, j])),
                "regressed": int(np.count_nonzero(regressed_cell[valid, j])),
                "unchanged": int(np.count_nonzero(valid)) - int(np.count_nonzero(improved_cell[valid, j]))
                - int(np.count_nonzero(regressed_cell[valid, j])),
                "threshold": {"value": threshold.value, "direction": threshold.direction},
                "verdict": verdict,
                "reviewedA": reviewed_a.get(scorer_id, 0),
                "reviewedB": reviewed_b.get(scorer_id, 0),
            }

        status = np.full(len(item_ids), "unchanged", dtype=object)
        status[both & improved_cell.any(axis=1)] = "improved"
        status[both & regressed_cell.any(axis=1)] = "regressed"
        status[in_a & ~in_b] = "onlyInA"
        status[in_b & ~in_a] = "onlyInB"

        warnings = self._warnings(a, b, int(both.sum()))
        content_changes = self._content_changes(a, b)
        page = self._items_page(item_ids, status, scores_a, scores_b, scorer_ids, content_changes, options)
        self._add_output_diffs(run_a, run_b, page["items"])
        return {
            "runIdA": run_a,
            "runIdB": run_b,
            "datasetVersionA": a["dataset_version"],
            "datasetVersionB": b["dataset_version"],
            "partial": bool(unfinished),
            "alpha": options.alpha,
            "pairedItems": int(both.sum()),
            "onlyInA": int((in_a & ~in_b).sum()),
            "onlyInB": int((in_b & ~in_a).sum()),
            "hasRegression": any(s["verdict"] == "regressed" for s in scorers.values()),
            "scorers": scorers,
            "latency": self._latency(run_a, run_b),
            "usage": self._usage(run_a, run_b),
            "warnings": warnings,
            **page,
        }

    def _add_output_diffs(self, run_a: UUID, run_b: UUID, entries: list[dict[str, Any]]) -> None:
        """Each item of the page: how B's output differs from A's (first repetitions)."""
        ids = [entry["itemId"] for entry in entries]
        if not ids:
            return
        outputs_a, outputs_b = self.runs.first_outputs(run_a, ids), self.runs.first_outputs(run_b, ids)
        for entry in entries:
            entry["outputDiff"] = runs_output_diff(outputs_a.get(entry["itemId"]), outputs_b.get(entry["itemId"]))

    def _items_page(
        self,
        item_ids: list[UUID],
        status: np.ndarray,
        scores_a: np.ndarray,
        scores_b: np.ndarray,
        scorer_ids: list[str],
        content_changes: dict[UUID, dict[str, Any]] | None,
        options: CompareOptions,
    ) -> dict[str, Any]:
        """Items, worst news first: regressions by how much, then improvements, unchanged,
        and items in only one run; one page of them."""
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
                scores[scorer_id] = {"a": a_score, "b": b_score, "delta": delta}
            entry: dict[str, Any] = {"itemId": item_ids[k], "status": status[k], "scores": scores}
            if content_changes is not None:
                change = content_changes.get(item_ids[k])
                entry["contentChanged"] = change is not None
                if change is not None:
                    entry["contentChange"] = change
            entries.append(entry)
        total = len(order)
        return {
            "items": entries,
            "itemsPagination": {
                "total": total,
                "page": options.items_page,
                "perPage": options.items_per_page,
                "hasMore": start + options.items_per_page < total,
            },
        }

    def _content_changes(self, a: dict[str, Any], b: dict[str, Any]) -> dict[UUID, dict[str, Any]] | None:
        """Item changes between the two pinned versions (None when there is nothing to say)."""
        if a["dataset_id"] != b["dataset_id"] or a["dataset_version"] == b["dataset_version"]:
            return None
        changes: dict[UUID, dict[str, Any]] = {}
        page = 0
        while True:
            diff = self.datasets.diff(a["dataset_id"], a["dataset_version"], b["dataset_version"], page, 10_000)
            for entry in diff.changes:
                changes[entry.item_id] = {"change": entry.change, "fields": None if entry.changes is None
                                          else [change_dict(c) for c in entry.changes]}
            if (page + 1) * 10_000 >= diff.total:
                return changes
            page += 1

    def _latency(self, run_a: UUID, run_b: UUID) -> dict[str, Any]:
        la, lb = self.runs.latency(run_a), self.runs.latency(run_b)

        def delta(key: str) -> float | None:
            return lb[key] - la[key] if la.get(key) is not None and lb.get(key) is not None else None

        return {
            "a": {"p50": la.get("p50"), "p95": la.get("p95")},
            "b": {"p50": lb.get("p50"), "p95": lb.get("p95")},
            "delta": {"p50": delta("p50"), "p95": delta("p95")},
        }

    def _usage(self, run_a: UUID, run_b: UUID) -> dict[str, Any]:
        """What each run used (tokens, cost: totals, means per result, each scorer's) and B's
        difference from A (None where either run reported nothing)."""
        ua, ub = self.runs.usage(run_a), self.runs.usage(run_b)

        def delta(a: float | None, b: float | None) -> float | None:
            return b - a if a is not None and b is not None else None

        totals = ("inputTokens", "outputTokens", "cost")
        return {
            "a": ua,
            "b": ub,
            "delta": {
                **{key: delta(ua[key], ub[key]) for key in totals},
                "totalCost": delta(ua["totalCost"], ub["totalCost"]),
                "perItem": {key: delta(ua["perItem"][key], ub["perItem"][key]) for key in totals},
            },
        }

    @staticmethod
    def _warnings(a: dict[str, Any], b: dict[str, Any], paired_count: int) -> list[dict[str, str]]:
        warnings = []
        if a["dataset_id"] != b["dataset_id"]:
            warnings.append({"code": "different-datasets",
                             "message": "the runs are on different datasets; items pair by id only"})
        elif a["dataset_version"] != b["dataset_version"]:
            warnings.append({"code": "different-dataset-versions",
                             "message": f"the runs pinned versions {a['dataset_version']} and {b['dataset_version']};"
                             " items whose content changed are marked"})
        for run, name in ((a, "A"), (b, "B")):
            if run["recorded"] == 0:
                warnings.append({"code": "empty-run", "message": f"run {name} ({run['run_id']}) has no results"})
        if paired_count == 0:
            warnings.append({"code": "no-overlapping-items",
                             "message": "no item has results in both runs; there is nothing to compare"})
        return warnings
