"""The runs view's bulk load: the log folded (runs_fold.py, the fold live catch-up uses too)
into the rows of empty `runs` and `run_results` tables, sent with COPY (see bulk.py).

- a run's results are held as the fold leaves them and written when the run finishes (a
  finished run takes no more results), each with its item's `seq` in the dataset version
  the run is pinned to (one query per run);
- run rows are held until the end;
- purges and reviews (rare, and reviews only of finished runs, whose results are final) are
  kept aside, in log order, and applied at the end by the view's live path, which folds
  them into the rows they touch; a purge leaves results already stripped of their texts
  (recorded after the purge, read after it) as they are, so applying it late changes nothing.
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
from evalledger.projections.runs import RunsView
from evalledger.projections.runs_fold import (
    FINISHED_STATUS,
    FOLDS,
    NO_SEQ,
    RESULT_COLUMNS,
    RUN_COLUMNS,
    ResultKey,
    ResultRow,
    RunResultKey,
    RunRow,
    RunsState,
)

# Results of fewer items than this share of the run's items look their items' seqs up by
# id; more look up those of the whole dataset version (cheaper than sending the ids).
SEQS_BY_ID = 0.25
# About how many bytes a held result takes, for the memory budget.
RESULT_SIZE = 1000
# Events applied at the end, by the live path (see above).
_LATER = (Dataset.ItemPurged, Run.ResultReviewed)
# The columns a load writes: what reviews add is left to the tables' defaults (none, not
# flagged), since the load applies reviews only at the end.
LOADED_RESULT_COLUMNS = tuple(name for name in RESULT_COLUMNS if name not in ("review", "reviewed_scores", "flagged"))


def run_line(run: RunRow) -> bytes:
    return b"\t".join((
        copy_id(run.run_id), copy_id(run.dataset_id), b"%d" % run.dataset_version, copy_text(run.name),
        run.status.encode(), copy_json(run.target), copy_json(run.scorers), copy_json(run.settings),
        copy_json(run.metadata), b"%d" % run.total_items, b"%d" % run.expected_results, b"%d" % run.recorded,
        b"%d" % run.succeeded, b"%d" % run.failed, b"%d" % run.skipped, copy_text(run.error), copy_text(run.actor),
        copy_time(run.created_at), copy_time(run.started_at), copy_time(run.finished_at),
        copy_time(run.updated_at))) + b"\n"


def result_lines(rows: list[ResultRow], run_id: bytes) -> list[bytes]:
    """One run's results (`LOADED_RESULT_COLUMNS`) as lines of COPY's text format. The run id comes
    encoded; the time and actor that consecutive results of one event share are encoded
    once; the columns most results leave empty are tested here rather than each sent
    through its encoder: a rebuild writes a line per result."""
    lines = []
    recorded_at = recorded_by = None
    at = by = b""
    for row in rows:
        if row.recorded_at is not recorded_at:
            recorded_at = row.recorded_at
            at = copy_time(recorded_at)
        if row.recorded_by is not recorded_by:
            recorded_by = row.recorded_by
            by = copy_text(recorded_by)
        error, latency, trace_id, started_at = row.error, row.latency_ms, row.trace_id, row.started_at
        usage, span_id = row.usage, row.span_id
        lines.append(b"\t".join((
            run_id, row.item_id.encode(), b"%d" % row.repetition, row.status.encode(), copy_json(row.output),
            NULL if error is None else copy_text(error), NULL if latency is None else copy_float(latency),
            copy_int(row.attempts), b"[]" if row.retry_errors == [] else copy_json(row.retry_errors),
            NULL if trace_id is None else copy_text(trace_id), copy_json(row.scores),
            NULL if started_at is None else copy_time(started_at), at, copy_int(row.seq),
            NULL if usage is None else copy_json(usage), by,
            NULL if span_id is None else copy_text(span_id))) + b"\n")
    return lines


class RunsBulkLoad(BulkLoad):
    view: RunsView

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The fold's state. Its `changed_results` are the results not yet written (held),
        # by run: they are taken out when written.
        self.state = RunsState()
        self.results_out = self.rows("run_results", LOADED_RESULT_COLUMNS)
        self.later: list[Any] = []  # purges and reviews, in log order
        # Results written before their run finished (spilled), by run: each is kept in the
        # state as a stand-in with what a replacement takes over from it (status for the
        # counts, and seq).
        self.spilled: dict[UUID, set[RunResultKey]] = {}
        self.replacements: dict[ResultKey, bytes] = {}  # spilled rows' replacements

    def fold(self, events: Any) -> None:
        state = self.state
        held = state.changed_results
        for event in events:
            kind = type(event)
            if kind in _LATER:
                self.later.append(event)
                continue
            apply = FOLDS.get(kind)
            if apply is None:
                continue
            if kind is Run.ResultsRecorded:
                before = len(held.get(event.originator_id, ()))
                apply(state, event)
                self.held += (len(held.get(event.originator_id, ())) - before) * RESULT_SIZE
            else:
                apply(state, event)
                if kind in FINISHED_STATUS:
                    run = state.runs.get(event.originator_id)
                    if run is not None:
                        self._write_results(run)
                        # Final: a finished run takes no more results; its stand-ins can go.
                        self.spilled.pop(run.run_id, None)
                        state.results.pop(run.run_id, None)
        if self.held > self.memory_budget:
            self.spill()
            self.held = 0

    def _write_results(self, run: RunRow, *, spilling: bool = False) -> None:
        """Write the run's held results, each with its item's seq; one that replaces a
        result already written replaces its row at the end. Spilling, each written result
        stays in the state as a stand-in."""
        keys = self.state.changed_results.pop(run.run_id, None)
        if not keys:
            return
        self.held = max(0, self.held - len(keys) * RESULT_SIZE)
        results = self.state.results[run.run_id]
        spilled = self.spilled.get(run.run_id)
        rows = list(results.values()) if not spilled and len(keys) == len(results) else [results[key] for key in keys]
        run_id = copy_id(run.run_id)
        missing = list({row.item_id for row in rows if row.seq is None})
        seqs = self._seqs(run, missing) if missing else {}
        for row in rows:
            if row.seq is None:
                row.seq = seqs.get(row.item_id, NO_SEQ)
        if spilled:
            for row, line in zip(rows, result_lines(rows, run_id), strict=True):
                if (row.item_id, row.repetition) in spilled:
                    self.replacements[(run.run_id, row.item_id, row.repetition)] = line
                else:
                    self.results_out.add(line)
        else:
            self.results_out.add_encoded(rows, lambda some: result_lines(some, run_id))
        if spilling:
            self.spilled.setdefault(run.run_id, set()).update(keys)
            for row in rows:
                results[(row.item_id, row.repetition)] = ResultRow(
                    run_id=row.run_id, item_id=row.item_id, repetition=row.repetition, status=row.status,
                    output=None, error=None, latency_ms=None, attempts=0, retry_errors=None, trace_id=None,
                    scores=None, started_at=None, recorded_at=row.recorded_at, seq=row.seq, usage=None,
                    recorded_by=None, span_id=None)

    def _seqs(self, run: RunRow, item_ids: list[str]) -> dict[str, int]:
        """Each item's seq in the dataset version the run is pinned to, read from the
        datasets view's tables: for many items, those of the whole version (cheaper than
        sending their ids)."""
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
        return {item_id: seqs[item_id] for item_id in item_ids if item_id in seqs}

    def spill(self) -> None:
        runs = self.state.runs
        for run_id in list(self.state.changed_results):
            self._write_results(runs[run_id], spilling=True)

    def finish(self) -> None:
        runs = self.state.runs
        for run_id in list(self.state.changed_results):
            self._write_results(runs[run_id])
        self.results_out.flush()
        runs_out = self.rows("runs", RUN_COLUMNS)
        for run in runs.values():
            runs_out.add(run_line(run))
        runs_out.flush()
        view, later, replacements = self.view, self.later, self.replacements
        results = view.table("run_results")

        def replace_then_apply_later(curs: Cursor[Any]) -> None:
            if replacements:
                run_ids, item_ids, repetitions = (list(column) for column in zip(*replacements, strict=True))
                curs.execute(
                    SQL("DELETE FROM {} r USING unnest(%s::uuid[], %s::uuid[], %s::int[])"
                        " AS k(run_id, item_id, repetition) WHERE r.run_id = k.run_id AND r.item_id = k.item_id"
                        " AND r.repetition = k.repetition").format(results),
                    (run_ids, item_ids, repetitions))
                with curs.copy(SQL("COPY {} ({}) FROM STDIN").format(
                        results, SQL(", ").join(map(Identifier, LOADED_RESULT_COLUMNS)))) as copy:
                    copy.write(b"".join(replacements.values()))
            if later:
                view.apply_now(curs, later)

        self.writer.after(replace_then_apply_later)

