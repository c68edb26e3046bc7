"""Reads over the runs projection's tables (see projections/runs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import dict_row, tuple_row
from psycopg.sql import SQL, Composed, Identifier

from evalledger.analysis.output_diff import output_diff
from evalledger.domain.runs import FINISHED, ResultNotFoundError, RunNotFoundError, declared_scorer_ids


def run_wire(row: dict[str, Any]) -> dict[str, Any]:
    settings = row["settings"]
    finished = row["status"] in FINISHED
    pending = 0 if finished else max(0, row["expected_results"] - row["recorded"])
    return {
        "id": row["run_id"],
        "datasetId": row["dataset_id"],
        "datasetVersion": row["dataset_version"],
        "name": row["name"],
        "status": row["status"],
        "callerDriven": row["target"] is None,
        "target": row["target"],
        "scorers": row["scorers"],
        "settings": settings,
        "metadata": row["metadata"],
        "totalItems": row["total_items"],
        "repetitions": settings.get("repetitions", 1),
        "expectedResults": row["expected_results"],
        "succeededCount": row["succeeded"],
        "failedCount": row["failed"],
        "pendingCount": pending,
        "skippedCount": row["skipped"],
        "error": row["error"],
        "createdAt": row["created_at"],
        "startedAt": row["started_at"],
        "finishedAt": row["finished_at"],
        "progress": {
            "done": row["recorded"],
            "total": row["expected_results"],
            "fraction": (row["recorded"] / row["expected_results"]) if row["expected_results"] else 1.0,
        },
    }


def result_wire(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "itemId": row["item_id"],
        "repetition": row["repetition"],
        "status": row["status"],
        "input": row["input"],
        "expectedOutput": row["expected_output"],
        "itemMetadata": row["item_metadata"],
        "output": row["output"],
        "error": row["error"],
        "latencyMs": row["latency_ms"],
        "attempt": row["attempts"],
        "retryErrors": row["retry_errors"],
        "traceId": row["trace_id"],
        "usage": row["usage"],
        # The scores that count (a reviewer's overrides applied); `review` says who changed what.
        "scores": row.get("reviewed_scores") or row["scores"],
        "review": row.get("review"),
        "flagged": row.get("flagged", False),
        "startedAt": row["started_at"],
        "recordedAt": row["recorded_at"],
    }


# -- analytics ---------------------------------------------------------------------------------
# Aggregates are computed in PostgreSQL. percentile_cont interpolates linearly between the
# closest ranks, which is numpy.percentile's default method, so the two agree.

_SCORE = "(s->>'score')::float8"
# Every score read below is the one that counts: a reviewer's override where there is one
# (`reviewed_scores`, see projections/runs.py), else the automatic score.
# Sums (means, deviations) are taken over exact numerics: a float sum depends on the order
# rows are read in, and a rebuilt table may hold them in another order.
_EXACT_SCORE = "(s->>'score')::numeric"


# Joins a result row `r` to its item as it was at the run's pinned version.
_ITEM_AT_PINNED_VERSION = (
    " JOIN {items} i ON i.dataset_id = %(d)s AND i.item_id = r.item_id AND i.valid_from <= %(v)s"
    " AND (i.valid_to IS NULL OR i.valid_to > %(v)s) AND NOT i.deleted"
)


def _grouping(grouped: bool) -> tuple[str, str]:
    """The group column and join: a metadata path of the item, or one group for the run."""
    if grouped:
        return "i.metadata #>> %(path)s AS grp,", _ITEM_AT_PINNED_VERSION
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


def _usage_wire(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "results": row["n"],
        "inputTokens": row["input_tokens"],
        "outputTokens": row["output_tokens"],
        "cost": row["cost"],
        "models": sorted(row["models"] or []),
        "perItem": {"inputTokens": row["input_mean"], "outputTokens": row["output_mean"], "cost": row["cost_mean"]},
    }


def _stats_wire(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "count": row["n"],
        "mean": row["mean"],
        "median": row["median"],
        "std": row["std"],
        "min": row["min"],
        "max": row["max"],
        "passRate": float(row["pass_rate"]) if row["pass_rate"] is not None else None,
        "errorCount": row["errors"],
        "reviewedCount": row["reviewed"],
    }


def _with_declared(scorers: list[Any], stats: dict[str, Any]) -> dict[str, Any]:
    """Per-scorer statistics with every scorer the run declared, those without a score yet
    at count 0, so a report lists them before their first result."""
    empty = {"count": 0, "mean": None, "median": None, "std": None, "min": None, "max": None, "passRate": None,
             "errorCount": 0, "reviewedCount": 0}
    return {**{scorer_id: dict(empty) for scorer_id in declared_scorer_ids(scorers)}, **stats}


def _outcome_wire(row: dict[str, Any]) -> dict[str, Any]:
    p50, p95, p99 = row["latency_percentiles"] or (None, None, None)
    return {
        "results": row["results"],
        "succeeded": row["succeeded"],
        "failed": row["failed"],
        "successRate": row["succeeded"] / row["results"] if row["results"] else None,
        "latencyMs": {"p50": p50, "p95": p95, "p99": p99, "mean": row["latency_mean"], "max": row["latency_max"]},
    }

_PER_ITEM = (
    f"WITH per AS (SELECT r.item_id, s->>'scorerId' AS scorer_id, avg({_EXACT_SCORE})::float8 AS mean,"
    f" var_samp({_EXACT_SCORE})::float8 AS variance, count({_SCORE}) AS n"
    " FROM {results} r CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.reviewed_scores, r.scores)) s WHERE r.run_id = %(run)s"
    " GROUP BY 1, 2)"
)


class RunQueries:
    """Reads of runs, results and run analytics."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        schema = Identifier(datastore.schema)
        self._runs = SQL("{}.runs").format(schema)
        self._results = SQL("{}.run_results").format(schema)
        self._items = SQL("{}.dataset_items").format(schema)

    def _fetch(self, query: Composed, params: Any = None) -> list[dict[str, Any]]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=dict_row) as curs:
            curs.execute(query, params, prepare=True)
            return curs.fetchall()

    def project_of_run(self, run_id: UUID) -> UUID | None:
        """The project a run belongs to (its dataset's); None for an unknown run."""
        rows = self._fetch(SQL("SELECT d.project_id FROM {} r JOIN {}.datasets d USING (dataset_id)"
                               " WHERE r.run_id = %s").format(self._runs, Identifier(self.datastore.schema)),
                           (run_id,))
        return rows[0]["project_id"] if rows else None

    def run_row(self, run_id: UUID) -> dict[str, Any]:
        rows = self._fetch(SQL("SELECT * FROM {} WHERE run_id = %s").format(self._runs), (run_id,))
        if not rows:
            raise RunNotFoundError(f"run {run_id} not found")
        return rows[0]

    def get_run(self, run_id: UUID) -> dict[str, Any]:
        return run_wire(self.run_row(run_id))

    def list_runs(self, dataset_id: UUID, page: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
        rows = self._fetch(
            SQL(
                "SELECT *, count(*) OVER () AS total FROM {} WHERE dataset_id = %s"
                " ORDER BY created_at DESC, run_id LIMIT %s OFFSET %s"
            ).format(self._runs),
            (dataset_id, per_page, page * per_page),
        )
        if rows:
            return [run_wire(r) for r in rows], rows[0]["total"]
        count = self._fetch(SQL("SELECT count(*) AS n FROM {} WHERE dataset_id = %s").format(self._runs), (dataset_id,))
        return [result_wire(r) for r in rows], count[0]["n"]

    def run_ids(self) -> list[UUID]:
        return [r["run_id"] for r in self._fetch(SQL("SELECT run_id FROM {} ORDER BY created_at").format(self._runs))]

    def unfinished_target_runs(self) -> list[UUID]:
        rows = self._fetch(
            SQL(
                "SELECT run_id FROM {} WHERE status IN ('pending', 'running') AND target IS NOT NULL"
                " ORDER BY created_at"
            ).format(self._runs)
        )
        return [r["run_id"] for r in rows]

    def list_results(
        self, run_id: UUID, page: int, per_page: int, status: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Results in dataset order, each with the item's input and expected output as they
        were at the run's pinned version."""
        run = self.run_row(run_id)
        rows = self._fetch(
            SQL(
                "WITH page AS (SELECT * FROM {results} WHERE run_id = %(run)s"
                "  AND (%(status)s::text IS NULL OR status = %(status)s)"
                "  ORDER BY seq, repetition LIMIT %(limit)s OFFSET %(offset)s)"
                " SELECT r.*, i.input, i.expected_output, i.metadata AS item_metadata"
                " FROM page r" + _ITEM_AT_PINNED_VERSION + " ORDER BY r.seq, r.repetition"
            ).format(results=self._results, items=self._items),
            {
                "d": run["dataset_id"],
                "v": run["dataset_version"],
                "run": run_id,
                "status": status,
                "limit": per_page,
                "offset": page * per_page,
            },
        )
        if status is None:
            return [result_wire(r) for r in rows], run["recorded"]
        count = self._fetch(
            SQL(
                "SELECT count(*) AS n FROM {} WHERE run_id = %(run)s AND status = %(status)s"
            ).format(self._results),
            {"run": run_id, "status": status},
        )
        return [result_wire(r) for r in rows], count[0]["n"]

    def score_summary(self, run_id: UUID, threshold: float = 0.5) -> dict[str, Any]:
        """Per scorer statistics (as in analytics), for the run's own summary."""
        rows = self._fetch(score_stats_sql(self._results, self._items, False), {"run": run_id, "t": threshold})
        return {row["scorer_id"]: _stats_wire(row) for row in rows}

    def item_presence(self, run_a: UUID, run_b: UUID) -> list[tuple[UUID, bool, bool]]:
        """Every item with a result in either run: (item id, in A, in B)."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                SQL(
                    "SELECT item_id, bool_or(run_id = %(a)s), bool_or(run_id = %(b)s) FROM {}"
                    " WHERE run_id IN (%(a)s, %(b)s) GROUP BY item_id ORDER BY min(seq), item_id"
                ).format(self._results),
                {"a": run_a, "b": run_b},
                prepare=True,
            )
            return curs.fetchall()

    def paired_scores(self, run_a: UUID, run_b: UUID) -> list[tuple[UUID, str, float | None, float | None]]:
        """Per item and scorer: the mean score (over repetitions) in A and in B."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                SQL(
                    f"SELECT r.item_id, s->>'scorerId', avg({_EXACT_SCORE}) FILTER (WHERE r.run_id = %(a)s)::float8,"
                    f" avg({_EXACT_SCORE}) FILTER (WHERE r.run_id = %(b)s)::float8"
                    " FROM {} r CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.reviewed_scores, r.scores)) s"
                    " WHERE r.run_id IN (%(a)s, %(b)s) GROUP BY 1, 2 ORDER BY 1, 2"
                ).format(self._results),
                {"a": run_a, "b": run_b},
                prepare=True,
            )
            return curs.fetchall()

    def latency(self, run_id: UUID) -> dict[str, Any]:
        rows = self._fetch(outcome_stats_sql(self._results, self._items, False), {"run": run_id})
        return _outcome_wire(rows[0])["latencyMs"] if rows else {}

    def iter_result_pages(self, run_id: UUID, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Every result of a run in dataset order, a page at a time."""
        page = 0
        while True:
            rows, total = self.list_results(run_id, page, page_size)
            if rows:
                yield rows
            if (page + 1) * page_size >= total:
                return
            page += 1

    def analytics(self, run_id: UUID, *, threshold: float = 0.5, group_by: list[str] | None = None,
                   item_limit: int = 100) -> dict[str, Any]:
        """Success rate, per-scorer statistics and latency percentiles of a run, optionally per
        value of a metadata field of its items, and with repetitions, how much each item's
        score varies across them."""
        run = self.run_row(run_id)
        params = {"run": run_id, "t": threshold, "d": run["dataset_id"], "v": run["dataset_version"],
                  "path": group_by or [], "limit": item_limit}
        overall = self._fetch(outcome_stats_sql(self._results, self._items, False), params)
        scores = self._fetch(score_stats_sql(self._results, self._items, False), params)
        empty = {"results": 0, "succeeded": 0, "failed": 0, "latency_percentiles": None, "latency_mean": None,
                 "latency_max": None}
        answer: dict[str, Any] = {
            "runId": run_id,
            "status": run["status"],
            "partial": run["status"] not in FINISHED,
            "threshold": threshold,
            **_outcome_wire(overall[0] if overall else empty),
            "scorers": _with_declared(run["scorers"], {row["scorer_id"]: _stats_wire(row) for row in scores}),
            "usage": _usage_wire(self._fetch(usage_stats_sql(self._results), params)[0]),
        }
        if group_by:
            groups: dict[str, dict[str, Any]] = {}
            for row in self._fetch(outcome_stats_sql(self._results, self._items, True), params):
                groups[row["grp"] or "(none)"] = {**_outcome_wire(row), "scorers": {}}
            for row in self._fetch(score_stats_sql(self._results, self._items, True), params):
                groups.setdefault(row["grp"] or "(none)", {"scorers": {}})["scorers"][row["scorer_id"]] = _stats_wire(row)
            answer["groupBy"] = "metadata." + ".".join(group_by)
            answer["groups"] = groups
        if run["settings"].get("repetitions", 1) > 1:
            answer["repetitions"] = self._repetition_stats(params)
        return answer

    def _repetition_stats(self, params: dict[str, Any]) -> dict[str, Any]:
        summary = {
            row["scorer_id"]: {"meanVariance": row["mean_variance"], "maxVariance": row["max_variance"],
                               "mostVariableItems": []}
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
            summary[row["scorer_id"]]["mostVariableItems"].append(
                {"itemId": row["item_id"], "mean": row["mean"], "variance": row["variance"], "repetitions": row["n"]}
            )
        return summary

    # -- for the web UI ----------------------------------------------------------------------

    def recent_runs(self, page: int, per_page: int, dataset_id: UUID | None = None,
                    status: str | None = None, project_id: UUID | None = None) -> tuple[list[dict[str, Any]], int]:
        """Runs newest first, across datasets (of one project, or all) or of one dataset, each
        with its dataset's name."""
        rows = self._fetch(
            SQL(
                "SELECT r.*, d.name AS dataset_name, count(*) OVER () AS total FROM {runs} r"
                " LEFT JOIN {datasets} d ON d.dataset_id = r.dataset_id"
                " WHERE (%(d)s::uuid IS NULL OR r.dataset_id = %(d)s)"
                " AND (%(status)s::text IS NULL OR r.status = %(status)s)"
                " AND (%(project)s::uuid IS NULL OR d.project_id = %(project)s)"
                " ORDER BY r.created_at DESC, r.run_id LIMIT %(limit)s OFFSET %(offset)s"
            ).format(runs=self._runs, datasets=SQL("{}.datasets").format(Identifier(self.datastore.schema))),
            {"d": dataset_id, "status": status, "limit": per_page, "offset": page * per_page, "project": project_id},
        )
        total = rows[0]["total"] if rows else self._fetch(
            SQL("SELECT count(*) AS n FROM {} r LEFT JOIN {} d ON d.dataset_id = r.dataset_id"
                " WHERE (%(d)s::uuid IS NULL OR r.dataset_id = %(d)s)"
                " AND (%(status)s::text IS NULL OR r.status = %(status)s)"
                " AND (%(project)s::uuid IS NULL OR d.project_id = %(project)s)").format(
                self._runs, SQL("{}.datasets").format(Identifier(self.datastore.schema))),
            {"d": dataset_id, "status": status, "project": project_id},
        )[0]["n"]
        return [{**run_wire(r), "datasetName": r["dataset_name"]} for r in rows], total

    def filtered_results(
        self, run_id: UUID, page: int, per_page: int, *, status: str | None = None, scorer: str | None = None,
        min_score: float | None = None, max_score: float | None = None, sort: str = "dataset",
        flagged: bool | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of a run's results, filtered by status and by one scorer's score range,
        in dataset order or sorted by latency or by that scorer's score ('latency',
        '-latency', 'score', '-score'), with the items as at the run's pinned version."""
        run = self.run_row(run_id)
        order = {
            "dataset": "r.seq, r.repetition",
            "latency": "r.latency_ms NULLS LAST, r.seq, r.repetition",
            "-latency": "r.latency_ms DESC NULLS LAST, r.seq, r.repetition",
            "score": "sc NULLS LAST, r.seq, r.repetition",
            "-score": "sc DESC NULLS LAST, r.seq, r.repetition",
        }[sort]
        score = ("(SELECT (s->>'score')::float8 FROM jsonb_array_elements(coalesce(r.reviewed_scores, r.scores)) s"
                 " WHERE s->>'scorerId' = %(scorer)s LIMIT 1)")
        where = (
            " WHERE r.run_id = %(run)s AND (%(status)s::text IS NULL OR r.status = %(status)s)"
            " AND (%(flagged)s::boolean IS NULL OR r.flagged = %(flagged)s)"
            " AND (%(scorer)s::text IS NULL OR ("
            "  (%(min)s::float8 IS NULL OR sc >= %(min)s) AND (%(max)s::float8 IS NULL OR sc <= %(max)s)))"
        )
        scored = "SELECT r.*, " + score + " AS sc FROM {results} r"
        params = {"d": run["dataset_id"], "v": run["dataset_version"], "run": run_id, "status": status,
                  "scorer": scorer, "min": min_score, "max": max_score, "limit": per_page, "offset": page * per_page,
                  "flagged": flagged}
        rows = self._fetch(
            SQL(
                "WITH page AS (SELECT * FROM (" + scored + ") r" + where + " ORDER BY " + order +
                " LIMIT %(limit)s OFFSET %(offset)s)"
                " SELECT r.*, i.input, i.expected_output, i.metadata AS item_metadata"
                " FROM page r" + _ITEM_AT_PINNED_VERSION + " ORDER BY " + order
            ).format(results=self._results, items=self._items),
            params,
        )
        if status is None and scorer is None and flagged is None:
            total = run["recorded"]
        else:
            total = self._fetch(
                SQL("SELECT count(*) AS n FROM (" + scored + " WHERE r.run_id = %(run)s) r" + where).format(
                    results=self._results),
                params,
            )[0]["n"]
        return [result_wire(r) for r in rows], total

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

    def latency_histogram(self, run_id: UUID, bins: int = 20) -> dict[str, Any]:
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
            return {"low": None, "high": None, "counts": []}
        counts = [0] * bins
        for row in rows:
            counts[row["bin"] - 1] += row["n"]
        return {"low": rows[0]["lo"], "high": rows[0]["hi"], "counts": counts}

    def result_scorer_ids(self, run_id: UUID) -> list[str]:
        """The ids of the run's scorers, from its definition (no scan of its results)."""
        row = self.run_row(run_id)
        ids = []
        for spec in row["scorers"] or []:
            if isinstance(spec, str):
                ids.append(spec)
            elif isinstance(spec, dict):
                ids.append(str(spec.get("id") or spec.get("name")))
        return ids

    def item_inputs(self, dataset_id: UUID, version: int, item_ids: list[UUID]) -> dict[UUID, Any]:
        """The inputs of some items as they were at a version (for naming items on a page)."""
        rows = self._fetch(
            SQL("SELECT i.item_id, i.input FROM {items} i WHERE i.dataset_id = %(d)s AND i.item_id = ANY(%(ids)s)"
                " AND i.valid_from <= %(v)s AND (i.valid_to IS NULL OR i.valid_to > %(v)s) AND NOT i.deleted").format(
                items=self._items),
            {"d": dataset_id, "v": version, "ids": item_ids},
        )
        return {row["item_id"]: row["input"] for row in rows}

    # -- one result, its reviews and its diff ----------------------------------------------------

    def result_row(self, run_id: UUID, item_id: UUID, repetition: int = 0) -> dict[str, Any]:
        """A result with its item as at the run's pinned version (404 when the run has none)."""
        run = self.run_row(run_id)
        rows = self._fetch(
            SQL("SELECT r.*, i.input, i.expected_output, i.metadata AS item_metadata FROM {results} r"
                + _ITEM_AT_PINNED_VERSION.replace(" JOIN ", " LEFT JOIN ", 1)
                + " WHERE r.run_id = %(run)s AND r.item_id = %(item)s AND r.repetition = %(rep)s").format(
                    results=self._results, items=self._items),
            {"d": run["dataset_id"], "v": run["dataset_version"], "run": run_id, "item": item_id, "rep": repetition},
        )
        if not rows:
            raise ResultNotFoundError(f"run {run_id} has no result for item {item_id}, repetition {repetition}")
        return rows[0]

    def get_result(self, run_id: UUID, item_id: UUID, repetition: int = 0) -> dict[str, Any]:
        """A result with its reviews, the history of its scores, and how its output differs
        from the expected output."""
        row = self.result_row(run_id, item_id, repetition)
        reviews = self._fetch(
            SQL("SELECT * FROM {} WHERE run_id = %(run)s AND item_id = %(item)s AND repetition = %(rep)s"
                " ORDER BY run_version").format(SQL("{}.run_result_reviews").format(Identifier(self.datastore.schema))),
            {"run": run_id, "item": item_id, "rep": repetition},
        )
        history = [
            {"scorerId": s.get("scorerId"), "score": s.get("score"), "source": "automatic",
             "actor": row["recorded_by"], "at": row["recorded_at"], "reason": s.get("reason")}
            for s in row["scores"]
        ]
        for review in reviews:
            for s in review["scores"]:
                history.append({"scorerId": s["scorerId"], "score": s["score"], "source": "review",
                                "actor": review["actor"], "at": review["reviewed_at"], "reason": review["reason"]})
            for c in review["criteria"]:
                history.append({"scorerId": c["name"], "score": c["score"], "source": "criterion",
                                "actor": review["actor"], "at": review["reviewed_at"], "reason": review["reason"]})
        return {
            **result_wire(row),
            "automaticScores": row["scores"],
            "reviews": [{"actor": r["actor"], "at": r["reviewed_at"], "reason": r["reason"], "verdict": r["verdict"],
                         "scores": r["scores"], "criteria": r["criteria"], "comment": r["comment"],
                         "flagged": r["flagged"]} for r in reviews],
            "scoreHistory": history,
            "outputDiff": output_diff(row["expected_output"], row["output"], failed=row["status"] == "failed"),
        }

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

    def first_outputs(self, run_id: UUID, item_ids: list[UUID]) -> dict[UUID, Any]:
        """The output of repetition 0 of some items' results (a failed result has none)."""
        rows = self._fetch(
            SQL("SELECT item_id, output, error FROM {} WHERE run_id = %(run)s AND repetition = 0"
                " AND item_id = ANY(%(ids)s)").format(self._results),
            {"run": run_id, "ids": item_ids},
        )
        return {row["item_id"]: None if row["error"] is not None else row["output"] for row in rows}
