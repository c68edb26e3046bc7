"""Each read model's fold seeded from the database equals the fold of the whole log.

A story is written in two parts; the read model catches up after the first. Then:
- the fold of the whole log, from nothing (what a rebuild folds), and
- the fold of the second part's events, seeded with the rows the database holds (what live
  catch-up folds)
must give the same rows, and once the read model has caught up, the database must hold
them too. (A result's `seq` comes from the datasets view, not from the runs fold: it is
left out of the comparison with the whole log's fold.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest
from psycopg.sql import SQL

from evalledger.bootstrap import Ledger, build_ledger
from evalledger.domain import datasets as dataset_domain
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import ItemChange, NewItem
from evalledger.domain.runs import RunSettings
from evalledger.projections.datasets import DatasetsView
from evalledger.projections.datasets_fold import DatasetsState, ItemRevision, VersionRow, content_values
from evalledger.projections.datasets_fold import Touched as DatasetsTouched
from evalledger.projections.datasets_fold import fold as datasets_fold
from evalledger.projections.datasets_fold import touched as datasets_touched
from evalledger.projections.follower import ProjectionFollower
from evalledger.projections.runs import RunsView
from evalledger.projections.runs_fold import ResultRow, RunsState, fold, touched
from evalledger.settings import Settings


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    ledger = build_ledger(settings)  # not started: the test says when the read models catch up
    yield ledger
    ledger.close()


def follower(ledger: Ledger, name: str) -> ProjectionFollower:
    return next(f for f in ledger.followers if f.name == name)


def the_log(f: ProjectionFollower) -> list[tuple[Any, int]]:
    """Every event the follower's view takes, with its notification id."""
    head = f.app.recorder.max_notification_id() or 0
    notifications = f.app.recorder.select_notifications(start=0, limit=head + 1, stop=head, topics=f.topics,
                                                        inclusive_of_start=False)
    return [(f.app.mapper.to_domain_event(n), n.id) for n in notifications]


def result(item_id: Any, *, error: str | None = None, score: float = 1.0, repetition: int = 0) -> dict[str, Any]:
    return {"itemId": str(item_id), "repetition": repetition, "output": {"a": str(item_id)[:4]}, "error": error,
            "latencyMs": 2.5, "attempts": 1, "startedAt": "2026-01-02T03:04:05+00:00",
            "retryErrors": ["slow"] if error else [],
            "scores": [{"scorerId": "exact", "score": score, "reason": "because", "error": error}]}


def content(text: str) -> ItemContent:
    return ItemContent(input={"q": text}, expected_output={"a": text}, metadata={"tag": text})


def edit(item_id: str, text: str) -> ItemChange:
    return ItemChange(item_id=item_id, input={"q": text}, fields=frozenset({"input"}))


def without_seq(rows: dict[Any, ResultRow]) -> dict[Any, ResultRow]:
    """Results without their seq (the datasets view's to give), with their start time as the
    table reads it back (the fold keeps the text the result recorded)."""
    return {key: dataclasses.replace(row, seq=None, started_at=as_read(row.started_at)) for key, row in rows.items()}


def as_read(value: datetime | str | None) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def test_the_fold_seeded_from_the_database_equals_the_fold_of_the_whole_log(ledger: Ledger) -> None:
    ds, runs = ledger.datasets, ledger.runs
    dataset = ds.create_dataset(name="d").aggregate_id
    items = [i.id for i in ds.add_items(dataset, [NewItem(content=ItemContent(input={"q": n}, expected_output=None,
                                                                               metadata={})) for n in range(5)]).items]
    settings = RunSettings(repetitions=2)
    first, second = uuid4(), uuid4()
    for run_id in (first, second):
        runs.create_run(run_id=run_id, dataset_id=dataset, dataset_version=1, target=None, scorers=["exact"],
                        settings=settings, name="r", metadata={}, total_items=5)
    runs.record_results(first, [result(items[0]), result(items[1], error="boom"), result(items[2], repetition=1)],
                        upsert=True)
    runs.record_results(second, [result(items[0]), result(items[3])], upsert=True)
    runs.finish_run(second)
    runs.review_result(second, item_id=str(items[0]), repetition=0, verdict="fail", scores={"exact": 0.0},
                       criteria={}, comment="first look", flagged=True)

    datasets_f, runs_f = follower(ledger, "datasets"), follower(ledger, "runs")
    datasets_f.catch_up()
    position = runs_f.catch_up()

    # The second part: results replaced (one of them failed before), a second review of a
    # reviewed result, a purge of an item with results in both runs, a third run.
    runs.record_results(first, [result(items[1]), result(items[0], error="late", score=0.0)], upsert=True)
    runs.review_result(second, item_id=str(items[0]), repetition=0, verdict=None, scores={}, criteria={"tone": 0.5},
                       comment=None, flagged=False)
    ds.purge_item(dataset, items[0], reason="asked to")
    third = uuid4()
    runs.create_run(run_id=third, dataset_id=dataset, dataset_version=1, target=None, scorers=[],
                    settings=RunSettings(), name="three", metadata={"m": 1}, total_items=5)
    runs.record_results(third, [result(items[4])], upsert=True)
    runs.cancel_run(first, reason="enough")

    log = the_log(runs_f)
    later = [event for event, notification_id in log if notification_id > position]
    assert len(later) == 6 and len(log) > len(later)
    whole = fold(RunsState(), [event for event, _ in log])

    view: RunsView = runs_f.view  # type: ignore[assignment]
    with view.datastore.transaction(commit=False) as curs:
        seeded = view.read_rows(curs, touched(event for event, _ in log))  # every row there is
        stored_reviews = curs.execute(SQL("SELECT count(*) AS n FROM {}").format(
            view.table("run_result_reviews"))).fetchone()["n"]  # type: ignore[index]
    assert set(seeded.runs) == {first, second} and len(seeded.all_results()) == 5
    fold(seeded, later)
    assert seeded.runs == whole.runs
    assert without_seq(seeded.all_results()) == without_seq(whole.all_results())
    assert stored_reviews + len(seeded.new_reviews) == len(whole.new_reviews) == 2

    # The live path folds the same way: the tables hold what the whole log's fold holds.
    datasets_f.catch_up()
    runs_f.catch_up()
    with view.datastore.transaction(commit=False) as curs:
        stored = view.read_rows(curs, touched(event for event, _ in log))
    assert stored.runs == whole.runs
    assert without_seq(stored.all_results()) == without_seq(whole.all_results())
    assert all(row.seq == items.index(row.item_id) + 1 for row in stored.all_results().values())
    purged = [row for key, row in stored.all_results().items() if key[1] == str(items[0])]
    assert len(purged) == 2 and all(row.output is None for row in purged)


