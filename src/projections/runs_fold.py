"""The runs read model as one fold: `Run` events (and item purges) applied to the rows they
touch, in memory, with no I/O.

This is the only place that says what an event does to the `runs`, `run_results` and
`run_result_reviews` rows (projections/runs.py has the tables). Live catch-up reads the rows
a batch touches, folds the batch into them and writes back the changed ones; a rebuild
folds the log into empty state and COPYs the rows out (runs_bulk.py). The one thing the fold
cannot know is a new result's `seq` (its item's place in the dataset, from the datasets
view): a new result row has `seq` None until the caller fills it in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from evalledger.domain.content import PURGED_TEXT
from evalledger.domain.datasets import Dataset
from evalledger.domain.reviews import fold_review, reviewed_scores
from evalledger.domain.runs import Run, expected_results
from evalledger.projections.folding import fold_events

# The seq of a result whose item the run's dataset version does not hold.
NO_SEQ = 9223372036854775807

FINISHED_STATUS = {Run.Completed: "completed", Run.Failed: "failed", Run.Cancelled: "cancelled"}

ResultKey = tuple[UUID, str, int]  # run id, item id, repetition
RunResultKey = tuple[str, int]  # item id, repetition: a result's key within its run


@dataclass(slots=True)
class RunRow:
    """A row of `runs`."""

    run_id: UUID
    dataset_id: UUID
    dataset_version: int
    name: str
    status: str
    target: Any
    scorers: Any
    settings: Any
    metadata: Any
    total_items: int
    expected_results: int
    recorded: int
    succeeded: int
    failed: int
    skipped: int
    error: str | None
    actor: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


@dataclass(slots=True)
class ResultRow:
    """A row of `run_results`."""

    run_id: UUID
    item_id: str
    repetition: int
    status: str
    output: Any
    error: str | None
    latency_ms: float | None
    attempts: int
    retry_errors: Any
    trace_id: str | None
    scores: Any
    # As the result recorded it (ISO text: PostgreSQL reads it as it writes it, so the
    # fold neither parses it nor formats it again); a datetime as read from the table.
    started_at: datetime | str | None
    recorded_at: datetime
    seq: int | None  # None: not looked up yet
    usage: Any
    recorded_by: str | None
    span_id: str | None
    review: Any = None
    reviewed_scores: Any = None
    flagged: bool = False


@dataclass(slots=True)
class ReviewRow:
    """A row of `run_result_reviews` (never changed once written)."""

    run_id: UUID
    item_id: str
    repetition: int
    run_version: int
    reviewed_at: datetime
    actor: str
    reason: str | None
    verdict: str | None
    scores: Any
    criteria: Any
    comment: str | None
    flagged: bool | None


RUN_COLUMNS = tuple(RunRow.__dataclass_fields__)
RESULT_COLUMNS = tuple(ResultRow.__dataclass_fields__)
REVIEW_COLUMNS = tuple(ReviewRow.__dataclass_fields__)


@dataclass
class RunsState:
    """The rows the fold works on, keyed, and which of them it changed. Live catch-up seeds
    it with the rows a batch touches; a rebuild starts it empty. Results are kept by run,
    then by (item id, repetition): an event's results are all of one run, so its id is
    looked up once per event rather than hashed into a key per result."""

    runs: dict[UUID, RunRow] = field(default_factory=dict)
    results: dict[UUID, dict[RunResultKey, ResultRow]] = field(default_factory=dict)
    new_reviews: list[ReviewRow] = field(default_factory=list)
    changed_runs: set[UUID] = field(default_factory=set)
    changed_results: dict[UUID, set[RunResultKey]] = field(default_factory=dict)

    def add_result(self, row: ResultRow) -> None:
        self.results.setdefault(row.run_id, {})[(row.item_id, row.repetition)] = row

    def all_results(self) -> dict[ResultKey, ResultRow]:
        """Every result row held, by its whole key."""
        return {(run_id, *key): row for run_id, rows in self.results.items() for key, row in rows.items()}

    def changed_result_rows(self) -> list[ResultRow]:
        results = self.results
        return [results[run_id][key] for run_id, keys in self.changed_results.items() for key in keys]


def _float(value: Any) -> float | None:
    """What is not a finite number is NULL, as in the JSON the rows are written as."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def result_row(e: Run.ResultsRecorded, r: dict[str, Any]) -> ResultRow:
    """A result of an event as a new row (seq not yet known). Positional, in the column
    order: a rebuild makes one per result recorded."""
    get = r.get
    error = get("error")
    return ResultRow(
        e.originator_id, r["itemId"], get("repetition", 0), "succeeded" if error is None else "failed",
        get("output"), error, _float(get("latencyMs")), get("attempts", 1), get("retryErrors") or [],
        get("traceId"), get("scores") or [], get("startedAt"), e.timestamp, None, get("usage"), e.actor,
        get("spanId"))


