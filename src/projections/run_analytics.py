"""Aggregates over a run's results (see projections/runs.py): per-scorer statistics, outcomes
and latency, usage, histograms, and the per-item reads a comparison of two runs pairs.

Answers are typed snake_case objects (the dataclasses below); `api/` puts them on the wire.

Aggregates are computed in PostgreSQL. percentile_cont interpolates linearly between the
closest ranks, which is numpy.percentile's default method, so the two agree. Every score read
here is the one that counts: a reviewer's override where there is one (`reviewed_scores`),
else the automatic score. Sums (means, deviations) are taken over exact numerics: a float sum
depends on the order rows are read in, and a rebuilt table may hold them in another order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from evalledger.domain.runs import FINISHED, RunNotFoundError, declared_scorer_ids
from evalledger.projections.tables import Tables

_SCORE = "(s->>'score')::float8"
_EXACT_SCORE = "(s->>'score')::numeric"


# Joins a result row `r` to its item as it was at the run's pinned version.
ITEM_AT_PINNED_VERSION = (
    " JOIN {items} i ON i.dataset_id = %(d)s AND i.item_id = r.item_id AND i.valid_from <= %(v)s"
    " AND (i.valid_to IS NULL OR i.valid_to > %(v)s) AND NOT i.deleted"
)


@dataclass(slots=True)
class ScorerStats:
    count: int = 0
    mean: float | None = None
    median: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    pass_rate: float | None = None
    error_count: int = 0
    reviewed_count: int = 0


@dataclass(slots=True)
class LatencyStats:
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    max: float | None = None


@dataclass(slots=True)
class UsagePerItem:
    input_tokens: float | None
    output_tokens: float | None
    cost: float | None


@dataclass(slots=True)
class UsageTotals:
    results: int
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    models: list[str]
    per_item: UsagePerItem


@dataclass(slots=True)
class Usage(UsageTotals):
    """What a run used: its target's totals, each scorer's that reported any, and the two costs together."""

    scorers: dict[str, UsageTotals] = field(default_factory=dict)
    total_cost: float | None = None


@dataclass(slots=True)
class Outcomes:
    """How a run's results (or a group of them) came out, and how long they took."""

    results: int
    succeeded: int
    failed: int
    success_rate: float | None
    latency_ms: LatencyStats


@dataclass(slots=True)
class GroupStats(Outcomes):
    scorers: dict[str, ScorerStats] = field(default_factory=dict)


@dataclass(slots=True)
class VariableItem:
    item_id: UUID
    mean: float | None
    variance: float | None
    repetitions: int


@dataclass(slots=True)
class RepetitionSpread:
    """How much a scorer's scores of an item vary across repetitions."""

    mean_variance: float | None
    max_variance: float | None
    most_variable_items: list[VariableItem] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class RunAnalytics(Outcomes):
    run_id: UUID
    status: str
    partial: bool
    threshold: float
    scorers: dict[str, ScorerStats]
    usage: Usage
    group_by: str | None = None  # "metadata.<path>"
    groups: dict[str, GroupStats] | None = None
    repetitions: dict[str, RepetitionSpread] | None = None


@dataclass(slots=True)
class LatencyHistogram:
    low: float | None
    high: float | None
    counts: list[int]


def _grouping(grouped: bool) -> tuple[str, str]:
    """The group column and join: a metadata path of the item, or one group for the run."""
    if grouped:
        return "i.metadata #>> %(path)s AS grp,", ITEM_AT_PINNED_VERSION
    return "NULL::text AS grp,", ""


def score_stats_sql(results: Composed, items: Composed, grouped: bool) -> Composed:
    """Per scorer (and per value of the metadata path `%(path)s` when grouped): counts, mean, median,
    standard deviation, min, max, pass rate at a threshold, errors."""
    group_select, join = _grouping(grouped)
    return SQL(
        "SELECT " + group_select + " s->>'scorerId' AS scorer_id, count(*) AS results,"
        f" count({_SCORE}) AS n, avg({_EXACT_SCORE})::float8 AS mean,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {_SCORE}) AS median,"
        f" stddev_samp({_EXACT_SCORE})::float8 AS std, min({_SCORE}) AS min, max({_SCORE}) AS max,"
        f" avg(CASE WHEN {_SCORE} >= %(t)s THEN 1.0 WHEN {_SCORE} IS NOT NULL THEN 0.0 END) AS pass_rate,"
        " count(*) FILTER (WHERE s->>'error' IS NOT NULL) AS errors,"
        " count(*) FILTER (WHERE (s->>'reviewed')::boolean) AS reviewed"
        " FROM {results} r" + join + " CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.reviewed_scores, r.scores)) s"
        " WHERE r.run_id = %(run)s GROUP BY 1, 2 ORDER BY 1, 2"
    ).format(results=results, items=items)


