"""The runs projection, fed by `Run` events.

Tables
- `runs`: one row per run with its definition, status, counts and timings.
- `run_results`: one row per (run, item, repetition): output, error, latency, attempts,
  trace id and scores (a JSON array), and the item's `seq` in its dataset, so results list
  in dataset order from an index. Caller-driven runs upsert; counts on `runs` are kept
  by difference, so a replaced result is counted once.
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import Cursor
from psycopg.sql import SQL, Composed
from psycopg.types.json import Jsonb

from evalledger.domain.runs import Run, result_key
from evalledger.projections.view import BatchingView

RUN_TOPICS = tuple(
    f"evalledger.domain.runs:Run.{name}"
    for name in ("Created", "Started", "ResultsRecorded", "Completed", "Failed", "Cancelled")
)


def _result_rows(results: list[dict[str, Any]]) -> str:
    latest: dict[str, dict[str, Any]] = {}
    for result in results:  # the last result for a key wins
        latest[result_key(result)] = result
    rows = [
        {
            "item_id": r["itemId"],
            "repetition": r.get("repetition", 0),
            "status": "failed" if r.get("error") is not None else "succeeded",
            "output": r.get("output"),
            "error": r.get("error"),
            "latency_ms": r.get("latencyMs"),
            "attempts": r.get("attempts", 1),
            "trace_id": r.get("traceId"),
            "scores": r.get("scores") or [],
            "started_at": r.get("startedAt"),
            "retry_errors": r.get("retryErrors") or [],
        }
        for r in latest.values()
    ]
    return orjson.dumps(rows).decode()


class RunsView(BatchingView):
    read_model_tables = ("runs", "run_results")

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
                " PRIMARY KEY (run_id, item_id, repetition))"
            ).format(t("run_results")),
            SQL("CREATE INDEX IF NOT EXISTS run_results_order_idx ON {} (run_id, seq, repetition)").format(
                t("run_results")
            ),
        ]

    def apply(self, curs: Cursor[Any], event: Any) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, curs, event)

    def _created(self, curs: Cursor[Any], e: Run.Created) -> None:
        repetitions = e.settings.get("repetitions", 1)
        curs.execute(
            SQL(
                "INSERT INTO {} (run_id, dataset_id, dataset_version, name, status, target, scorers, settings,"
                " metadata, total_items, expected_results, actor, created_at, updated_at)"
                " VALUES (%(id)s, %(dataset_id)s, %(version)s, %(name)s, 'pending', %(target)s, %(scorers)s,"
                " %(settings)s, %(metadata)s, %(total)s, %(expected)s, %(actor)s, %(ts)s, %(ts)s)"
            ).format(self.table("runs")),
            {
                "id": e.originator_id,
                "dataset_id": e.dataset_id,
                "version": e.dataset_version,
                "name": e.name,
                "target": None if e.target is None else Jsonb(e.target),
                "scorers": Jsonb(e.scorers),
                "settings": Jsonb(e.settings),
                "metadata": Jsonb(e.metadata),
                "total": e.total_items,
                "expected": e.total_items * repetitions,
                "actor": e.actor,
                "ts": e.timestamp,
            },
        )

    def _started(self, curs: Cursor[Any], e: Run.Started) -> None:
        curs.execute(
            SQL(
                "UPDATE {} SET status = 'running', started_at = coalesce(started_at, %(ts)s), updated_at = %(ts)s"
                " WHERE run_id = %(id)s"
            ).format(self.table("runs")),
            {"id": e.originator_id, "ts": e.timestamp},
        )

    def _results_recorded(self, curs: Cursor[Any], e: Run.ResultsRecorded) -> None:
        curs.execute(
            SQL(
                "WITH r AS (SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS (item_id uuid, repetition int,"
                "  status text, output jsonb, error text, latency_ms float8, attempts int, trace_id text,"
                "  scores jsonb, started_at timestamptz, retry_errors jsonb)),"
                " old AS (SELECT x.status FROM {results} x JOIN r USING (item_id, repetition)"
                "  WHERE x.run_id = %(id)s),"
                " up AS (INSERT INTO {results} (run_id, item_id, repetition, status, output, error, latency_ms,"
                "  attempts, retry_errors, trace_id, scores, started_at, recorded_at, seq)"
                "  SELECT %(id)s, r.item_id, r.repetition, r.status, r.output, r.error, r.latency_ms, r.attempts,"
                "  r.retry_errors, r.trace_id, r.scores, r.started_at, %(ts)s,"
                "  coalesce(i.seq, 9223372036854775807)"
                "  FROM r JOIN {runs} run ON run.run_id = %(id)s"
                "  LEFT JOIN {items} i ON i.dataset_id = run.dataset_id AND i.item_id = r.item_id"
                "   AND i.valid_from <= run.dataset_version"
                "   AND (i.valid_to IS NULL OR i.valid_to > run.dataset_version) AND NOT i.deleted"
                "  ON CONFLICT (run_id, item_id, repetition) DO UPDATE SET status = excluded.status,"
                "  output = excluded.output, error = excluded.error, latency_ms = excluded.latency_ms,"
                "  attempts = excluded.attempts, retry_errors = excluded.retry_errors,"
                "  trace_id = excluded.trace_id, scores = excluded.scores, started_at = excluded.started_at,"
                "  recorded_at = excluded.recorded_at)"
                " UPDATE {runs} SET"
                "  recorded = recorded + (SELECT count(*) FROM r) - (SELECT count(*) FROM old),"
                "  succeeded = succeeded + (SELECT count(*) FROM r WHERE status = 'succeeded')"
                "   - (SELECT count(*) FROM old WHERE status = 'succeeded'),"
                "  failed = failed + (SELECT count(*) FROM r WHERE status = 'failed')"
                "   - (SELECT count(*) FROM old WHERE status = 'failed'),"
                "  status = CASE WHEN status = 'pending' THEN 'running' ELSE status END,"
                "  started_at = coalesce(started_at, %(ts)s), updated_at = %(ts)s"
                " WHERE run_id = %(id)s"
            ).format(results=self.table("run_results"), runs=self.table("runs"),
                     items=self.other_view_table("dataset_items")),
            {"id": e.originator_id, "ts": e.timestamp, "rows": _result_rows(e.results)},
            prepare=True,
        )

    def _finished(self, curs: Cursor[Any], e: Run.Completed | Run.Failed | Run.Cancelled) -> None:
        status = {Run.Completed: "completed", Run.Failed: "failed", Run.Cancelled: "cancelled"}[type(e)]
        curs.execute(
            SQL(
                "UPDATE {} SET status = %(status)s, succeeded = %(succeeded)s, failed = %(failed)s,"
                " skipped = %(skipped)s, error = %(error)s, finished_at = %(ts)s, updated_at = %(ts)s"
                " WHERE run_id = %(id)s"
            ).format(self.table("runs")),
            {
                "id": e.originator_id,
                "status": status,
                "succeeded": e.succeeded,
                "failed": e.failed,
                "skipped": e.skipped,
                "error": getattr(e, "error", None) or (e.reason if isinstance(e, Run.Cancelled) else None),
                "ts": e.timestamp,
            },
        )


_HANDLERS = {
    Run.Created: RunsView._created,
    Run.Started: RunsView._started,
    Run.ResultsRecorded: RunsView._results_recorded,
    Run.Completed: RunsView._finished,
    Run.Failed: RunsView._finished,
    Run.Cancelled: RunsView._finished,
}