def purged_scores(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A score array with a purged item's texts (reasons, errors) taken out (sealing.py)."""
    return [{**s, "reason": None, "error": None if s.get("error") is None else PURGED_TEXT} for s in scores]


# -- the fold, one function per event class --------------------------------------------------


def _created(state: RunsState, e: Run.Created) -> None:
    state.runs[e.originator_id] = RunRow(
        run_id=e.originator_id, dataset_id=UUID(str(e.dataset_id)), dataset_version=e.dataset_version,
        name=e.name, status="pending", target=e.target, scorers=e.scorers, settings=e.settings,
        metadata=e.metadata, total_items=e.total_items, expected_results=expected_results(e.total_items, e.settings),
        recorded=0, succeeded=0, failed=0, skipped=0, error=None, actor=e.actor, created_at=e.timestamp,
        started_at=None, finished_at=None, updated_at=e.timestamp)
    state.changed_runs.add(e.originator_id)


def _started(state: RunsState, e: Run.Started) -> None:
    run = state.runs.get(e.originator_id)
    if run is not None:
        run.status = "running"
        run.started_at = run.started_at or e.timestamp
        run.updated_at = e.timestamp
        state.changed_runs.add(e.originator_id)


def _results_recorded(state: RunsState, e: Run.ResultsRecorded) -> None:
    # The last result for a key replaces the one before; the run's counts move by difference.
    run_id = e.originator_id
    run = state.runs.get(run_id)
    if run is None:
        return
    results = state.results.get(run_id)
    if results is None:
        results = state.results[run_id] = {}
    changed = state.changed_results.get(run_id)
    if changed is None:
        changed = state.changed_results[run_id] = set()
    recorded = failed = succeeded = 0
    for r in e.results:
        row = result_row(e, r)
        key = (row.item_id, row.repetition)
        old = results.get(key)
        if old is None:
            recorded += 1
        else:
            if old.status == "failed":
                failed -= 1
            else:
                succeeded -= 1
            # What is not the result's own stays: its place, and what reviews said of it.
            row.seq, row.review, row.reviewed_scores, row.flagged = old.seq, old.review, old.reviewed_scores, old.flagged
        if row.status == "failed":
            failed += 1
        else:
            succeeded += 1
        results[key] = row
        changed.add(key)
    run.recorded += recorded
    run.failed += failed
    run.succeeded += succeeded
    if run.status == "pending":
        run.status = "running"
    run.started_at = run.started_at or e.timestamp
    run.updated_at = e.timestamp
    state.changed_runs.add(e.originator_id)


def _finished(state: RunsState, e: Run.Completed | Run.Failed | Run.Cancelled) -> None:
    run = state.runs.get(e.originator_id)
    if run is None:
        return
    run.status = FINISHED_STATUS[type(e)]
    run.succeeded, run.failed, run.skipped = e.succeeded, e.failed, e.skipped
    run.error = getattr(e, "error", None) or (e.reason if isinstance(e, Run.Cancelled) else None)
    run.finished_at = run.updated_at = e.timestamp
    state.changed_runs.add(e.originator_id)


def _result_reviewed(state: RunsState, e: Run.ResultReviewed) -> None:
    state.new_reviews.append(ReviewRow(
        run_id=e.originator_id, item_id=str(e.item_id), repetition=e.repetition, run_version=e.originator_version,
        reviewed_at=e.timestamp, actor=e.actor, reason=e.reason, verdict=e.verdict, scores=e.scores,
        criteria=e.criteria, comment=e.comment, flagged=e.flagged))
    key = (str(e.item_id), e.repetition)
    row = state.results.get(e.originator_id, {}).get(key)
    if row is None:
        return
    row.review = fold_review(row.review, verdict=e.verdict, scores=e.scores, criteria=e.criteria,
                             comment=e.comment, flagged=e.flagged, actor=e.actor, reason=e.reason,
                             at=e.timestamp.isoformat())
    row.reviewed_scores = reviewed_scores(row.scores, row.review)
    row.flagged = row.review["flagged"]
    state.changed_results.setdefault(e.originator_id, set()).add(key)


def _item_purged(state: RunsState, e: Dataset.ItemPurged) -> None:
    # What sealing.py makes of a purged item's results when it reads them from the event
    # store, so a rebuild after the purge gives these rows exactly.
    item_id, dataset_id = str(e.item_id), e.originator_id
    for run_id, results in state.results.items():
        run = state.runs.get(run_id)
        if run is None or run.dataset_id != dataset_id:
            continue
        for key, row in results.items():
            if key[0] != item_id:
                continue
            row.output = None
            row.retry_errors = []
            row.error = None if row.error is None else PURGED_TEXT
            row.scores = purged_scores(row.scores)
            if row.reviewed_scores is not None:
                row.reviewed_scores = purged_scores(row.reviewed_scores)
            state.changed_results.setdefault(run_id, set()).add(key)


FOLDS: dict[type, Any] = {
    Run.Created: _created,
    Run.Started: _started,
    Run.ResultsRecorded: _results_recorded,
    Run.Completed: _finished,
    Run.Failed: _finished,
    Run.Cancelled: _finished,
    Run.ResultReviewed: _result_reviewed,
    Dataset.ItemPurged: _item_purged,
}


def fold(state: RunsState, events: Iterable[Any]) -> RunsState:
    """Apply the events, in log order, to the rows in `state` (which must hold every row
    they touch: see `touched`); returns `state`."""
    return fold_events(FOLDS, state, events)


@dataclass
class Touched:
    """The keys of the rows a run of events may touch, for live catch-up to read them."""

    run_ids: set[UUID] = field(default_factory=set)
    result_keys: set[ResultKey] = field(default_factory=set)
    reviewed: set[ResultKey] = field(default_factory=set)  # those of result_keys a review touches
    purged: set[tuple[UUID, str]] = field(default_factory=set)  # (dataset id, item id): all its results


def touched(events: Iterable[Any]) -> Touched:
    out = Touched()
    for e in events:
        if isinstance(e, Run.ResultsRecorded):
            out.run_ids.add(e.originator_id)
            out.result_keys.update((e.originator_id, r["itemId"], r.get("repetition", 0)) for r in e.results)
        elif isinstance(e, Run.ResultReviewed):
            key = (e.originator_id, str(e.item_id), e.repetition)
            out.result_keys.add(key)
            out.reviewed.add(key)
        elif isinstance(e, Dataset.ItemPurged):
            out.purged.add((e.originator_id, str(e.item_id)))
        elif type(e) in FOLDS:
            out.run_ids.add(e.originator_id)
    return out