def outcome_stats_sql(results: Composed, items: Composed, grouped: bool) -> Composed:
    """Per group: results, succeeded, failed, and latency percentiles."""
    group_select, join = _grouping(grouped)
    return SQL(
        "SELECT " + group_select + " count(*) AS results,"
        " count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,"
        " count(*) FILTER (WHERE r.status = 'failed') AS failed,"
        " percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY r.latency_ms) AS latency_percentiles,"
        " avg(r.latency_ms::numeric)::float8 AS latency_mean, max(r.latency_ms) AS latency_max"
        " FROM {results} r" + join + " WHERE r.run_id = %(run)s GROUP BY 1 ORDER BY 1"
    ).format(results=results, items=items)


def usage_stats_sql(results: Composed) -> Composed:
    """What the run's results used, as their targets reported it: totals, and means over
    the results that reported usage (one per item and repetition)."""
    tokens = {side: f"(r.usage->>'{side}')::numeric" for side in ("inputTokens", "outputTokens", "cost")}
    return SQL(
        "SELECT count(r.usage) AS n,"
        f" sum({tokens['inputTokens']})::int8 AS input_tokens, sum({tokens['outputTokens']})::int8 AS output_tokens,"
        f" sum({tokens['cost']})::float8 AS cost, avg({tokens['inputTokens']})::float8 AS input_mean,"
        f" avg({tokens['outputTokens']})::float8 AS output_mean, avg({tokens['cost']})::float8 AS cost_mean,"
        " array_remove(array_agg(DISTINCT r.usage->>'model'), NULL) AS models"
        " FROM {results} r WHERE r.run_id = %(run)s"
    ).format(results=results)


def scorer_usage_sql(results: Composed) -> Composed:
    """What each scorer used (an LLM judge's tokens and cost, as its endpoint reported them),
    over the run's automatic scores that carry usage."""
    used = {side: f"(s->'usage'->>'{side}')::numeric" for side in ("inputTokens", "outputTokens", "cost")}
    return SQL(
        "SELECT s->>'scorerId' AS scorer_id, count(*) AS n,"
        f" sum({used['inputTokens']})::int8 AS input_tokens, sum({used['outputTokens']})::int8 AS output_tokens,"
        f" sum({used['cost']})::float8 AS cost, avg({used['inputTokens']})::float8 AS input_mean,"
        f" avg({used['outputTokens']})::float8 AS output_mean, avg({used['cost']})::float8 AS cost_mean,"
        " array_remove(array_agg(DISTINCT s->'usage'->>'model'), NULL) AS models"
        " FROM {results} r CROSS JOIN LATERAL jsonb_array_elements(r.scores) s"
        " WHERE r.run_id = %(run)s AND jsonb_typeof(s->'usage') = 'object' GROUP BY 1 ORDER BY 1"
    ).format(results=results)


_PER_ITEM = (
    f"WITH per AS (SELECT r.item_id, s->>'scorerId' AS scorer_id, avg({_EXACT_SCORE})::float8 AS mean,"
    f" var_samp({_EXACT_SCORE})::float8 AS variance, count({_SCORE}) AS n"
    " FROM {results} r CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.reviewed_scores, r.scores)) s WHERE r.run_id = %(run)s"
    " GROUP BY 1, 2)"
)


def _usage_totals(row: dict[str, Any]) -> UsageTotals:
    return UsageTotals(row["n"], row["input_tokens"], row["output_tokens"], row["cost"], sorted(row["models"] or []),
                       UsagePerItem(row["input_mean"], row["output_mean"], row["cost_mean"]))


def _add(*values: float | None) -> float | None:
    """The sum of the values that are there (None when none is)."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _scorer_stats(row: dict[str, Any]) -> ScorerStats:
    return ScorerStats(
        count=row["n"], mean=row["mean"], median=row["median"], std=row["std"], min=row["min"], max=row["max"],
        pass_rate=float(row["pass_rate"]) if row["pass_rate"] is not None else None, error_count=row["errors"],
        reviewed_count=row["reviewed"],
    )


def _with_declared(scorers: list[Any], stats: dict[str, ScorerStats]) -> dict[str, ScorerStats]:
    """Per-scorer statistics with every scorer the run declared, those without a score yet
    at count 0, so a report lists them before their first result."""
    return {**{scorer_id: ScorerStats() for scorer_id in declared_scorer_ids(scorers)}, **stats}


def _outcome_fields(row: dict[str, Any]) -> dict[str, Any]:
    p50, p95, p99 = row["latency_percentiles"] or (None, None, None)
    return {
        "results": row["results"], "succeeded": row["succeeded"], "failed": row["failed"],
        "success_rate": row["succeeded"] / row["results"] if row["results"] else None,
        "latency_ms": LatencyStats(p50, p95, p99, row["latency_mean"], row["latency_max"]),
    }


_NO_OUTCOMES = {"results": 0, "succeeded": 0, "failed": 0, "latency_percentiles": None, "latency_mean": None,
                "latency_max": None}


class RunTables(Tables):
    """The runs projection's tables, and the run row every read starts from."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        schema = Identifier(datastore.schema)
        self._runs = SQL("{}.runs").format(schema)
        self._results = SQL("{}.run_results").format(schema)
        self._items = SQL("{}.dataset_items").format(schema)

    def run_row(self, run_id: UUID) -> dict[str, Any]:
        rows = self._fetch(SQL("SELECT * FROM {} WHERE run_id = %s").format(self._runs), (run_id,))
        if not rows:
            raise RunNotFoundError(f"run {run_id} not found")
        return rows[0]


