"""The runs view's bulk load: `Run` events (and purges) folded into the rows of empty
`runs` and `run_results` tables (see bulk.py).

The rows come out exactly as `RunsView`'s handlers write them:
- a run's results are held, the last one for each (item, repetition) replacing the one
  before, and counted by difference as the handler counts them; they are final when the
  run finishes (a finished run takes no more results) and are written then, each with its
  item's `seq` in the dataset version the run is pinned to (one query per run);
- run rows are held until the end;
- purges are applied at the end with the handler's own statement, which leaves results
  already stripped of their texts (recorded after the purge, or read after it) as they are;
- reviews (rare, and only of finished runs, whose results are final) are applied at the
  end too, with the handler's own statements, in log order with the purges.
A spilled result (bulk.py) that is replaced later is deleted and written again.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor
from psycopg.sql import SQL, Identifier

from evalledger.domain.datasets import Dataset
from evalledger.domain.runs import Run
from evalledger.projections.bulk import (
    NULL,
    BulkLoad,
    copy_float,
    copy_id,
    copy_int,
    copy_json,
    copy_text,
    copy_time,
)
from evalledger.projections.runs import RunsView, _finished_params

_RUN_COLUMNS = ("run_id", "dataset_id", "dataset_version", "name", "status", "target", "scorers", "settings",
                "metadata", "total_items", "expected_results", "recorded", "succeeded", "failed", "skipped", "error",
                "actor", "created_at", "started_at", "finished_at", "updated_at")
_RESULT_COLUMNS = ("run_id", "item_id", "repetition", "status", "output", "error", "latency_ms", "attempts",
                   "retry_errors", "trace_id", "scores", "started_at", "recorded_at", "usage", "recorded_by", "span_id",
                   "seq")
# Results of fewer items than this share of the run's items look their items' seqs up by
# id (about 2 µs an id); more look up those of the whole dataset version (0.5 µs an item).
SEQS_BY_ID = 0.25
# The seq of a result whose item the run's dataset version does not hold (as the handler).
_NO_SEQ = b"9223372036854775807"


class _Run:
    __slots__ = ("id", "id_bytes", "dataset_id", "dataset_version", "total_items", "columns", "status", "counts",
                 "started_at", "held", "spilled")

    def __init__(self, e: Run.Created) -> None:
        self.id = e.originator_id
        self.id_bytes = copy_id(e.originator_id)
        self.dataset_id = e.dataset_id
        self.dataset_version = e.dataset_version
        self.total_items = e.total_items
        ts = copy_time(e.timestamp)
        self.columns: dict[str, bytes] = {
            "name": copy_text(e.name), "target": copy_json(e.target), "scorers": copy_json(e.scorers),
            "settings": copy_json(e.settings), "metadata": copy_json(e.metadata),
            "total_items": copy_int(e.total_items),
            "expected_results": copy_int(e.total_items * e.settings.get("repetitions", 1)),
            "skipped": b"0", "error": NULL, "actor": copy_text(e.actor), "created_at": ts, "finished_at": NULL,
            "updated_at": ts,
        }
        self.status = "pending"
        self.counts = {"recorded": 0, "succeeded": 0, "failed": 0}
        self.started_at: bytes | None = None
        # (item id, repetition) -> (status, the result's row up to its seq), not yet written
        self.held: dict[tuple[str, int], tuple[str, bytes]] = {}
        # (item id, repetition) -> status, of the results already written (spilled)
        self.spilled: dict[tuple[str, int], str] = {}


class RunsBulkLoad(BulkLoad):
    view: RunsView

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runs: dict[UUID, _Run] = {}
        self.results_out = self.rows("run_results", _RESULT_COLUMNS)
        # Purges and reviews, in log order, applied once the rows are in.
        self.purges: list[Dataset.ItemPurged | Run.ResultReviewed] = []
        # (run id, item id, repetition) -> the row that replaces a spilled result's row
        self.replacements: dict[tuple[UUID, str, int], bytes] = {}

    # -- the folds, one per event class -------------------------------------------------

    def _created(self, e: Run.Created) -> None:
        self.runs[e.originator_id] = _Run(e)

    def _started(self, e: Run.Started) -> None:
        run = self.runs.get(e.originator_id)
        if run is not None:
            run.status = "running"
            ts = copy_time(e.timestamp)
            run.started_at = run.started_at or ts
            run.columns["updated_at"] = ts

    def _results_recorded(self, e: Run.ResultsRecorded) -> None:
        run = self.runs.get(e.originator_id)
        if run is None:
            return
        ts = copy_time(e.timestamp)
        counts, held = run.counts, run.held
        prefix = run.id_bytes + b"\t"
        for r in e.results:
            item_id, repetition = r["itemId"], r.get("repetition", 0)
            key = (item_id, repetition)
            status = "failed" if r.get("error") is not None else "succeeded"
            before = held.get(key)
            if before is not None:
                old_status = before[0]
                self.held -= len(before[1])
            else:
                old_status = run.spilled.get(key)
            if old_status is None:
                counts["recorded"] += 1
            else:
                counts[old_status] -= 1
            counts[status] += 1
            row = prefix + b"\t".join((
                item_id.encode(), b"%d" % repetition, status.encode(), copy_json(r.get("output")),
                copy_text(r.get("error")), copy_float(r.get("latencyMs")), copy_int(r.get("attempts", 1)),
                copy_json(r.get("retryErrors") or []), copy_text(r.get("traceId")), copy_json(r.get("scores") or []),
                copy_time(r.get("startedAt")), ts, copy_json(r.get("usage")), copy_text(e.actor),
                copy_text(r.get("spanId")))) + b"\t"
            held[key] = (status, row)
            self.held += len(row)
        if run.status == "pending":
            run.status = "running"
        run.started_at = run.started_at or ts
        run.columns["updated_at"] = ts

    def _finished(self, e: Run.Completed | Run.Failed | Run.Cancelled) -> None:
        run = self.runs.get(e.originator_id)
        if run is None:
            return
        finished = _finished_params(e)
        ts = copy_time(e.timestamp)
        run.status = finished["status"]
        run.counts["succeeded"], run.counts["failed"] = finished["succeeded"], finished["failed"]
        run.columns.update(skipped=copy_int(finished["skipped"]), error=copy_text(finished["error"]),
                           finished_at=ts, updated_at=ts)
        self._write_results(run)
        run.spilled = {}  # final: a finished run takes no more results

    def _item_purged(self, e: Dataset.ItemPurged) -> None:
        self.purges.append(e)

    def _result_reviewed(self, e: Run.ResultReviewed) -> None:
        self.purges.append(e)

    folds = {
        Run.Created: _created,
        Run.Started: _started,
        Run.ResultsRecorded: _results_recorded,
        Run.Completed: _finished,
        Run.Failed: _finished,
        Run.Cancelled: _finished,
        Dataset.ItemPurged: _item_purged,
        Run.ResultReviewed: _result_reviewed,
    }

    # -- writing results ----------------------------------------------------------------

    def _write_results(self, run: _Run) -> None:
        """Write the run's held results, each with its item's seq. One that replaces a
        result already written (spilled) replaces its row at the end."""
        if not run.held:
            return
        seqs = self._seqs(run, list({item_id for item_id, _ in run.held}))
        for key, (status, row) in run.held.items():
            line = row + seqs.get(key[0], _NO_SEQ) + b"\n"
            if key in run.spilled:
                self.replacements[(run.id, *key)] = line
            else:
                self.results_out.add(line)
            run.spilled[key] = status
            self.held -= len(row)
        run.held = {}

    def _seqs(self, run: _Run, item_ids: list[str]) -> dict[str, bytes]:
        """Each item's seq in the dataset version the run is pinned to (the handler's join),
        read from the datasets view's tables: for many items, those of the whole version
        (cheaper than sending their ids)."""
        statement = SQL("SELECT item_id, seq FROM {} WHERE dataset_id = %s AND valid_from <= %s"
                        " AND (valid_to IS NULL OR valid_to > %s) AND NOT deleted").format(
                            self.view.other_view_table("dataset_items"))
        params: tuple[Any, ...] = (run.dataset_id, run.dataset_version, run.dataset_version)
        if len(item_ids) < SEQS_BY_ID * run.total_items:
            statement += SQL(" AND item_id = ANY(%s::uuid[])")
            params += (item_ids,)
        # As one JSON object ({"item id": seq}): parsed at once, not row by row.
        statement = SQL("SELECT coalesce(json_object_agg(item_id, seq), '{{}}')::text AS seqs FROM ({}) s").format(
            statement)
        with self.other_views.transaction(commit=False) as curs:
            seqs = orjson.loads(curs.execute(statement, params).fetchone()["seqs"])  # type: ignore[index]
        return {item_id: b"%d" % seqs[item_id] for item_id in item_ids if item_id in seqs}

    # -- spilling and finishing -------------------------------------------------------------

    def spill(self) -> None:
        for run in self.runs.values():
            self._write_results(run)

    def finish(self) -> None:
        self.spill()
        self.results_out.flush()
        runs_out = self.rows("runs", _RUN_COLUMNS)
        for run in self.runs.values():
            c = run.columns
            runs_out.add(b"\t".join((
                run.id_bytes, copy_id(run.dataset_id), b"%d" % run.dataset_version, c["name"], run.status.encode(),
                c["target"], c["scorers"], c["settings"], c["metadata"], c["total_items"], c["expected_results"],
                b"%d" % run.counts["recorded"], b"%d" % run.counts["succeeded"], b"%d" % run.counts["failed"],
                c["skipped"], c["error"], c["actor"], c["created_at"], run.started_at or NULL, c["finished_at"],
                c["updated_at"])) + b"\n")
        runs_out.flush()
        view, purges, replacements = self.view, self.purges, self.replacements
        results = view.table("run_results")

        def replace_and_purge(curs: Cursor[Any]) -> None:
            if replacements:
                run_ids, item_ids, repetitions = (list(column) for column in zip(*replacements, strict=True))
                curs.execute(
                    SQL("DELETE FROM {} r USING unnest(%s::uuid[], %s::uuid[], %s::int[])"
                        " AS k(run_id, item_id, repetition) WHERE r.run_id = k.run_id AND r.item_id = k.item_id"
                        " AND r.repetition = k.repetition").format(results),
                    (run_ids, item_ids, repetitions))
                with curs.copy(SQL("COPY {} ({}) FROM STDIN").format(
                        results, SQL(", ").join(map(Identifier, _RESULT_COLUMNS)))) as copy:
                    copy.write(b"".join(replacements.values()))
            for e in purges:
                if isinstance(e, Run.ResultReviewed):
                    view._result_reviewed(curs, e)
                else:
                    view._item_purged(curs, e)

        self.writer.after(replace_and_purge)
