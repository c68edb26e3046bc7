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
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import Cursor
from psycopg.sql import SQL, Composed
from psycopg.types.json import Jsonb

from evalledger.domain.content import PURGED_TEXT
from evalledger.domain.datasets import Dataset
from evalledger.domain.reviews import fold_review, reviewed_scores
from evalledger.domain.runs import Run, result_key
from evalledger.projections.view import BatchingView, Handler, one_at_a_time

RUN_TOPICS = tuple(
    f"evalledger.domain.runs:Run.{name}"
    for name in ("Created", "Started", "ResultsRecorded", "Completed", "Failed", "Cancelled", "ResultReviewed")
)
# The view also strips purged items' texts from the results that copied them.
RUNS_VIEW_TOPICS = (*RUN_TOPICS, "evalledger.domain.datasets:Dataset.ItemPurged")


def _result_rows(events: list[Run.ResultsRecorded]) -> dict[str, str]:
    """The parameters of the results statement for a run of ResultsRecorded events, as
    JSON: `rows`, the last result for each (run, item, repetition) with the time of the
    event that recorded it (each event replaces the rows the ones before it wrote, so only
    the last one shows); `runs`, each run's first and last event time in the run."""
    latest: dict[tuple[Any, str], dict[str, Any]] = {}
    runs: dict[Any, dict[str, Any]] = {}
    for e in events:
        for r in e.results:  # the last result for a key wins
            latest[(e.originator_id, result_key(r))] = {
                "run_id": e.originator_id,
                "item_id": r["itemId"],
                "repetition": r.get("repetition", 0),
                "status": "failed" if r.get("error") is not None else "succeeded",
                "output": r.get("output"),
                "error": r.get("error"),
                "latency_ms": r.get("latencyMs"),
                "attempts": r.get("attempts", 1),
                "trace_id": r.get("traceId"),
                "span_id": r.get("spanId"),
                "scores": r.get("scores") or [],
                "started_at": r.get("startedAt"),
                "retry_errors": r.get("retryErrors") or [],
                "usage": r.get("usage"),
                "recorded_at": e.timestamp,
                "recorded_by": e.actor,
            }
        runs.setdefault(e.originator_id, {"run_id": e.originator_id, "first_ts": e.timestamp})["last_ts"] = e.timestamp
    return {"rows": orjson.dumps(list(latest.values())).decode(), "runs": orjson.dumps(list(runs.values())).decode()}


def _finished_params(e: Run.Completed | Run.Failed | Run.Cancelled) -> dict[str, Any]:
    return {
        "id": e.originator_id,
        "status": {Run.Completed: "completed", Run.Failed: "failed", Run.Cancelled: "cancelled"}[type(e)],
        "succeeded": e.succeeded,
        "failed": e.failed,
        "skipped": e.skipped,
        "error": getattr(e, "error", None) or (e.reason if isinstance(e, Run.Cancelled) else None),
        "ts": e.timestamp,
    }


def _purged_scores(column: str) -> str:
    """A score array with a purged item's texts (reasons, errors) taken out (sealing.py)."""
    return (
        f"(SELECT coalesce(jsonb_agg(s || jsonb_build_object('reason', NULL, 'error',"
        "  CASE WHEN coalesce(s->'error', 'null'::jsonb) = 'null'::jsonb THEN NULL ELSE %(purged)s END)"
        f"  ORDER BY n), '[]'::jsonb) FROM jsonb_array_elements({column}) WITH ORDINALITY AS x(s, n))"
    )