class RunAnalyticsQueries(RunTables):
    """Aggregates of a run's results, and what comparing two runs reads of them."""

    def score_summary(self, run_id: UUID, threshold: float = 0.5) -> dict[str, ScorerStats]:
        """Per scorer statistics (as in analytics), for the run's own summary."""
        rows = self._fetch(score_stats_sql(self._results, self._items, False), {"run": run_id, "t": threshold})
        return {row["scorer_id"]: _scorer_stats(row) for row in rows}

    def usage(self, run_id: UUID) -> Usage:
        """What a run used: the target's tokens and cost (totals, and means per result that
        reported usage), each scorer's that reported any (`scorers`: an LLM judge's), and
        `total_cost`, the target's and the scorers' together (None when nothing reported a cost)."""
        params = {"run": run_id}
        target = _usage_totals(self._fetch(usage_stats_sql(self._results), params)[0])
        scorers = {row["scorer_id"]: _usage_totals(row) for row in self._fetch(scorer_usage_sql(self._results), params)}
        return Usage(target.results, target.input_tokens, target.output_tokens, target.cost, target.models,
                     target.per_item, scorers, _add(target.cost, *(s.cost for s in scorers.values())))

    def analytics(self, run_id: UUID, *, threshold: float = 0.5, group_by: list[str] | None = None,
                  item_limit: int = 100) -> RunAnalytics:
        """Success rate, per-scorer statistics and latency percentiles of a run, optionally per
        value of a metadata field of its items, and with repetitions, how much each item's
        score varies across them."""
        run = self.run_row(run_id)
        params = {"run": run_id, "t": threshold, "d": run["dataset_id"], "v": run["dataset_version"],
                  "path": group_by or [], "limit": item_limit}
        overall = self._fetch(outcome_stats_sql(self._results, self._items, False), params)
        scores = self._fetch(score_stats_sql(self._results, self._items, False), params)
        answer = RunAnalytics(
            run_id=run_id, status=run["status"], partial=run["status"] not in FINISHED, threshold=threshold,
            **_outcome_fields(overall[0] if overall else _NO_OUTCOMES),
            scorers=_with_declared(run["scorers"], {row["scorer_id"]: _scorer_stats(row) for row in scores}),
            usage=self.usage(run_id),
        )
        if group_by:
            groups: dict[str, GroupStats] = {}
            for row in self._fetch(outcome_stats_sql(self._results, self._items, True), params):
                groups[row["grp"] or "(none)"] = GroupStats(**_outcome_fields(row))
            for row in self._fetch(score_stats_sql(self._results, self._items, True), params):
                groups.setdefault(row["grp"] or "(none)", GroupStats(**_outcome_fields(_NO_OUTCOMES))
                                  ).scorers[row["scorer_id"]] = _scorer_stats(row)
            answer.group_by = "metadata." + ".".join(group_by)
            answer.groups = groups
        if run["settings"].get("repetitions", 1) > 1:
            answer.repetitions = self._repetition_stats(params)
        return answer

    def _repetition_stats(self, params: dict[str, Any]) -> dict[str, RepetitionSpread]:
        summary = {
            row["scorer_id"]: RepetitionSpread(row["mean_variance"], row["max_variance"])
            for row in self._fetch(
                SQL(_PER_ITEM + " SELECT scorer_id, avg(variance::numeric)::float8 AS mean_variance, max(variance) AS max_variance"
                    " FROM per GROUP BY 1").format(results=self._results),
                params,
            )
        }
        for row in self._fetch(
            SQL(_PER_ITEM + " SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY scorer_id"
                " ORDER BY variance DESC NULLS LAST, item_id) AS rank FROM per) ranked WHERE rank <= %(limit)s"
                " ORDER BY scorer_id, rank").format(results=self._results),
            params,
        ):
            summary[row["scorer_id"]].most_variable_items.append(
                VariableItem(row["item_id"], row["mean"], row["variance"], row["n"]))
        return summary

    def latency(self, run_id: UUID) -> LatencyStats:
        rows = self._fetch(outcome_stats_sql(self._results, self._items, False), {"run": run_id})
        return _outcome_fields(rows[0])["latency_ms"] if rows else LatencyStats()

    def score_histograms(self, run_id: UUID, bins: int = 10) -> dict[str, list[int]]:
        """Per scorer: how many scores fall in each of `bins` equal bins of [0, 1] (1.0 in the last)."""
        rows = self._fetch(
            SQL(
                f"SELECT s->>'scorerId' AS scorer_id, least(width_bucket({_SCORE}, 0, 1, %(bins)s), %(bins)s) AS bin,"
                " count(*) AS n FROM {} r CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.reviewed_scores, r.scores)) s"
                f" WHERE r.run_id = %(run)s AND {_SCORE} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
            ).format(self._results),
            {"run": run_id, "bins": bins},
        )
        histograms: dict[str, list[int]] = {}
        for row in rows:
            histograms.setdefault(row["scorer_id"], [0] * bins)[max(1, row["bin"]) - 1] += row["n"]
        return histograms

    def latency_histogram(self, run_id: UUID, bins: int = 20) -> LatencyHistogram:
        """How many results took how long: `bins` equal bins from the fastest to the slowest."""
        rows = self._fetch(
            SQL(
                "WITH bounds AS (SELECT min(latency_ms) AS lo, max(latency_ms) AS hi FROM {results}"
                " WHERE run_id = %(run)s AND latency_ms IS NOT NULL)"
                " SELECT b.lo, b.hi, CASE WHEN b.hi > b.lo THEN least(width_bucket(r.latency_ms, b.lo, b.hi, %(bins)s),"
                " %(bins)s) ELSE 1 END AS bin, count(*) AS n FROM {results} r, bounds b"
                " WHERE r.run_id = %(run)s AND r.latency_ms IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 3"
            ).format(results=self._results),
            {"run": run_id, "bins": bins},
        )
        if not rows:
            return LatencyHistogram(None, None, [])
        counts = [0] * bins
        for row in rows:
            counts[row["bin"] - 1] += row["n"]
        return LatencyHistogram(rows[0]["lo"], rows[0]["hi"], counts)

    # -- what a comparison of two runs reads --------------------------------------------------

    def review_counts(self, run_id: UUID) -> dict[str, int]:
        """Per scorer: how many of the run's results carry a reviewer's score."""
        rows = self._fetch(
            SQL("SELECT s->>'scorerId' AS scorer_id, count(*) AS n FROM {} r"
                " CROSS JOIN LATERAL jsonb_array_elements(r.reviewed_scores) s"
                " WHERE r.run_id = %(run)s AND r.reviewed_scores IS NOT NULL AND (s->>'reviewed')::boolean"
                " GROUP BY 1").format(self._results),
            {"run": run_id},
        )
        return {row["scorer_id"]: row["n"] for row in rows}

    def item_presence(self, run_a: UUID, run_b: UUID) -> list[tuple[UUID, bool, bool]]:
        """Every item with a result in either run: (item id, in A, in B)."""
        return self._fetch(SQL(
            "SELECT item_id, bool_or(run_id = %(a)s), bool_or(run_id = %(b)s) FROM {}"
            " WHERE run_id IN (%(a)s, %(b)s) GROUP BY item_id ORDER BY min(seq), item_id"
        ).format(self._results), {"a": run_a, "b": run_b}, tuple_row)

    def paired_scores(self, run_a: UUID, run_b: UUID) -> list[tuple[UUID, str, float | None, float | None]]:
        """Per item and scorer: the mean score (over repetitions) in A and in B."""
        return self._fetch(SQL(
            f"SELECT r.item_id, s->>'scorerId', avg({_EXACT_SCORE}) FILTER (WHERE r.run_id = %(a)s)::float8,"
            f" avg({_EXACT_SCORE}) FILTER (WHERE r.run_id = %(b)s)::float8"
            " FROM {} r CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.reviewed_scores, r.scores)) s"
            " WHERE r.run_id IN (%(a)s, %(b)s) GROUP BY 1, 2 ORDER BY 1, 2"
        ).format(self._results), {"a": run_a, "b": run_b}, tuple_row)

    def first_outputs(self, run_id: UUID, item_ids: list[UUID]) -> dict[UUID, Any]:
        """The output of repetition 0 of some items' results (a failed result has none)."""
        rows = self._fetch(
            SQL("SELECT item_id, output, error FROM {} WHERE run_id = %(run)s AND repetition = 0"
                " AND item_id = ANY(%(ids)s)").format(self._results),
            {"run": run_id, "ids": item_ids},
        )
        return {row["item_id"]: None if row["error"] is not None else row["output"] for row in rows}
