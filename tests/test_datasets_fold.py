"""The datasets read model's fold (projections/datasets_fold.py), in memory: what events do
to the rows, and that folding a log in parts, each part seeded with the rows the part
before left for the keys it touches, gives what folding it at once gives (which is how live
catch-up and a rebuild come to the same rows)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import Dataset, ItemChange, NewItem
from evalledger.projections.datasets_fold import DatasetsState, content_values, fold, touched

pytestmark = pytest.mark.fast


def new_item(text: str, external_id: str | None = None, source: Any = None) -> NewItem:
    return NewItem(content=ItemContent(input={"q": text}, expected_output={"a": text}, metadata={"t": text}),
                   external_id=external_id, source=source)


def edit(dataset: Dataset, item_ids: list[str], text: str, actor: str = "bob", reason: str | None = None) -> None:
    changes = [ItemChange(item_id=i, input={"q": text}, fields=frozenset({"input"})) for i in item_ids]
    dataset.update_items(dataset.changed_items(changes), actor=actor, reason=reason)


def revisions(state: DatasetsState, item_id: str) -> list[tuple[Any, ...]]:
    return sorted((r.valid_from, r.valid_to, r.deleted, r.seq, (content_values(r.content).input or {}).get("q"))
                  for r in state.revisions.values() if r.item_id == item_id)


def test_revisions_versions_and_counts() -> None:
    dataset = Dataset.create(name="d", actor="alice")
    a, b = (i.id for i in dataset.add_items([new_item("a", source={"f": 1}), new_item("b")], actor="alice",
                                             reason=None))
    edit(dataset, [a], "a2", reason="fix")
    dataset.delete_items([b], actor="bob", reason=None)
    state = fold(DatasetsState(), dataset.collect_events())
    assert revisions(state, a) == [(1, 2, False, 1, "a"), (2, None, False, 1, "a2")]
    assert revisions(state, b) == [(1, 3, False, 2, "b"), (3, None, True, 2, None)]
    assert [r.source for r in state.revisions.values() if r.item_id == a] == [{"f": 1}, {"f": 1}], \
        "an update that brings no source keeps the one before"
    row = state.datasets[dataset.id]
    assert (row.version, row.item_count, row.next_seq) == (3, 1, 2)
    assert [(v.version, v.added, v.updated, v.removed, v.item_count, v.actor)
            for v in sorted(state.versions.values(), key=lambda v: v.version)] == [
        (0, 0, 0, 0, 0, "alice"), (1, 2, 0, 0, 2, "alice"), (2, 0, 1, 0, 2, "bob"), (3, 0, 0, 1, 1, "bob")]


def test_a_purge_empties_every_revision_the_item_has_then_and_no_later_one() -> None:
    dataset = Dataset.create(name="d", actor="alice")
    a = dataset.add_items([new_item("a")], actor="alice", reason=None)[0].id
    edit(dataset, [a], "a2")
    dataset.purge_item(a, actor="alice", reason="asked")
    dataset.delete_items([a], actor="alice", reason=None)
    state = fold(DatasetsState(), dataset.collect_events())
    rows = sorted((r for r in state.revisions.values() if r.item_id == a), key=lambda r: r.valid_from)
    assert [(content_values(r.content), r.purged_at is not None) for r in rows] == [
        ((None, None, {}), True), ((None, None, {}), True), ((None, None, None), False)]


def test_tags_and_events_of_a_dataset_the_read_model_lacks() -> None:
    dataset = Dataset.create(name="d", actor="alice")
    dataset.add_items([new_item("a")], actor="alice", reason=None)
    dataset.tag_version("golden", 1, move=False, actor="alice", reason="ok")
    dataset.tag_version("old", 0, move=False, actor="alice", reason=None)
    dataset.delete_tag("old", actor="alice", reason=None)
    events = dataset.collect_events()
    state = fold(DatasetsState(), events)
    assert {k[1]: (t.version, t.reason) for k, t in state.tags.items() if t is not None} == {"golden": (1, "ok")}
    assert state.datasets[dataset.id].aggregate_version == events[-1].originator_version
    lacking = fold(DatasetsState(), events[1:])  # without its Created event: nothing
    assert not lacking.revisions and not lacking.versions and not lacking.datasets
    assert all(t is None for t in lacking.tags.values())


def test_folding_in_parts_seeded_with_the_touched_rows_equals_folding_at_once() -> None:
    rng = random.Random(13)
    dataset = Dataset.create(name="d", actor="alice")
    live: list[str] = []  # editable: neither deleted nor purged
    known: list[str] = []  # every item, in creation order
    log: list[Any] = []
    for step in range(120):
        roll = rng.random()
        if roll < 0.25 or len(live) < 3:
            new = [i.id for i in dataset.add_items([new_item(f"n{step}.{n}") for n in range(rng.randint(1, 3))],
                                                   actor="alice", reason=None)]
            live += new
            known += new
        elif roll < 0.6:
            chosen = rng.sample(live, rng.randint(1, min(3, len(live))))
            edit(dataset, chosen, f"e{step}")
        elif roll < 0.75:
            gone = rng.choice(live)
            dataset.delete_items([gone], actor="bob", reason=None)
            live.remove(gone)
        elif roll < 0.85:
            # An import that updates some items and adds others: events of one version,
            # which the parts below may split (the version's row then exists when the next
            # part is read).
            dataset.import_items([new_item(f"i{step}", external_id=f"x{k}") for k in rng.sample(range(8), 3)],
                                 mode="upsert", actor="carol", reason=None)
        elif roll < 0.88:
            purged = rng.choice(known)
            dataset.purge_item(purged, actor="alice", reason=None)
            if purged in live:
                live.remove(purged)
        elif roll < 0.95:
            dataset.tag_version(rng.choice(["golden", "x"]), rng.randint(0, dataset.dataset_version), move=True,
                                actor="alice", reason=None)
        elif dataset.tags:
            dataset.delete_tag(rng.choice(sorted(dataset.tags)), actor="alice", reason=None)
        log += dataset.collect_events()

    whole = fold(DatasetsState(), log)
    # Parts of one event each split every import's version (its second event finds the
    # version's row in the tables); longer parts keep some together.
    for longest in (1, 7):
        stored = in_parts(log, rng, longest)
        assert stored.datasets == whole.datasets
        assert stored.versions == whole.versions
        assert {k: v for k, v in stored.tags.items() if v} == {k: v for k, v in whole.tags.items() if v}
        assert stored.revisions == whole.revisions


def in_parts(log: list[Any], rng: random.Random, longest: int) -> DatasetsState:
    """Fold the log in parts of 1 to `longest` events, each seeded as live catch-up reads
    the rows it touches from the tables; returns what the tables then hold."""
    stored = DatasetsState()  # what the tables hold, part by part
    position = 0
    while position < len(log):
        part = log[position:position + rng.randint(1, longest)]
        position += len(part)
        keys = touched(part)
        seed = DatasetsState(
            datasets={k: copy.deepcopy(v) for k, v in stored.datasets.items() if k in keys.dataset_ids},
            # each dataset's current version row comes with it (projections/datasets.py reads them together)
            versions={(k, d.version): copy.deepcopy(stored.versions[(k, d.version)])
                      for k, d in stored.datasets.items() if k in keys.dataset_ids},
            tags={k: copy.deepcopy(v) for k, v in stored.tags.items() if k in keys.tags})
        for key, row in stored.revisions.items():
            item = key[:2]
            if item in keys.purged_items or (item in keys.open_items and row.valid_to is None and not row.deleted):
                seed.seed_revision(copy.deepcopy(row))
        fold(seed, part)
        for k in seed.changed_datasets:
            stored.datasets[k] = seed.datasets[k]
        for k in seed.changed_versions:
            stored.versions[k] = seed.versions[k]
        for k in seed.changed_tags:
            stored.tags[k] = seed.tags[k]
        for row in seed.changed_revisions.values():
            stored.seed_revision(row)
    return stored
