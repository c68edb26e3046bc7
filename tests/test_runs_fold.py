"""The runs read model's fold (projections/runs_fold.py), in memory: what events do to the
rows, and that folding a log in parts, each part seeded with the rows the part before left
for the keys it touches, gives what folding it at once gives (which is how live catch-up and
a rebuild come to the same rows)."""

from __future__ import annotations

import copy
import random
from typing import Any
from uuid import uuid4

import pytest
from conftest import random_parts

from evalledger.domain.content import PURGED_TEXT, ItemContent
from evalledger.domain.datasets import Dataset, NewItem
from evalledger.domain.runs import Run, RunSettings
from evalledger.projections.runs_fold import RunsState, fold, touched

pytestmark = pytest.mark.fast


def new_run(dataset_id: Any, *, repetitions: int = 1, total_items: int = 3) -> Run:
    return Run.create(run_id=uuid4(), dataset_id=dataset_id, dataset_version=1, target=None, scorers=["exact"],
                      settings=RunSettings(repetitions=repetitions), name="r", metadata={"m": 1},
                      total_items=total_items, actor="alice", reason=None)


def result(item: str, *, repetition: int = 0, error: str | None = None, score: float = 1.0) -> dict[str, Any]:
    return {"itemId": item, "repetition": repetition, "output": {"a": item}, "error": error, "latencyMs": 1.5,
            "startedAt": "2026-01-02T03:04:05+00:00", "retryErrors": ["slow"] if error else [],
            "scores": [{"scorerId": "exact", "score": score, "reason": "why", "error": error}]}


def test_results_replace_by_key_and_the_counts_move_by_difference() -> None:
    dataset_id = uuid4()
    run = new_run(dataset_id, repetitions=2)
    a, b = str(uuid4()), str(uuid4())
    run.record_results([result(a), result(b, error="boom")], upsert=True, actor="caller")
    run.record_results([result(a, error="late"), result(a, repetition=1), result(b)], upsert=True, actor="caller")
    run.finish(actor="caller")
    state = fold(RunsState(), run.collect_events())
    row = state.runs[run.id]
    assert (row.status, row.expected_results, row.recorded, row.succeeded, row.failed) == ("completed", 6, 3, 2, 1)
    assert row.started_at is not None and row.finished_at == row.updated_at
    assert {(r.item_id, r.repetition): r.status for r in state.results[run.id].values()} == {
        (a, 0): "failed", (a, 1): "succeeded", (b, 0): "succeeded"}
    assert all(r.seq is None for r in state.changed_result_rows()), "seqs are the caller's"


def test_a_replaced_result_keeps_its_seq_and_review() -> None:
    run = new_run(uuid4())
    a = str(uuid4())
    run.record_results([result(a)], upsert=True, actor="caller")
    state = fold(RunsState(), run.collect_events())
    state.results[run.id][(a, 0)].seq = 7
    state.results[run.id][(a, 0)].review = {"flagged": True}
    state.results[run.id][(a, 0)].flagged = True
    run.record_results([result(a, score=0.0)], upsert=True, actor="caller")
    fold(state, run.collect_events())
    row = state.results[run.id][(a, 0)]
    assert (row.seq, row.review, row.flagged, row.scores[0]["score"]) == (7, {"flagged": True}, True, 0.0)
    assert state.runs[run.id].recorded == 1


def test_a_review_folds_into_the_result_and_is_kept_as_a_row_of_its_own() -> None:
    run = new_run(uuid4())
    a = str(uuid4())
    run.record_results([result(a, score=0.2)], upsert=True, actor="caller")
    run.finish(actor="caller")
    run.review(item_id=a, repetition=0, verdict="pass", scores={"exact": 1.0}, criteria={}, comment=None,
               flagged=True, actor="bob", reason=None)
    state = fold(RunsState(), run.collect_events())
    row = state.results[run.id][(a, 0)]
    assert row.flagged and row.review["verdict"] == "pass"
    assert row.reviewed_scores[0]["score"] == 1.0 and row.reviewed_scores[0]["automaticScore"] == 0.2
    assert [(r.actor, r.verdict) for r in state.new_reviews] == [("bob", "pass")]


def test_a_purge_strips_the_texts_of_that_items_results_in_runs_of_that_dataset_only() -> None:
    dataset = Dataset.create(name="d", actor="alice")
    item = dataset.add_items([NewItem(content=ItemContent(input={"q": 1}, expected_output=None, metadata={}))],
                             actor="alice", reason=None)[0].id
    mine, other = new_run(dataset.id), new_run(uuid4())
    for run in (mine, other):
        run.record_results([result(item, error="boom")], upsert=True, actor="caller")
    dataset.collect_events()
    dataset.purge_item(item, actor="alice", reason="asked")
    state = fold(RunsState(), [*mine.collect_events(), *other.collect_events(), *dataset.collect_events()])
    purged, kept = state.results[mine.id][(item, 0)], state.results[other.id][(item, 0)]
    assert (purged.output, purged.error, purged.retry_errors) == (None, PURGED_TEXT, [])
    assert purged.scores == [{"scorerId": "exact", "score": 1.0, "reason": None, "error": PURGED_TEXT}]
    assert (kept.output, kept.error) == ({"a": item}, "boom")


def test_folding_in_parts_seeded_with_the_touched_rows_equals_folding_at_once() -> None:
    rng = random.Random(13)
    dataset = Dataset.create(name="d", actor="alice")
    items = [i.id for i in dataset.add_items(
        [NewItem(content=ItemContent(input={"q": n}, expected_output=None, metadata={})) for n in range(6)],
        actor="alice", reason=None)]
    runs = [new_run(dataset.id, repetitions=2, total_items=6) for _ in range(3)]
    log: list[Any] = [*dataset.collect_events()]
    for run in runs:
        log += run.collect_events()
    for step in range(40):
        run = rng.choice(runs)
        if run.status in ("completed", "failed", "cancelled"):
            continue
        roll = rng.random()
        if roll < 0.75:
            batch = [result(rng.choice(items), repetition=rng.randrange(2), error=rng.choice([None, "e"]),
                            score=rng.random()) for _ in range(rng.randint(1, 4))]
            run.record_results(batch, upsert=True, actor="caller")
        elif roll < 0.85:
            run.finish(actor="caller")
            recorded = [k.split("#") for k in run.outcomes]
            if recorded:
                item, repetition = rng.choice(recorded)
                run.review(item_id=item, repetition=int(repetition), verdict="fail", scores={"exact": 0.5},
                           criteria={}, comment=f"c{step}", flagged=None, actor="bob", reason=None)
        elif roll < 0.9:
            run.cancel(actor="caller", reason="enough")
        else:
            dataset.purge_item(rng.choice(items), actor="alice", reason=None)
        log += run.collect_events() + dataset.collect_events()

    whole = fold(RunsState(), log)
    stored = RunsState()  # what the tables hold, part by part
    for part in random_parts(log, rng):
        keys = touched(part)
        seed = RunsState(
            runs={run_id: copy.deepcopy(row) for run_id, row in stored.runs.items()
                  if run_id in keys.run_ids or row.dataset_id in {d for d, _ in keys.purged}})
        for key, row in stored.all_results().items():
            if key in keys.result_keys or any(key[1] == i for _, i in keys.purged):
                seed.add_result(copy.deepcopy(row))
        fold(seed, part)
        for run_id in seed.changed_runs:
            stored.runs[run_id] = seed.runs[run_id]
        for row in seed.changed_result_rows():
            stored.add_result(row)
    assert stored.runs == whole.runs
    assert stored.all_results() == whole.all_results()
