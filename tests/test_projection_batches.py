"""Applying events many at a time writes exactly the rows that applying them one at a time
writes.

The story, told through the applications in this process: two datasets are created and
filled; one item is edited three times in a row (another dataset's edit in between) and
then once more with another item; an import replaces a dataset's items in one version made
of several events of each kind (deletes, updates, adds); two upserts in a row update one
item, the second without a source; an item is deleted and comes back under the same id
and is edited, all in a row; items are deleted by consecutive commands; details change
twice; two caller-driven runs record results, some of them again with another outcome; a
dataset is deleted.

None of it reaches the read models while it is written. Then they are built three ways,
and every row of every read-model table must be the same, column for column:
- one by one: a follower that takes one notification per transaction, in a schema of its
  own (the fold sees one event at a time, seeded with the rows it touches);
- catching up: the service's followers catch up in batches of seven, cut into parts every
  three items, so parts start and end in the middle of the edits above (and two or more
  new revisions are written with COPY);
- rebuilt: the function behind `evalledger projections rebuild` folds the whole log into
  rows held in memory and writes them with COPY.
The rows are also checked against what the story says they must be.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from evalledger.bootstrap import Ledger
from evalledger.domain import datasets as dataset_domain
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import ItemChange, NewItem
from evalledger.domain.runs import RunSettings
from evalledger.projections import bulk, runs_bulk
from evalledger.projections import datasets as datasets_projection
from evalledger.projections.datasets import DatasetsView
from evalledger.projections.follower import ProjectionFollower
from evalledger.projections.rebuild import rebuild
from evalledger.projections.runs import RunsView
from evalledger.settings import Settings

# Each read-model table and the columns that order its rows.
TABLES = {
    "datasets": "dataset_id",
    "dataset_items": "dataset_id, item_id, valid_from",
    "dataset_versions": "dataset_id, version",
    "runs": "run_id",
    "run_results": "run_id, item_id, repetition",
    "dataset_tags": "dataset_id, tag",
}


def content(text: str) -> ItemContent:
    return ItemContent(input={"q": text}, expected_output={"a": text}, metadata={"tag": text})


def edit(item_id: str, text: str) -> ItemChange:
    return ItemChange(item_id=item_id, input={"q": text}, fields=frozenset({"input"}))


def result(item_id: str, *, error: str | None = None, score: float = 1.0) -> dict[str, Any]:
    return {"itemId": item_id, "repetition": 0, "output": {"a": item_id[:4]}, "error": error, "latencyMs": 2.5,
            "attempts": 1, "traceId": None, "startedAt": "2026-01-02T03:04:05+00:00",
            "scores": [{"scorerId": "exact", "score": score}]}


def table_rows(conninfo: str, schema: str) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(conninfo, row_factory=dict_row) as conn:
        return {
            table: conn.execute(
                SQL("SELECT * FROM {}.{} ORDER BY " + order).format(Identifier(schema), Identifier(table))
            ).fetchall()
            for table, order in TABLES.items()
        }


def first_difference(left: dict[str, list[dict[str, Any]]], right: dict[str, list[dict[str, Any]]]) -> str | None:
    for table in TABLES:
        if len(left[table]) != len(right[table]):
            return f"{table}: {len(left[table])} rows against {len(right[table])}"
        for a, b in zip(left[table], right[table], strict=True):
            if a != b:
                return f"{table}:\n  {a}\n  {b}"
    return None




@pytest.fixture
def one_by_one_schema(settings: Settings, ledger: Ledger) -> Iterator[str]:
    schema = f"{settings.schema}_one"
    with psycopg.connect(ledger.connection.conninfo, autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA {}").format(Identifier(schema)))
    yield schema
    with psycopg.connect(ledger.connection.conninfo, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA {} CASCADE").format(Identifier(schema)))


def build_one_by_one(ledger: Ledger, schema: str) -> None:
    """Every read model in `schema`, each event applied in a transaction of its own."""
    c = ledger.connection
    store = PostgresDatastore(dbname=c.dbname, host=c.host, port=c.port, user=c.user, password=c.password,
                              pool_size=2, schema=schema)
    try:
        views = {"datasets": DatasetsView(store, tracking_table_name="datasets_projection_tracking"),
                 "runs": RunsView(store, tracking_table_name="runs_projection_tracking")}
        for follower in ledger.followers:  # datasets first: results read the items' seq
            view = views[follower.name]
            view.create_table()
            ProjectionFollower(name=f"{follower.name}-one", app=follower.app, view=view, topics=follower.topics,
                               conninfo=c.conninfo, batch_size=1).catch_up()
    finally:
        store.close()


def write_the_story(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    ds, runs = ledger.datasets, ledger.runs
    a = ds.create_dataset(name="a").aggregate_id
    b = ds.create_dataset(name="b", metadata={"team": "b"}).aggregate_id
    seeded = ds.add_items(a, [
        NewItem(content=content(f"a{i}"), external_id=f"ext-{i}" if i % 2 else None,
                source={"file": "seed.csv", "row": i} if i % 3 == 0 else None)
        for i in range(9)
    ]).items
    b_items = ds.add_items(b, [NewItem(content=content(f"b{i}")) for i in range(3)]).items
    ids = [item.id for item in seeded]
    x, y, z = ids[0], ids[1], ids[2]

    # x edited three times in a row, b's edit in between, then x again beside y.
    v_x1 = ds.update_items(a, [edit(x, "x1")]).dataset_version
    ds.update_items(b, [edit(b_items[0].id, "b-edit")])
    v_x2 = ds.update_items(a, [edit(x, "x2")]).dataset_version
    v_x3 = ds.update_items(a, [edit(x, "x3"), edit(y, "y1")]).dataset_version
    # Version tags: tagged, a tag of b's in between, moved, tagged and deleted, all in a row.
    ds.tag_version(a, "golden", v_x1, reason="first look")
    ds.tag_version(b, "golden", 1)
    ds.tag_version(a, "golden", v_x3, move=True)
    ds.tag_version(a, "old", 0)
    ds.tag_version(a, "first", 1)
    ds.delete_tag(a, "old")
    run_one = uuid4()  # pinned to the version after x's third edit
    runs.create_run(run_id=run_one, dataset_id=a, dataset_version=v_x3, target=None, scorers=[],
                    settings=RunSettings(), name="one", metadata={}, total_items=9)

    # An import of one version in several events of each kind: with two items per event,
    # replacing the items that have an externalId (ext-1, 3, 5, 7), one of them unchanged,
    # and five new ones, deletes five, updates three and adds five items.
    monkeypatch.setattr(dataset_domain, "IMPORT_EVENT_ITEMS", 2)
    rows = [NewItem(content=content(f"imported {i}"), external_id=f"ext-{i}") for i in (1, 3, 5)]
    rows.append(NewItem(content=content("a7"), external_id="ext-7"))  # as it is: kept
    rows += [NewItem(content=content(f"new {i}"), external_id=f"new-{i}", source={"file": "import.csv"})
             for i in range(5)]
    written, outcome = ds.import_items(a, rows, mode="replace")
    v_import = written.dataset_version
    assert (len(outcome.added), len(outcome.updated), len(outcome.removed)) == (5, 3, 5)
    assert z in outcome.removed and x in outcome.removed

    # Two upserts in a row update one item: the first brings a source, the second none, so
    # its revision keeps the first one's.
    new_ids = [item.id for item in written.items]
    ds.import_items(a, [NewItem(content=content("n4 v2"), external_id="new-4", source={"file": "second.csv"})],
                    mode="upsert")
    ds.import_items(a, [NewItem(content=content("n4 v3"), external_id="new-4")], mode="upsert")

    # An imported item is deleted, comes back under the same id and is edited, straight after.
    v_gone = ds.delete_items(a, [new_ids[0]]).dataset_version
    v_back = ds.add_items(a, [NewItem(id=new_ids[0], content=content("back"), external_id="back")]).dataset_version
    v_edited = ds.update_items(a, [edit(new_ids[0], "back, edited")]).dataset_version
    # Deletes by consecutive commands, then two detail changes in a row.
    ds.delete_items(a, [new_ids[1]])
    ds.delete_items(a, [new_ids[2], new_ids[3]])
    # An item purged and then deleted: its deletion marker comes after the purge.
    p = ds.add_items(a, [NewItem(content=content("to be purged"))]).items[0].id
    ds.purge_item(a, p)
    ds.delete_items(a, [p])
    ds.change_details(a, {"name": "a renamed"})
    ds.change_details(a, {"description": "described", "metadata": {"k": 1}})

    # Two runs record results in turns; some keys again, with another outcome.
    run_two = uuid4()
    runs.create_run(run_id=run_two, dataset_id=b, dataset_version=2, target=None, scorers=[],
                    settings=RunSettings(), name="two", metadata={"m": 1}, total_items=3)
    first = [str(item_id) for item_id in ids[:4]]
    runs.record_results(run_one, [result(i) for i in first[:3]], upsert=True)
    runs.record_results(run_two, [result(str(b_items[0].id))], upsert=True)
    runs.record_results(run_one, [result(first[0], error="boom", score=0.0), result(first[3])], upsert=True)
    runs.record_results(run_one, [result(first[1], score=0.5), result(first[1], error="late")], upsert=True)
    runs.record_results(run_two, [result(str(b_items[1].id), error="x"), result(str(b_items[1].id))], upsert=True)
    runs.finish_run(run_one)
    runs.cancel_run(run_two, reason="enough")
    # A run that never finishes, one of its results replaced; then an item with results,
    # deleted by the import, is purged.
    run_three = uuid4()
    runs.create_run(run_id=run_three, dataset_id=a, dataset_version=v_x3, target=None, scorers=[],
                    settings=RunSettings(), name="three", metadata={}, total_items=9)
    runs.record_results(run_three, [result(first[2]), result(first[3])], upsert=True)
    runs.record_results(run_three, [result(first[2], error="again")], upsert=True)
    ds.purge_item(a, z, reason="asked to")
    ds.delete_dataset(b)
    return {"a": a, "b": b, "x": x, "z": z, "p": p, "back": new_ids[0], "new-4": new_ids[4], "run_one": run_one,
            "run_two": run_two, "run_three": run_three, "v_x1": v_x1, "v_x2": v_x2, "v_x3": v_x3, "v_import": v_import, "v_gone": v_gone,
            "v_back": v_back, "v_edited": v_edited}


def check_the_story(rows: dict[str, list[dict[str, Any]]], story: dict[str, Any]) -> None:
    """What the rows must say, whichever way they were built."""
    def revisions(item_id: str) -> list[tuple[Any, ...]]:
        return [(r["valid_from"], r["valid_to"], r["deleted"], r["seq"], (r["input"] or {}).get("q"))
                for r in rows["dataset_items"] if str(r["item_id"]) == item_id]

    seq_x = revisions(story["x"])[0][3]
    assert revisions(story["x"]) == [
        (1, story["v_x1"], False, seq_x, "a0"),
        (story["v_x1"], story["v_x2"], False, seq_x, "x1"),
        (story["v_x2"], story["v_x3"], False, seq_x, "x2"),
        (story["v_x3"], story["v_import"], False, seq_x, "x3"),
        (story["v_import"], None, True, seq_x, None),
    ]
    back = revisions(story["back"])
    assert [r[:3] for r in back] == [
        (story["v_import"], story["v_gone"], False),
        (story["v_gone"], None, True),  # the deletion marker stays open
        (story["v_back"], story["v_edited"], False),
        (story["v_edited"], None, False),
    ]
    assert back[0][3] == back[1][3] < back[2][3] == back[3][3], "the item comes back with a new seq"
    assert [r["source"] for r in rows["dataset_items"] if str(r["item_id"]) == story["new-4"]] == [
        {"file": "import.csv"}, {"file": "second.csv"}, {"file": "second.csv"}]
    seqs = sorted({r["seq"] for r in rows["dataset_items"] if r["dataset_id"] == story["a"]})
    assert seqs == list(range(1, len(seqs) + 1)), "seq numbers items 1, 2, ... in creation order"

    versions = {r["version"]: r for r in rows["dataset_versions"] if r["dataset_id"] == story["a"]}
    imported = versions[story["v_import"]]
    assert (imported["added"], imported["updated"], imported["removed"], imported["item_count"]) == (5, 3, 5, 9)
    assert [versions[v]["item_count"] for v in (story["v_gone"], story["v_back"], story["v_edited"])] == [8, 9, 9]

    a = next(r for r in rows["datasets"] if r["dataset_id"] == story["a"])
    assert (a["name"], a["description"], a["metadata"]) == ("a renamed", "described", {"k": 1})
    assert (a["version"], a["item_count"], a["next_seq"]) == (max(versions), 6, len(seqs))
    assert a["aggregate_version"] == max(v["aggregate_version"] for v in versions.values()) + 3  # details, purge
    assert next(r for r in rows["datasets"] if r["dataset_id"] == story["b"])["deleted_at"] is not None

    tags = {(r["dataset_id"], r["tag"]): (r["version"], r["reason"]) for r in rows["dataset_tags"]}
    assert tags == {(story["a"], "golden"): (story["v_x3"], None), (story["a"], "first"): (1, None),
                    (story["b"], "golden"): (1, None)}

    by_run = {r["run_id"]: r for r in rows["runs"]}
    one, two = by_run[story["run_one"]], by_run[story["run_two"]]
    assert (one["status"], one["recorded"], one["succeeded"], one["failed"]) == ("completed", 4, 2, 2)
    assert (two["status"], two["recorded"], two["succeeded"], two["failed"]) == ("cancelled", 2, 2, 0)
    results = {(r["run_id"], str(r["item_id"])): r for r in rows["run_results"]}
    assert len(results) == 8
    three = by_run[story["run_three"]]
    assert (three["status"], three["recorded"], three["succeeded"], three["failed"]) == ("running", 2, 1, 1)
    purged = [r for key, r in results.items() if key[1] == story["z"]]
    assert len(purged) == 2 and all(r["output"] is None for r in purged)
    assert sorted(str(r["error"]) for r in purged) == ["None", "[purged]"]
    z_rows = [r for r in rows["dataset_items"] if str(r["item_id"]) == story["z"]]
    assert [r["deleted"] for r in z_rows] == [False, True] and all(r["purged_at"] for r in z_rows)
    assert z_rows[0]["input"] is None and z_rows[0]["metadata"] == {}
    replaced = [r for key, r in results.items() if key[0] == story["run_one"] and r["error"] is not None]
    assert sorted(r["error"] for r in replaced) == ["boom", "late"]
    assert all(r["seq"] < 2**62 for r in results.values()), "every result found its item's seq"
    p_rows = [r for r in rows["dataset_items"] if str(r["item_id"]) == story["p"]]
    assert [(r["deleted"], r["purged_at"] is not None) for r in p_rows] == [(False, True), (True, False)]
    assert all(r["purged_at"] is None for r in rows["dataset_items"] if str(r["item_id"]) not in (story["z"], story["p"]))


def test_batched_read_models_equal_the_one_by_one_ones(
    ledger: Ledger, settings: Settings, one_by_one_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = write_the_story(ledger, monkeypatch)
    conninfo = ledger.connection.conninfo

    build_one_by_one(ledger, one_by_one_schema)
    expected = table_rows(conninfo, one_by_one_schema)
    check_the_story(expected, story)

    # Two or more new revisions are written with COPY here, single ones with the INSERT.
    monkeypatch.setattr(datasets_projection, "COPY_ADDED_FROM", 2)
    for follower in ledger.followers:
        follower.batch_size = 7
        follower.view.max_run_weight = 3
        follower.catch_up()
    caught_up = table_rows(conninfo, settings.schema)
    assert first_difference(caught_up, expected) is None, first_difference(caught_up, expected)

    monkeypatch.setattr(runs_bulk, "SEQS_BY_ID", 2.0)  # each run's seqs looked up by id
    for follower in ledger.followers:
        assert rebuild(follower, ledger.connection).events > 5
    rebuilt = table_rows(conninfo, settings.schema)
    assert first_difference(rebuilt, expected) is None, first_difference(rebuilt, expected)
    assert len(rebuilt["dataset_items"]) > 30 and len(rebuilt["run_results"]) == 8

    # Rebuilt again reading one event at a time with no memory to hold rows: every open
    # revision and every result is written at once ("spilled"), so revisions are closed by
    # updates and replaced results are deleted and written again.
    monkeypatch.setattr(bulk, "FIRST_READ", 1)
    monkeypatch.setattr(bulk, "READ_MOST", 1)
    monkeypatch.setattr(runs_bulk, "SEQS_BY_ID", 0)  # and seqs looked up for a whole version
    for follower in ledger.followers:
        told: list[tuple[int, int]] = []
        report = rebuild(follower, ledger.connection, memory_budget=0,
                         progress=lambda position, head: told.append((position, head)))
        assert report.events > 5 and len(told) == report.events, "progress told after each one-event batch"
        positions = [position for position, _ in told]
        assert positions == sorted(set(positions)) and {head for _, head in told} == {report.position}
        assert positions[-1] <= report.position
    spilled = table_rows(conninfo, settings.schema)
    assert first_difference(spilled, expected) is None, first_difference(spilled, expected)


def test_a_batch_is_cut_into_parts_where_its_weight_would_go_over_the_most() -> None:
    from evalledger.projections.view import parts_of

    weights = {"a": 2, "b": 5}
    assert list(parts_of(["a", "a", "a", "b", "b"], weights.get, max_weight=4)) == [
        ["a", "a"], ["a"], ["b"], ["b"]]  # a heavier event than the limit still goes, alone
    assert list(parts_of(["a", "a", "b"], weights.get, max_weight=9)) == [["a", "a", "b"]]
    assert list(parts_of([], weights.get)) == []


@pytest.mark.parametrize("copy_from", [1, 10**9], ids=["copy", "insert"])
def test_items_added_to_a_dataset_the_read_model_lacks_are_dropped(
    ledger: Ledger, one_by_one_schema: str, monkeypatch: pytest.MonkeyPatch, copy_from: int
) -> None:
    """Both ways of writing new revisions (COPY, and the INSERT from JSON) leave out the
    items of a dataset that has no row in the read model, and write nothing else."""
    monkeypatch.setattr(datasets_projection, "COPY_ADDED_FROM", copy_from)
    dataset_id = ledger.datasets.create_dataset(name="not projected").aggregate_id
    ledger.datasets.add_items(dataset_id, [NewItem(content=content(f"i{i}")) for i in range(3)])
    added = [e for e in ledger.datasets.events.get(dataset_id) if isinstance(e, dataset_domain.Dataset.ItemsAdded)]
    c = ledger.connection
    store = PostgresDatastore(dbname=c.dbname, host=c.host, port=c.port, user=c.user, password=c.password,
                              pool_size=1, schema=one_by_one_schema)
    try:
        view = DatasetsView(store, tracking_table_name="datasets_projection_tracking")
        view.create_table()
        with store.transaction(commit=True) as curs:
            view.apply_now(curs, added)  # without the Created event before them
    finally:
        store.close()
    with psycopg.connect(c.conninfo) as conn:
        counts = [conn.execute(SQL("SELECT count(*) FROM {}.{}").format(Identifier(one_by_one_schema),
                                                                        Identifier(table))).fetchone()[0]
                  for table in ("datasets", "dataset_items", "dataset_versions")]
    assert counts == [0, 0, 0]