class RunsView(BatchingView):
    read_model_tables = ("runs", "run_results", "run_result_reviews")

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
            SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS usage jsonb").format(t("run_results")),
            # The result's span (tracing.py), beside its trace id.
            SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS span_id text").format(t("run_results")),
            SQL("CREATE INDEX IF NOT EXISTS run_results_order_idx ON {} (run_id, seq, repetition)").format(
                t("run_results")
            ),
            # Added with reviews (issue 18); tables made before get them here.
            SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS recorded_by text,"
                " ADD COLUMN IF NOT EXISTS review jsonb, ADD COLUMN IF NOT EXISTS reviewed_scores jsonb,"
                " ADD COLUMN IF NOT EXISTS flagged boolean NOT NULL DEFAULT false").format(t("run_results")),
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

    def handler_of(self, event: Any) -> Handler | None:
        return _HANDLERS.get(type(event))

    def weight_of(self, event: Any) -> int:
        return len(event.results) if isinstance(event, Run.ResultsRecorded) else 1

    # -- one handler per event type; each takes a run of consecutive events of its type --

    def _created(self, curs: Cursor[Any], events: list[Run.Created]) -> None:
        curs.executemany(
            SQL(
                "INSERT INTO {} (run_id, dataset_id, dataset_version, name, status, target, scorers, settings,"
                " metadata, total_items, expected_results, actor, created_at, updated_at)"
                " VALUES (%(id)s, %(dataset_id)s, %(version)s, %(name)s, 'pending', %(target)s, %(scorers)s,"
                " %(settings)s, %(metadata)s, %(total)s, %(expected)s, %(actor)s, %(ts)s, %(ts)s)"
            ).format(self.table("runs")),
            [{
                "id": e.originator_id,
                "dataset_id": e.dataset_id,
                "version": e.dataset_version,
                "name": e.name,
                "target": None if e.target is None else Jsonb(e.target),
                "scorers": Jsonb(e.scorers),
                "settings": Jsonb(e.settings),
                "metadata": Jsonb(e.metadata),
                "total": e.total_items,
                "expected": e.total_items * e.settings.get("repetitions", 1),
                "actor": e.actor,
                "ts": e.timestamp,
            } for e in events],
        )

    def _started(self, curs: Cursor[Any], events: list[Run.Started]) -> None:
        curs.executemany(
            SQL(
                "UPDATE {} SET status = 'running', started_at = coalesce(started_at, %(ts)s), updated_at = %(ts)s"
                " WHERE run_id = %(id)s"
            ).format(self.table("runs")),
            [{"id": e.originator_id, "ts": e.timestamp} for e in events],
        )

    def _results_recorded(self, curs: Cursor[Any], events: list[Run.ResultsRecorded]) -> None:
        # Counts on `runs` move by difference: the run's final rows minus the rows they
        # replace (`old`, read before the upsert), which is what the events one by one add up to.
        curs.execute(
            SQL(
                "WITH r AS (SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(run_id uuid, item_id uuid,"
                "  repetition int, status text, output jsonb, error text, latency_ms float8, attempts int,"
                "  trace_id text, scores jsonb, started_at timestamptz, retry_errors jsonb, usage jsonb,"
                "  recorded_at timestamptz, recorded_by text, span_id text)),"
                " old AS (SELECT x.run_id, x.status FROM {results} x JOIN r USING (run_id, item_id, repetition)),"
                " up AS (INSERT INTO {results} (run_id, item_id, repetition, status, output, error, latency_ms,"
                "  attempts, retry_errors, trace_id, scores, started_at, recorded_at, usage, recorded_by, span_id, seq)"
                "  SELECT r.run_id, r.item_id, r.repetition, r.status, r.output, r.error, r.latency_ms, r.attempts,"
                "  r.retry_errors, r.trace_id, r.scores, r.started_at, r.recorded_at, r.usage, r.recorded_by, r.span_id,"
                "  coalesce(i.seq, 9223372036854775807)"
                "  FROM r JOIN {runs} run USING (run_id)"
                "  LEFT JOIN {items} i ON i.dataset_id = run.dataset_id AND i.item_id = r.item_id"
                "   AND i.valid_from <= run.dataset_version"
                "   AND (i.valid_to IS NULL OR i.valid_to > run.dataset_version) AND NOT i.deleted"
                "  ON CONFLICT (run_id, item_id, repetition) DO UPDATE SET status = excluded.status,"
                "  output = excluded.output, error = excluded.error, latency_ms = excluded.latency_ms,"
                "  attempts = excluded.attempts, retry_errors = excluded.retry_errors,"
                "  trace_id = excluded.trace_id, scores = excluded.scores, started_at = excluded.started_at,"
                "  recorded_at = excluded.recorded_at, usage = excluded.usage, recorded_by = excluded.recorded_by,"
                "  span_id = excluded.span_id),"
                " delta AS (SELECT run_id, sum(n) AS recorded, sum(n) FILTER (WHERE status = 'succeeded') AS succeeded,"
                "  sum(n) FILTER (WHERE status = 'failed') AS failed"
                "  FROM (SELECT run_id, status, 1 AS n FROM r UNION ALL SELECT run_id, status, -1 FROM old) z"
                "  GROUP BY run_id),"
                " t AS (SELECT * FROM jsonb_to_recordset(%(runs)s::jsonb) AS t(run_id uuid, first_ts timestamptz,"
                "  last_ts timestamptz))"
                " UPDATE {runs} u SET recorded = u.recorded + coalesce(delta.recorded, 0),"
                "  succeeded = u.succeeded + coalesce(delta.succeeded, 0),"
                "  failed = u.failed + coalesce(delta.failed, 0),"
                "  status = CASE WHEN u.status = 'pending' THEN 'running' ELSE u.status END,"
                "  started_at = coalesce(u.started_at, t.first_ts), updated_at = t.last_ts"
                " FROM t LEFT JOIN delta USING (run_id) WHERE u.run_id = t.run_id"
            ).format(results=self.table("run_results"), runs=self.table("runs"),
                     items=self.other_view_table("dataset_items")),
            _result_rows(events),
            prepare=True,
        )

    def _item_purged(self, curs: Cursor[Any], e: Dataset.ItemPurged) -> None:
        # What sealing.py makes of a purged item's results when it reads them from the
        # event store, so a rebuild after the purge gives these rows exactly.
        curs.execute(
            SQL(
                "UPDATE {results} SET output = NULL, retry_errors = '[]'::jsonb,"
                " error = CASE WHEN error IS NULL THEN NULL ELSE %(purged)s END,"
                " scores = " + _purged_scores("scores") + ","
                " reviewed_scores = CASE WHEN reviewed_scores IS NULL THEN NULL ELSE "
                + _purged_scores("reviewed_scores") + " END"
                " WHERE item_id = %(item)s AND run_id IN (SELECT run_id FROM {runs} WHERE dataset_id = %(id)s)"
            ).format(results=self.table("run_results"), runs=self.table("runs")),
            {"id": e.originator_id, "item": e.item_id, "purged": PURGED_TEXT},
        )

    def _finished(self, curs: Cursor[Any], events: list[Run.Completed | Run.Failed | Run.Cancelled]) -> None:
        curs.executemany(
            SQL(
                "UPDATE {} SET status = %(status)s, succeeded = %(succeeded)s, failed = %(failed)s,"
                " skipped = %(skipped)s, error = %(error)s, finished_at = %(ts)s, updated_at = %(ts)s"
                " WHERE run_id = %(id)s"
            ).format(self.table("runs")),
            [_finished_params(e) for e in events],
        )


    def _result_reviewed(self, curs: Cursor[Any], e: Run.ResultReviewed) -> None:
        # One at a time: reviews are a person's pace, and each folds into the state the
        # one before left (domain/reviews.py).
        key = {"run": e.originator_id, "item": e.item_id, "rep": e.repetition}
        curs.execute(
            SQL("INSERT INTO {} (run_id, item_id, repetition, run_version, reviewed_at, actor, reason, verdict,"
                " scores, criteria, comment, flagged) VALUES (%(run)s, %(item)s, %(rep)s, %(version)s, %(ts)s,"
                " %(actor)s, %(reason)s, %(verdict)s, %(scores)s, %(criteria)s, %(comment)s, %(flagged)s)"
                " ON CONFLICT DO NOTHING").format(self.table("run_result_reviews")),
            {**key, "version": e.originator_version, "ts": e.timestamp, "actor": e.actor, "reason": e.reason,
             "verdict": e.verdict, "scores": Jsonb(e.scores), "criteria": Jsonb(e.criteria), "comment": e.comment,
             "flagged": e.flagged},
        )
        row = curs.execute(
            SQL("SELECT scores, review FROM {} WHERE run_id = %(run)s AND item_id = %(item)s"
                " AND repetition = %(rep)s FOR UPDATE").format(self.table("run_results")), key).fetchone()
        if row is None:
            return
        scores, current = (row["scores"], row["review"]) if isinstance(row, dict) else row
        review = fold_review(current, verdict=e.verdict, scores=e.scores, criteria=e.criteria, comment=e.comment,
                             flagged=e.flagged, actor=e.actor, reason=e.reason,
                             at=e.timestamp.isoformat())
        effective = reviewed_scores(scores, review)
        curs.execute(
            SQL("UPDATE {} SET review = %(review)s, reviewed_scores = %(effective)s, flagged = %(flagged)s"
                " WHERE run_id = %(run)s AND item_id = %(item)s AND repetition = %(rep)s").format(
                    self.table("run_results")),
            {**key, "review": Jsonb(review), "effective": None if effective is None else Jsonb(effective),
             "flagged": review["flagged"]},
        )


_HANDLERS = {
    Run.ResultReviewed: one_at_a_time(RunsView._result_reviewed),
    Dataset.ItemPurged: one_at_a_time(RunsView._item_purged),
    Run.Created: RunsView._created,
    Run.Started: RunsView._started,
    Run.ResultsRecorded: RunsView._results_recorded,
    Run.Completed: RunsView._finished,
    Run.Failed: RunsView._finished,
    Run.Cancelled: RunsView._finished,
}
