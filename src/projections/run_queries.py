"""Reads of runs and their results over the runs projection's tables (see projections/runs.py);
the aggregates over the results are in run_analytics.py.

Answers are typed snake_case objects (the dataclasses below); `api/` puts them on the wire.
A result's scores, review and usage are JSON as the events recorded them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from psycopg.sql import SQL, Identifier

from evalledger.analysis.output_diff import OutputDiff, output_diff
from evalledger.domain.runs import FINISHED, ResultNotFoundError
from evalledger.execution.tracing import trace_url
from evalledger.projections.run_analytics import ITEM_AT_PINNED_VERSION as _ITEM_AT_PINNED_VERSION
from evalledger.projections.run_analytics import RunAnalyticsQueries, ScorerStats


@dataclass(slots=True)
class RunProgress:
    done: int
    total: int
    fraction: float
    # A running executor's own counters (see execution/runner.py), when this process runs the run.
    failed: int | None = None
    items_per_second: float | None = None
    eta_seconds: float | None = None
    live: bool = False


@dataclass(slots=True)
class StatusReason:
    """Why a run cannot start or go on, last time it was tried (see execution/scheduler.py)."""

    reason: str
    attempts: int
    since: datetime
    next_attempt_at: datetime


@dataclass(slots=True)
class RunView:
    id: UUID
    dataset_id: UUID
    dataset_version: int
    name: str
    status: str
    caller_driven: bool
    target: dict[str, Any] | None
    scorers: list[Any]
    settings: dict[str, int]
    metadata: dict[str, Any]
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
    score_summary: dict[str, ScorerStats] | None = None  # a finished run's, from the service
    status_reason: StatusReason | None = None
    dataset_name: str | None = None  # the run history's pages show it


@dataclass(slots=True)
class ResultView:
    item_id: UUID
    repetition: int
    status: str
    input: Any
    expected_output: Any
    item_metadata: dict[str, Any] | None
    output: Any
    error: str | None
    latency_ms: float | None
    attempt: int
    retry_errors: list[str]
    trace_id: str | None
    span_id: str | None
    usage: dict[str, Any] | None
    # The scores that count (a reviewer's overrides applied); `review` says who changed what.
    scores: list[dict[str, Any]]
    review: dict[str, Any] | None
    flagged: bool
    started_at: datetime | None
    recorded_at: datetime
    trace_url: str | None = None


@dataclass(slots=True)
class ReviewRecord:
    actor: str
    at: datetime
    reason: str | None
    verdict: str | None
    scores: list[dict[str, Any]]
    criteria: list[dict[str, Any]]
    comment: str | None
    flagged: bool | None


@dataclass(slots=True)
class ScoreHistoryEntry:
    scorer_id: str
    score: float | None
    source: str  # automatic, review, criterion
    actor: str | None
    at: datetime
    reason: str | None


@dataclass(slots=True, kw_only=True)
class ResultDetail(ResultView):
    """A result with its reviews, the history of its scores, and how its output differs from
    the expected output."""

    automatic_scores: list[dict[str, Any]]
    reviews: list[ReviewRecord] = field(default_factory=list)
    score_history: list[ScoreHistoryEntry] = field(default_factory=list)
    output_diff: OutputDiff


def run_view(row: dict[str, Any]) -> RunView:
    settings = row["settings"]
    finished = row["status"] in FINISHED
    pending = 0 if finished else max(0, row["expected_results"] - row["recorded"])
    return RunView(
        id=row["run_id"], dataset_id=row["dataset_id"], dataset_version=row["dataset_version"], name=row["name"],
        status=row["status"], caller_driven=row["target"] is None, target=row["target"], scorers=row["scorers"],
        settings=settings, metadata=row["metadata"], total_items=row["total_items"],
        repetitions=settings.get("repetitions", 1), expected_results=row["expected_results"],
        succeeded_count=row["succeeded"], failed_count=row["failed"], pending_count=pending,
        skipped_count=row["skipped"], error=row["error"], created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"],
        progress=RunProgress(row["recorded"], row["expected_results"],
                             (row["recorded"] / row["expected_results"]) if row["expected_results"] else 1.0),
    )


def _result_fields(row: dict[str, Any]) -> tuple[Any, ...]:
    """A result row's values in ResultView's order (positional: a page holds up to a thousand)."""
    return (row["item_id"], row["repetition"], row["status"], row["input"], row["expected_output"],
            row["item_metadata"], row["output"], row["error"], row["latency_ms"], row["attempts"],
            row["retry_errors"], row["trace_id"], row.get("span_id"), row["usage"],
            row.get("reviewed_scores") or row["scores"], row.get("review"), row.get("flagged", False),
            row["started_at"], row["recorded_at"])


class RunQueries(RunAnalyticsQueries):
    """Reads of runs, results and run analytics."""

    # Turns a result's trace and span ids into a link (`trace_url`; see execution/tracing.py).
    trace_url: str | None = None

    def get_run(self, run_id: UUID) -> RunView:
        return run_view(self.run_row(run_id))

    def _link(self, row: dict[str, Any]) -> str | None:
        return trace_url(self.trace_url, row["trace_id"], row["span_id"]) if row.get("span_id") else None

    def _result(self, row: dict[str, Any]) -> ResultView:
        return ResultView(*_result_fields(row), self._link(row))

    def project_of_run(self, run_id: UUID) -> UUID | None:
        """The project a run belongs to (its dataset's); None for an unknown run."""
        rows = self._fetch(SQL("SELECT d.project_id FROM {} r JOIN {}.datasets d USING (dataset_id)"
                               " WHERE r.run_id = %s").format(self._runs, Identifier(self.datastore.schema)),
                           (run_id,))
        return rows[0]["project_id"] if rows else None

    def list_runs(self, dataset_id: UUID, page: int, per_page: int, *, tags: list[str] | None = None,
                  model: str | None = None, code_version: str | None = None, prompt_version: str | None = None,
                  status: str | None = None) -> tuple[list[RunView], int]:
        """A dataset's runs, newest first, optionally only those with every tag given (in
        metadata.tags, or as metadata.tag), of a model (metadata.model, or the target's),
        of a code version (or a prefix of it), of a prompt version, or in a status."""
        conditions = ["dataset_id = %(d)s"]
        params: dict[str, Any] = {"d": dataset_id, "limit": per_page, "offset": page * per_page}
        for n, tag in enumerate(tags or []):
            conditions.append(f"(metadata @> %(tag{n})s::jsonb OR metadata->>'tag' = %(plain{n})s)")
            params[f"tag{n}"], params[f"plain{n}"] = orjson.dumps({"tags": [tag]}).decode(), tag
        if model is not None:
            conditions.append("(metadata->>'model' = %(model)s OR target->>'model' = %(model)s)")
            params["model"] = model
        if code_version is not None:
            conditions.append("starts_with(metadata->>'codeVersion', %(code)s)")
            params["code"] = code_version
        if prompt_version is not None:
            conditions.append("metadata->'prompt'->>'version' = %(prompt)s")
            params["prompt"] = prompt_version
        if status is not None:
            conditions.append("status = %(status)s")
            params["status"] = status
        where = " AND ".join(conditions)
        rows = self._fetch(
            SQL("SELECT *, count(*) OVER () AS total FROM {} WHERE " + where +
                " ORDER BY created_at DESC, run_id LIMIT %(limit)s OFFSET %(offset)s").format(self._runs),
            params,
        )
        if rows:
            return [run_view(r) for r in rows], rows[0]["total"]
        count = self._fetch(SQL("SELECT count(*) AS n FROM {} WHERE " + where).format(self._runs), params)
        return [], count[0]["n"]

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
    ) -> tuple[list[ResultView], int]:
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
            return [self._result(r) for r in rows], run["recorded"]
        count = self._fetch(
            SQL(
                "SELECT count(*) AS n FROM {} WHERE run_id = %(run)s AND status = %(status)s"
            ).format(self._results),
            {"run": run_id, "status": status},
        )
        return [self._result(r) for r in rows], count[0]["n"]

    def iter_result_pages(self, run_id: UUID, page_size: int = 1000) -> Iterator[list[ResultView]]:
        """Every result of a run in dataset order, a page at a time."""
        page = 0
        while True:
            rows, total = self.list_results(run_id, page, page_size)
            if rows:
                yield rows
            if (page + 1) * page_size >= total:
                return
            page += 1

    # -- for the web UI ----------------------------------------------------------------------

    def recent_runs(self, page: int, per_page: int, dataset_id: UUID | None = None,
                    status: str | None = None, project_id: UUID | None = None) -> tuple[list[RunView], int]:
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
        return [_named(r) for r in rows], total

    def filtered_results(
        self, run_id: UUID, page: int, per_page: int, *, status: str | None = None, scorer: str | None = None,
        min_score: float | None = None, max_score: float | None = None, sort: str = "dataset",
        flagged: bool | None = None,
    ) -> tuple[list[ResultView], int]:
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
        return [self._result(r) for r in rows], total

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

    def get_result(self, run_id: UUID, item_id: UUID, repetition: int = 0) -> ResultDetail:
        """A result with its reviews, the history of its scores, and how its output differs
        from the expected output."""
        row = self.result_row(run_id, item_id, repetition)
        reviews = self._fetch(
            SQL("SELECT * FROM {} WHERE run_id = %(run)s AND item_id = %(item)s AND repetition = %(rep)s"
                " ORDER BY run_version").format(SQL("{}.run_result_reviews").format(Identifier(self.datastore.schema))),
            {"run": run_id, "item": item_id, "rep": repetition},
        )
        history = [ScoreHistoryEntry(s.get("scorerId"), s.get("score"), "automatic", row["recorded_by"],
                                     row["recorded_at"], s.get("reason")) for s in row["scores"]]
        for review in reviews:
            for s in review["scores"]:
                history.append(ScoreHistoryEntry(s["scorerId"], s["score"], "review", review["actor"],
                                                 review["reviewed_at"], review["reason"]))
            for c in review["criteria"]:
                history.append(ScoreHistoryEntry(c["name"], c["score"], "criterion", review["actor"],
                                                 review["reviewed_at"], review["reason"]))
        return ResultDetail(
            *_result_fields(row), self._link(row),
            automatic_scores=row["scores"],
            reviews=[ReviewRecord(r["actor"], r["reviewed_at"], r["reason"], r["verdict"], r["scores"], r["criteria"],
                                  r["comment"], r["flagged"]) for r in reviews],
            score_history=history,
            output_diff=output_diff(row["expected_output"], row["output"], failed=row["status"] == "failed"),
        )


def _named(row: dict[str, Any]) -> RunView:
    view = run_view(row)
    view.dataset_name = row["dataset_name"]
    return view
