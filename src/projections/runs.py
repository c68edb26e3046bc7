"""The runs projection, fed by `Run` events.

Tables
- `runs`: one row per run with its definition, status, counts and timings.
- `run_results`: one row per (run, item, repetition): output, error, latency, attempts,
  trace id and scores (a JSON array), and the item's `seq` in its dataset, so results list
  in dataset order from an index. Caller-driven runs upsert; counts on `runs` are kept
  by difference, so a replaced result is counted once. `recorded_by` is who recorded it;
  `review` what its reviews add up to (domain/reviews.py), `flagged` its follow-up flag,
  and `reviewed_scores` its scores with the review's overrides (NULL: none; readers use
  `coalesce(reviewed_scores, scores)`).
- `run_result_reviews`: every review of a result, for its history.

What each event does to these rows is said once, in runs_fold.py; this view reads the rows
a batch touches, folds the batch into them and writes back what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.sql import SQL, Composed, Identifier, Literal

from evalledger.domain.runs import Run
from evalledger.projections import runs_fold
from evalledger.projections.runs_fold import (
    NO_SEQ,
    RESULT_COLUMNS,
    REVIEW_COLUMNS,
    RUN_COLUMNS,
    ResultRow,
    RunRow,
    RunsState,
    Touched,
)
from evalledger.projections.view import (
    BatchingView,
    Statement,
    json_rows,
    names,
    rendered,
    updates,
    upsert,
)

RUN_TOPICS = tuple(
    f"evalledger.domain.runs:Run.{name}"
    for name in ("Created", "Started", "ResultsRecorded", "Completed", "Failed", "Cancelled", "ResultReviewed")
)
# The view also strips purged items' texts from the results that copied them.
RUNS_VIEW_TOPICS = (*RUN_TOPICS, "evalledger.domain.datasets:Dataset.ItemPurged")


class RunsView(BatchingView):
    read_model_tables = ("runs", "run_results", "run_result_reviews")
    # What each event does to the rows (apply, first_reads and read_rows in view.py use it).
    rules = runs_fold
    # Most run ids `_with_target` holds before it starts again.
    max_remembered_runs = 100_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Runs seen to have a target. Such a run records each result once (Run.record_results),
        # so a result it records is a new row and is not read first; whether a run has a
        # target never changes, so what is remembered stays true.
        self._with_target: set[UUID] = set()

    def table_statements(self) -> list[Composed]:
        t = self.table
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " run_id uuid PRIMARY KEY,"
                " dataset_id uuid NOT NULL,"
                " dataset_version integer NOT NULL,"
                " name text NOT NULL,"
                " status text NOT NULL,"
                " target jsonb,"
                " scorers jsonb NOT NULL,"
                " settings jsonb NOT NULL,"
                " metadata jsonb NOT NULL,"
                " total_items integer NOT NULL,"
                " expected_results integer NOT NULL,"
                " recorded integer NOT NULL DEFAULT 0,"
                " succeeded integer NOT NULL DEFAULT 0,"
                " failed integer NOT NULL DEFAULT 0,"
                " skipped integer NOT NULL DEFAULT 0,"
                " error text,"
                " actor text NOT NULL,"
                " created_at timestamptz NOT NULL,"
                " started_at timestamptz,"
                " finished_at timestamptz,"
                " updated_at timestamptz NOT NULL)"
            ).format(t("runs")),
            SQL("CREATE INDEX IF NOT EXISTS runs_dataset_idx ON {} (dataset_id, created_at DESC)").format(t("runs")),
            SQL("CREATE INDEX IF NOT EXISTS runs_unfinished_idx ON {} (status) WHERE status IN ('pending', 'running')").format(
                t("runs")
            ),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " run_id uuid NOT NULL,"
                " item_id uuid NOT NULL,"
                " repetition integer NOT NULL,"
                " status text NOT NULL,"
                " output jsonb,"
                " error text,"
                " latency_ms double precision,"
                " attempts integer NOT NULL,"
                " retry_errors jsonb NOT NULL,"
                " trace_id text,"
                " scores jsonb NOT NULL,"
                " started_at timestamptz,"
                " recorded_at timestamptz NOT NULL,"
                " seq bigint NOT NULL,"
                " usage jsonb,"
                " PRIMARY KEY (run_id, item_id, repetition))"
            ).format(t("run_results")),
            # Tables made before results carried usage (tokens, cost, model) get the column.
            self.add_column("run_results", "usage", "jsonb"),
            # The result's span (tracing.py), beside its trace id.
            self.add_column("run_results", "span_id", "text"),
            SQL("CREATE INDEX IF NOT EXISTS run_results_order_idx ON {} (run_id, seq, repetition)").format(
                t("run_results")
            ),
            # Added with reviews (issue 18); tables made before get them here.
            self.add_column("run_results", "recorded_by", "text"),
            self.add_column("run_results", "review", "jsonb"),
            self.add_column("run_results", "reviewed_scores", "jsonb"),
            self.add_column("run_results", "flagged", "boolean NOT NULL", SQL("false")),
            SQL("CREATE INDEX IF NOT EXISTS run_results_flagged_idx ON {} (run_id, seq, repetition)"
                " WHERE flagged").format(t("run_results")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " run_id uuid NOT NULL,"
                " item_id uuid NOT NULL,"
                " repetition integer NOT NULL,"
                " run_version integer NOT NULL,"
                " reviewed_at timestamptz NOT NULL,"
                " actor text NOT NULL,"
                " reason text,"
                " verdict text,"
                " scores jsonb NOT NULL,"
                " criteria jsonb NOT NULL,"
                " comment text,"
                " flagged boolean,"
                " PRIMARY KEY (run_id, item_id, repetition, run_version))"
            ).format(t("run_result_reviews")),
        ]

    def weight_of(self, event: Any) -> int:
        return len(event.results) if isinstance(event, Run.ResultsRecorded) else 1

    def reads(self, keys: Touched) -> tuple[list[Statement], Callable[[list[list[Any]]], RunsState]]:
        """The statements that read the rows the keys name, and what makes the fold's state
        of their answers (see `BatchingView.process`, which sends them with the lock)."""
        reads: list[Statement] = []
        purged_datasets = list({dataset_id for dataset_id, _ in keys.purged})
        if keys.run_ids or purged_datasets:
            reads.append((self._read_runs, (list(keys.run_ids), purged_datasets)))
        params: list[Any] = []
        with_target = self._with_target
        result_keys = [key for key in keys.result_keys if key[0] not in with_target or key in keys.reviewed]
        if result_keys:
            params += [list(column) for column in zip(*result_keys, strict=True)]
        if keys.purged:
            params += [list(column) for column in zip(*keys.purged, strict=True)]
        if params:
            shape = (bool(result_keys), bool(keys.purged))
            reads.append((self.statement(("results", shape), lambda: self._results_read(*shape)), params))
        reads_runs = bool(keys.run_ids or purged_datasets)

        def state_of(found: list[list[Any]]) -> RunsState:
            state = RunsState()
            found = list(found)
            if reads_runs:
                for row in found.pop(0):
                    run = state.runs[row["run_id"]] = RunRow(**row)
                    self._remember(run)
            for row in found[0] if found else ():
                state.add_result(ResultRow(**row))
            return state

        return reads, state_of

    def write_rows(self, curs: Cursor[Any], state: RunsState) -> list[Statement]:
        """The statements that upsert the rows the fold changed, to be run in one round trip.
        Runs first: a new result looks its item's seq up through its run (in the dataset
        version the run is pinned to)."""
        writes: list[Statement] = []
        for run_id in state.changed_runs:
            self._remember(state.runs[run_id])
        if state.changed_runs:
            writes.append((self._upsert_runs, (json_rows([state.runs[run_id] for run_id in state.changed_runs]),)))
        if state.changed_results:
            writes.append((self._upsert_results,
                           (json_rows(state.changed_result_rows()),)))
        if state.new_reviews:
            writes.append((self._insert_reviews, (json_rows(state.new_reviews),)))
        return writes

    def _remember(self, run: RunRow) -> None:
        if run.target is not None and run.run_id not in self._with_target:
            if len(self._with_target) >= self.max_remembered_runs:
                self._with_target.clear()
            self._with_target.add(run.run_id)

    def _results_read(self, by_key: bool, purged: bool) -> Composed:
        """Reads results by key, and the results of purged items (by dataset and item)."""
        statements = []
        if by_key:
            statements.append(SQL(
                "SELECT {} FROM {} r JOIN unnest(%s::uuid[], %s::uuid[], %s::int[]) AS k(run_id, item_id, repetition)"
                " USING (run_id, item_id, repetition)").format(_RESULT_SELECT, self.table("run_results")))
        if purged:
            statements.append(SQL(
                "SELECT {} FROM {} r JOIN {} u USING (run_id)"
                " JOIN unnest(%s::uuid[], %s::uuid[]) AS k(dataset_id, item_id)"
                " ON u.dataset_id = k.dataset_id AND r.item_id = k.item_id").format(
                    _RESULT_SELECT, self.table("run_results"), self.table("runs")))
        return SQL(" UNION ALL ").join(statements)

    @cached_property
    def _read_runs(self) -> bytes:
        return rendered(SQL("SELECT {} FROM {} WHERE run_id = ANY(%s) OR dataset_id = ANY(%s)").format(
            _RUN_SELECT, self.table("runs")))

    @cached_property
    def _upsert_runs(self) -> bytes:
        return rendered(upsert(self.table("runs"), RUN_COLUMNS, _RUN_TYPES, ("run_id",)))

    @cached_property
    def _insert_reviews(self) -> bytes:
        return rendered(upsert(self.table("run_result_reviews"), REVIEW_COLUMNS, _REVIEW_TYPES,
                               ("run_id", "item_id", "repetition", "run_version"), update=False))

    @cached_property
    def _upsert_results(self) -> bytes:
        keys = ("run_id", "item_id", "repetition")
        columns = names(RESULT_COLUMNS)
        values = SQL(", ").join(
            SQL("coalesce(r.seq, i.seq, {})").format(Literal(NO_SEQ)) if name == "seq" else
            SQL("r.{}").format(Identifier(name)) for name in RESULT_COLUMNS)
        return rendered(SQL(
            "INSERT INTO {results} ({columns}) SELECT {values}"
            " FROM jsonb_to_recordset(%s::jsonb) AS r({types})"
            " LEFT JOIN {runs} u ON r.seq IS NULL AND u.run_id = r.run_id"
            " LEFT JOIN {items} i ON i.dataset_id = u.dataset_id AND i.item_id = r.item_id"
            "  AND i.valid_from <= u.dataset_version"
            "  AND (i.valid_to IS NULL OR i.valid_to > u.dataset_version) AND NOT i.deleted"
            " ON CONFLICT ({keys}) DO UPDATE SET {updates}"
        ).format(results=self.table("run_results"), columns=columns, values=values,
                 types=SQL(_RESULT_TYPES), runs=self.table("runs"), items=self.other_view_table("dataset_items"),
                 keys=names(keys), updates=updates(RESULT_COLUMNS, keys)))


# Each column's type, for jsonb_to_recordset (in the rows' field order).
_RUN_TYPES = (
    "run_id uuid, dataset_id uuid, dataset_version integer, name text, status text, target jsonb, scorers jsonb,"
    " settings jsonb, metadata jsonb, total_items integer, expected_results integer, recorded integer,"
    " succeeded integer, failed integer, skipped integer, error text, actor text, created_at timestamptz,"
    " started_at timestamptz, finished_at timestamptz, updated_at timestamptz")
_RESULT_TYPES = (
    "run_id uuid, item_id uuid, repetition integer, status text, output jsonb, error text, latency_ms float8,"
    " attempts integer, retry_errors jsonb, trace_id text, scores jsonb, started_at timestamptz,"
    " recorded_at timestamptz, seq bigint, usage jsonb, recorded_by text, span_id text, review jsonb,"
    " reviewed_scores jsonb, flagged boolean")
_REVIEW_TYPES = (
    "run_id uuid, item_id uuid, repetition integer, run_version integer, reviewed_at timestamptz, actor text,"
    " reason text, verdict text, scores jsonb, criteria jsonb, comment text, flagged boolean")
_RUN_SELECT = names(RUN_COLUMNS)
_RESULT_SELECT = SQL(", ").join(
    SQL("r.item_id::text AS item_id") if name == "item_id" else SQL("r.{}").format(Identifier(name))
    for name in RESULT_COLUMNS)