def plain(rows: dict[Any, ItemRevision]) -> dict[Any, ItemRevision]:
    """Revisions with their content as the table holds it (the fold keeps an event's as it is)."""
    return {key: dataclasses.replace(row, content=content_values(row.content)) for key, row in rows.items()}


def test_the_datasets_fold_seeded_from_the_database_equals_the_fold_of_the_whole_log(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = ledger.datasets
    a = ds.create_dataset(name="a", metadata={"k": 0}).aggregate_id
    b = ds.create_dataset(name="b").aggregate_id
    added = [i.id for i in ds.add_items(a, [NewItem(content=content(f"a{n}"), external_id=f"ext-{n}",
                                                    source={"row": n} if n % 2 else None) for n in range(6)]).items]
    ds.add_items(b, [NewItem(content=content("b0"))])
    ds.update_items(a, [edit(added[0], "a0 v2")])
    ds.tag_version(a, "golden", 1)

    datasets_f = follower(ledger, "datasets")
    position = datasets_f.catch_up()

    # The second part: an import of one version in several events (deletes, updates, adds),
    # an edit, a deletion, an item back under its id, a purge, tags moved and deleted,
    # details, a deleted dataset.
    monkeypatch.setattr(dataset_domain, "IMPORT_EVENT_ITEMS", 2)
    rows = [NewItem(content=content(f"imported {n}"), external_id=f"ext-{n}") for n in (1, 3)]
    rows += [NewItem(content=content(f"new {n}"), external_id=f"new-{n}") for n in range(3)]
    ds.import_items(a, rows, mode="replace")
    ds.update_items(a, [edit(added[1], "a1 again")])
    ds.delete_items(a, [added[3]])
    ds.add_items(a, [NewItem(id=added[3], content=content("back"))])
    ds.purge_item(a, added[1], reason="asked to")
    ds.tag_version(a, "golden", 2, move=True)
    ds.tag_version(a, "x", 0)
    ds.delete_tag(a, "x")
    ds.change_details(a, {"name": "a renamed", "metadata": {"k": 1}})
    ds.delete_dataset(b)

    log = the_log(datasets_f)
    later = [event for event, notification_id in log if notification_id > position]
    assert len(later) > 10 and len(log) > len(later)
    whole = datasets_fold(DatasetsState(), [event for event, _ in log])

    view: DatasetsView = datasets_f.view  # type: ignore[assignment]
    with view.datastore.transaction(commit=False) as curs:
        seeded = view.read_rows(curs, datasets_touched(later))  # what live catch-up reads
    assert seeded.revisions and all(row.stored for row in seeded.revisions.values())
    datasets_fold(seeded, later)
    for key in seeded.changed_datasets:
        assert seeded.datasets[key] == whole.datasets[key]
    for key in seeded.changed_versions:
        assert seeded.versions[key] == whole.versions[key]
    for key in seeded.changed_tags:
        assert seeded.tags[key] == whole.tags[key]
    changed = plain(seeded.changed_revisions)
    assert changed == {key: row for key, row in plain(whole.revisions).items() if key in changed}
    assert len(changed) > 10

    # The live path writes them: the tables hold what the whole log's fold holds.
    datasets_f.catch_up()
    every = DatasetsTouched(dataset_ids=set(whole.datasets), purged_items={key[:2] for key in whole.revisions},
                            tags=set(whole.tags))
    with view.datastore.transaction(commit=False) as curs:
        stored = view.read_rows(curs, every)
        curs.execute(SQL("SELECT * FROM {}").format(view.table("dataset_versions")))
        versions = {(row["dataset_id"], row["version"]): VersionRow(**row) for row in curs.fetchall()}
    assert stored.datasets == whole.datasets
    assert versions == whole.versions
    # each dataset's current version came with it
    assert stored.versions == {(d, row.version): whole.versions[(d, row.version)] for d, row in whole.datasets.items()}
    assert stored.tags == {key: tag for key, tag in whole.tags.items() if tag is not None}
    assert plain(stored.revisions) == plain(whole.revisions)
