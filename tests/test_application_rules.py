"""The fast tier, one layer up: the applications' commands (what the service layer adds to
the aggregates: schema checks, storable checks, idempotent run creation, purging by key
destruction, retries on the cached aggregate) run on the eventsourcing library's
in-memory (POPO) persistence with an in-memory key store, so they are tested without
PostgreSQL or a service process.

    .venv/bin/python -m pytest -q -m fast
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest

from evalledger.adapters.item_keys import MemoryItemKeys
from evalledger.domain.content import PURGED_CONTENT, ItemContent
from evalledger.domain.datasets import ItemChange, NewItem
from evalledger.domain.errors import (
    ConflictError,
    DatasetNotFoundError,
    InvalidRequestError,
    InvalidSchemaError,
    ItemNotFoundError,
    SchemaViolationError,
)
from evalledger.domain.runs import RunFinishedError, RunNotFoundError, RunSettings
from evalledger.service_layer.applications import Datasets, Runs

pytestmark = pytest.mark.fast

# The library's in-memory persistence, whatever the environment says.
IN_MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


@pytest.fixture
def datasets() -> Iterator[Datasets]:
    app = Datasets(env=IN_MEMORY, item_keys=MemoryItemKeys())
    yield app
    app.close()


@pytest.fixture
def runs() -> Iterator[Runs]:
    app = Runs(env=IN_MEMORY, item_keys=MemoryItemKeys())
    yield app
    app.close()


def item(question: object, answer: object = None, external_id: str | None = None) -> NewItem:
    return NewItem(content=ItemContent(input=question, expected_output=answer, metadata={}), external_id=external_id)


QUESTION_SCHEMA = {"type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}}


# -- datasets: versions -------------------------------------------------------------------------


def test_each_command_answers_the_versions_it_made_and_an_empty_change_makes_none(datasets: Datasets) -> None:
    created = datasets.create_dataset(name="qa", actor="alice")
    assert created.dataset_version == 0 and created.notification_id is not None
    added = datasets.add_items(created.aggregate_id, [item({"q": "a"}), item({"q": "b"})], actor="alice")
    assert added.dataset_version == 1 and len(added.items) == 2 and added.changed
    assert added.notification_id > created.notification_id
    same = ItemChange(item_id=added.items[0].id, input={"q": "a"}, expected_output=None, metadata=None,
                      external_id=None, fields=frozenset({"input"}))
    unchanged = datasets.update_items(created.aggregate_id, [same], actor="alice")
    assert not unchanged.changed and unchanged.dataset_version == 1 and unchanged.notification_id is None
    assert [i.id for i in unchanged.items] == [added.items[0].id]  # the caller still gets the item it named


def test_a_replayed_dataset_equals_the_one_in_the_cache(datasets: Datasets) -> None:
    dataset_id = datasets.create_dataset(name="qa", actor="alice").aggregate_id
    datasets.add_items(dataset_id, [item({"q": "a"}, "A")], actor="alice")
    datasets.delete_items(dataset_id, [next(iter(datasets.get_dataset(dataset_id).items))], actor="bob")
    datasets.add_items(dataset_id, [item({"q": "b"}, "B")], actor="alice")
    cached = datasets.get_dataset(dataset_id)
    datasets._evict(dataset_id)
    replayed = datasets.get_dataset(dataset_id)
    assert replayed is not cached and replayed.dataset_version == cached.dataset_version == 3
    assert {i.id: i.content for i in replayed.items.values()} == {i.id: i.content for i in cached.items.values()}
    assert datasets.get_dataset(dataset_id, aggregate_version=2).dataset_version == 1  # an earlier version


def test_a_deleted_dataset_is_not_found_and_takes_no_more_commands(datasets: Datasets) -> None:
    dataset_id = datasets.create_dataset(name="qa", actor="alice").aggregate_id
    datasets.delete_dataset(dataset_id, actor="alice")
    with pytest.raises(DatasetNotFoundError):
        datasets.get_dataset(dataset_id)
    with pytest.raises(DatasetNotFoundError):
        datasets.add_items(dataset_id, [item({"q": "a"})], actor="alice")


def test_values_postgresql_cannot_hold_are_refused_before_anything_is_saved(datasets: Datasets) -> None:
    dataset_id = datasets.create_dataset(name="qa", actor="alice").aggregate_id
    with pytest.raises(InvalidRequestError, match="items/1/input"):
        datasets.add_items(dataset_id, [item({"q": "fine"}), item({"q": "nul \x00 here"})], actor="alice")
    assert datasets.get_dataset(dataset_id).dataset_version == 0


# -- datasets: schemas ---------------------------------------------------------------------------


def test_items_must_satisfy_the_schemas_and_a_null_expected_output_always_may(datasets: Datasets) -> None:
    dataset_id = datasets.create_dataset(name="qa", input_schema=QUESTION_SCHEMA,
                                         expected_output_schema={"type": "string"}, actor="alice").aggregate_id
    with pytest.raises(SchemaViolationError) as refused:
        datasets.add_items(dataset_id, [item({"q": "ok"}, "A"), item({"q": 1}, 2)], actor="alice")
    assert [e["field"] for e in refused.value.extra["errors"]] == ["items/1/input/q", "items/1/expectedOutput"]
    assert datasets.get_dataset(dataset_id).dataset_version == 0  # nothing of the batch was saved
    assert datasets.add_items(dataset_id, [item({"q": "ok"}, None)], actor="alice").dataset_version == 1


def test_a_schema_change_is_refused_while_current_items_break_it(datasets: Datasets) -> None:
    dataset_id = datasets.create_dataset(name="qa", actor="alice").aggregate_id
    [loose] = datasets.add_items(dataset_id, [item({"question": "no q"})], actor="alice").items
    with pytest.raises(SchemaViolationError) as refused:
        datasets.change_details(dataset_id, {"input_schema": QUESTION_SCHEMA}, actor="alice")
    assert [f["item_id"] for f in refused.value.extra["failing_items"]] == [loose.id]
    datasets.delete_items(dataset_id, [loose.id], actor="alice")
    assert datasets.change_details(dataset_id, {"input_schema": QUESTION_SCHEMA}, actor="alice").changed


def test_an_invalid_or_remote_schema_is_refused_at_creation(datasets: Datasets) -> None:
    with pytest.raises(InvalidSchemaError):
        datasets.create_dataset(name="qa", input_schema={"type": "no-such-type"}, actor="alice")
    with pytest.raises(InvalidSchemaError, match="points outside the schema"):
        datasets.create_dataset(name="qa", input_schema={"$ref": "https://example.com/s.json"}, actor="alice")


# -- datasets: purging ---------------------------------------------------------------------------


def test_a_purge_destroys_the_key_so_no_replay_reads_the_content_again(datasets: Datasets) -> None:
    dataset_id = datasets.create_dataset(name="qa", actor="alice").aggregate_id
    secret, kept = datasets.add_items(dataset_id, [item({"q": "secret"}, "S"), item({"q": "kept"})],
                                      actor="alice").items
    datasets.delete_items(dataset_id, [secret.id], actor="alice")  # purging works on deleted items too
    purged = datasets.purge_item(dataset_id, secret.id, actor="dpo", reason="erasure")
    assert purged.changed and purged.dataset_version == 2  # a purge is not a new version
    datasets._evict(dataset_id)
    holding_it = datasets.get_dataset(dataset_id, aggregate_version=2)  # replayed to when it was added
    assert holding_it.items[secret.id].content == PURGED_CONTENT
    assert secret.id not in datasets.get_dataset(dataset_id).items
    assert datasets.get_dataset(dataset_id).items[kept.id].content.input == {"q": "kept"}
    assert not datasets.purge_item(dataset_id, secret.id, actor="dpo").changed  # again: nothing recorded
    with pytest.raises(ItemNotFoundError):
        datasets.purge_item(dataset_id, str(uuid4()), actor="dpo")


def test_a_purge_reaches_a_deleted_dataset(datasets: Datasets) -> None:
    dataset_id = datasets.create_dataset(name="qa", actor="alice").aggregate_id
    [secret] = datasets.add_items(dataset_id, [item({"q": "secret"})], actor="alice").items
    datasets.delete_dataset(dataset_id, actor="alice")
    assert datasets.purge_item(dataset_id, secret.id, actor="dpo").changed
    assert datasets.item_keys.key(secret.id, str(dataset_id)) is None


# -- runs: the state machine ---------------------------------------------------------------------


DATASET_ID = uuid4()


def create_run(runs: Runs, run_id: object = None, *, name: str = "r", total_items: int = 2) -> object:
    return runs.create_run(run_id=run_id or uuid4(), dataset_id=DATASET_ID, dataset_version=1,
                           target={"type": "registered", "name": "t"}, scorers=["exact-match"],
                           settings=RunSettings(), name=name, metadata={}, total_items=total_items, actor="alice")


def result(item_id: str, output: object = "x", error: str | None = None) -> dict[str, object]:
    return {"itemId": item_id, "repetition": 0, "output": output, "error": error, "scores": []}


def test_creating_a_run_again_is_a_no_op_and_with_another_definition_a_conflict(runs: Runs) -> None:
    run_id = uuid4()
    first = create_run(runs, run_id)
    again = create_run(runs, run_id)
    assert first.changed and not again.changed and again.aggregate_version == first.aggregate_version
    with pytest.raises(ConflictError):
        create_run(runs, run_id, name="other")
    with pytest.raises(RunNotFoundError):
        runs.get_run(uuid4())


def test_a_run_goes_from_pending_through_running_to_completed_and_then_takes_nothing(runs: Runs) -> None:
    run_id = create_run(runs).aggregate_id
    assert runs.get_run(run_id).status == "pending"
    runs.start_run(run_id)
    assert runs.get_run(run_id).status == "running"
    runs.record_results(run_id, [result("a"), result("b")], upsert=False)
    runs.record_results(run_id, [result("a", output="again")], upsert=False)  # a resumed chunk: kept the first
    runs.finish_run(run_id)
    run = runs.get_run(run_id)
    assert run.status == "completed" and run.counts() == (2, 0, 0)
    with pytest.raises(RunFinishedError):
        runs.record_results(run_id, [result("c")], upsert=False)
    with pytest.raises(RunFinishedError):
        runs.cancel_run(run_id, actor="alice")


def test_a_cancelled_run_is_finished_and_a_review_needs_a_finished_run(runs: Runs) -> None:
    run_id = create_run(runs).aggregate_id
    runs.start_run(run_id)
    runs.record_results(run_id, [result("a")], upsert=False)
    runs.cancel_run(run_id, actor="alice", reason="wrong model")
    assert runs.get_run(run_id).status == "cancelled"
    reviewed = runs.review_result(run_id, item_id="a", repetition=0, verdict="pass", scores={}, criteria={},
                                  comment=None, flagged=None, actor="carol")
    assert reviewed.changed


def test_results_for_a_purged_item_keep_their_statistics_but_not_their_texts() -> None:
    keys = MemoryItemKeys()
    datasets, runs = Datasets(env=IN_MEMORY, item_keys=keys), Runs(env=IN_MEMORY, item_keys=keys)
    try:
        dataset_id = datasets.create_dataset(name="qa", actor="alice").aggregate_id
        [secret] = datasets.add_items(dataset_id, [item({"q": "secret"})], actor="alice").items
        run_id = create_run(runs, total_items=1).aggregate_id
        runs.start_run(run_id)
        datasets.purge_item(dataset_id, secret.id, actor="dpo")
        runs.record_results(run_id, [result(secret.id, output="the secret answer")], upsert=False)
        [recorded] = [event for event in runs.events.get(run_id) if hasattr(event, "results")]
        assert [r["output"] for r in recorded.results] == [None]
        assert runs.get_run(run_id).counts() == (1, 0, 0)
    finally:
        datasets.close()
        runs.close()
