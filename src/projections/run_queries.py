"""Reads over the runs projection's tables (see projections/runs.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier

from evalledger.domain.runs import FINISHED, RunNotFoundError

RESULT_STATUSES = ("succeeded", "failed")


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
        "scores": row["scores"],
        "startedAt": row["started_at"],
        "recordedAt": row["recorded_at"],
    }


class RunQueries:
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
                " FROM page r JOIN {items} i ON i.dataset_id = %(d)s AND i.item_id = r.item_id"
                "  AND i.valid_from <= %(v)s AND (i.valid_to IS NULL OR i.valid_to > %(v)s) AND NOT i.deleted"
                " ORDER BY r.seq, r.repetition"
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
