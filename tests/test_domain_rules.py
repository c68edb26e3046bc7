"""The fast tier: domain rules tested in memory, on the aggregates themselves (no database,
no service; the whole file runs in well under a second). Each test tells one rule as a
short story: what was there, what was asked, what the events say.

    .venv/bin/python -m pytest -q tests/test_domain_rules.py
"""

from __future__ import annotations

from uuid import uuid4

import pytest

from evalledger.domain.access import (
    DEFAULT_PROJECT_ID,
    ApiKey,
    ForbiddenError,
    KeyRevokedError,
    Principal,
    Project,
    parse_actor,
    project_id_of,
    role_at_least,
)
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import Dataset, ItemChange, NewItem, project_of
from evalledger.domain.errors import (
    ExternalIdTakenError,
    InvalidRequestError,
    ItemNotFoundError,
    ItemPurgedError,
)
from evalledger.domain.runs import Run, RunFinishedError, RunNotCallerDrivenError, RunNotFinishedError, RunSettings

pytestmark = pytest.mark.fast


def new_item(question: str, external_id: str | None = None) -> NewItem:
    return NewItem(content=ItemContent(input={"q": question}, expected_output=None, metadata={}),
                   external_id=external_id)


def events_of(aggregate: Dataset | Run | ApiKey) -> list[str]:
    return [type(e).__name__ for e in aggregate.collect_events()]


# -- datasets: one version per change ----------------------------------------------------------


def test_a_dataset_starts_at_version_0_and_each_batch_makes_exactly_one_version() -> None:
    dataset = Dataset.create(name="qa", actor="alice")
    assert dataset.dataset_version == 0 and dataset.project_id == DEFAULT_PROJECT_ID
    added = dataset.add_items([new_item("a"), new_item("b"), new_item("c")], actor="alice", reason=None)
    assert dataset.dataset_version == 1 and len(dataset.items) == 3
    dataset.delete_items([added[0].id, added[1].id], actor="alice", reason="stale")
    assert dataset.dataset_version == 2 and set(dataset.items) == {added[2].id}
    assert events_of(dataset) == ["Created", "ItemsAdded", "ItemsDeleted"]


def test_details_change_by_attribute_and_the_event_keeps_the_names_it_has_always_recorded() -> None:
    dataset = Dataset.create(name="qa", actor="alice")
    dataset.collect_events()
    schema = {"type": "object"}
    assert dataset.change_details({"input_schema": schema, "description": "d"}, actor="bob", reason=None)
    [event] = dataset.collect_events()
    assert event.changes == {"inputSchema": schema, "description": "d"}  # as stored events have them
    assert dataset.input_schema == schema
    replayed = Dataset.create(name="qa", actor="alice")
    event.apply(replayed)
    assert replayed.input_schema == schema


def test_an_item_change_names_its_fields_by_attribute() -> None:
    dataset = Dataset.create(name="qa", actor="alice")
    [item] = dataset.add_items([new_item("a")], actor="alice", reason=None)
    change = ItemChange(item_id=item.id, expected_output="4", external_id="q-1",
                        fields=frozenset({"expected_output", "external_id"}))
    [changed] = dataset.changed_items([change])
    assert changed.content.expected_output == "4" and changed.external_id == "q-1"
    assert changed.content.input == item.content.input


def test_an_update_that_changes_nothing_records_nothing() -> None:
    dataset = Dataset.create(name="qa", actor="alice")
    [item] = dataset.add_items([new_item("a")], actor="alice", reason=None)
    dataset.collect_events()
    same = ItemChange(item_id=item.id, input={"q": "a"}, expected_output=None, metadata=None, external_id=None,
                      fields=frozenset({"input"}))
    assert dataset.changed_items([same]) == []
    assert dataset.change_details({"name": "qa"}, actor="bob", reason=None) is False
    assert events_of(dataset) == []


def test_an_external_id_is_unique_within_a_dataset_and_within_a_batch() -> None:
    dataset = Dataset.create(name="qa", actor="alice")
    dataset.add_items([new_item("a", "e-1")], actor="alice", reason=None)
    with pytest.raises(ExternalIdTakenError, match="already used"):
        dataset.add_items([new_item("b", "e-1")], actor="alice", reason=None)
    with pytest.raises(ExternalIdTakenError, match="appears twice"):
        dataset.add_items([new_item("c", "e-2"), new_item("d", "e-2")], actor="alice", reason=None)
    assert dataset.dataset_version == 1  # a refused command changes nothing


def test_a_purged_item_can_never_be_changed_again_but_keeps_its_place() -> None:
    dataset = Dataset.create(name="qa", actor="alice")
    [item] = dataset.add_items([new_item("secret")], actor="alice", reason=None)
    assert dataset.purge_item(item.id, actor="dpo", reason="erasure") is True
    assert dataset.purge_item(item.id, actor="dpo", reason="again") is False  # idempotent
    change = ItemChange(item_id=item.id, input={"q": "x"}, expected_output=None, metadata=None, external_id=None,
                        fields=frozenset({"input"}))
    with pytest.raises(ItemPurgedError):
        dataset.changed_items([change])
    assert item.id in dataset.items and dataset.dataset_version == 1
    with pytest.raises(ItemNotFoundError):
        dataset.changed_items([ItemChange(item_id=str(uuid4()), input=1, expected_output=None, metadata=None,
                                          external_id=None, fields=frozenset({"input"}))])


def test_datasets_from_before_projects_belong_to_the_default_project() -> None:
    assert project_of(None) == DEFAULT_PROJECT_ID
    team = project_id_of("team-a")
    assert Dataset.create(name="qa", project_id=team, actor="a").project_id == team


# -- runs: one recorded result per (item, repetition) ----------------------------------------


def new_run(repetitions: int = 1, caller_driven: bool = False) -> Run:
    return Run.create(run_id=uuid4(), dataset_id=uuid4(), dataset_version=1,
                      target=None if caller_driven else {"type": "registered", "name": "t"}, scorers=["exact-match"],
                      settings=RunSettings(repetitions=repetitions), name="r", metadata={}, total_items=2,
                      actor="alice", reason=None)


def result(item: str, repetition: int = 0, output: object = "x", error: str | None = None) -> dict[str, object]:
    """A result as the runner records it: an `error` makes it a failed one."""
    return {"itemId": item, "repetition": repetition, "output": output, "error": error, "scores": []}


def test_a_server_run_keeps_the_first_result_of_each_item_and_repetition() -> None:
    run = new_run(repetitions=2)
    run.start(actor="runner")
    assert run.record_results([result("a"), result("a", 1), result("b")], upsert=False, actor="runner") == 3
    # A resumed run sends what it had in flight again: nothing is recorded twice.
    assert run.record_results([result("a"), result("b", 1)], upsert=False, actor="runner") == 1
    assert run.counts() == (4, 0, 0) and run.expected_results == 4


def test_a_server_run_never_replaces_a_result_so_each_key_it_records_is_new() -> None:
    # The runs view relies on it: it does not read a server run's results before writing them.
    run = new_run()
    run.record_results([result("a", output="first")], upsert=False, actor="runner")
    with pytest.raises(RunNotCallerDrivenError):
        run.record_results([result("a", output="second")], upsert=True, actor="caller")
    assert events_of(run) == ["Created", "ResultsRecorded"]


def test_a_caller_driven_run_replaces_a_result_but_records_an_identical_one_never() -> None:
    run = new_run(caller_driven=True)
    assert run.record_results([result("a", output="first")], upsert=True, actor="caller") == 1
    assert run.record_results([result("a", output="first")], upsert=True, actor="caller") == 0
    assert run.record_results([result("a", output="second")], upsert=True, actor="caller") == 1
    run.finalize(actor="caller")
    run.finalize(actor="caller")  # a retried finalize records nothing more
    assert events_of(run) == ["Created", "ResultsRecorded", "ResultsRecorded", "Completed"]


def test_a_run_whose_every_result_failed_fails_and_a_finished_run_takes_no_more() -> None:
    run = new_run()
    run.record_results([result("a", error="timeout"), result("b", error="boom")], upsert=False, actor="r")
    run.finish(actor="r")
    assert run.status == "failed"
    with pytest.raises(RunFinishedError):
        run.record_results([result("a")], upsert=False, actor="r")
    with pytest.raises(RunFinishedError):
        run.cancel(actor="alice", reason=None)


def test_a_review_needs_a_finished_run_a_recorded_result_and_something_to_say() -> None:
    run = new_run()
    run.record_results([result("a")], upsert=False, actor="r")
    with pytest.raises(RunNotFinishedError):
        run.review(item_id="a", repetition=0, verdict="pass", scores={}, criteria={}, comment=None, flagged=None,
                   actor="carol", reason=None)
    run.finish(actor="r")
    with pytest.raises(InvalidRequestError, match="needs a verdict"):
        run.review(item_id="a", repetition=0, verdict=None, scores={}, criteria={}, comment=None, flagged=None,
                   actor="carol", reason=None)
    with pytest.raises(InvalidRequestError, match="between 0 and 1"):
        run.review(item_id="a", repetition=0, verdict=None, scores={"exact-match": 1.5}, criteria={}, comment=None,
                   flagged=None, actor="carol", reason=None)
    run.review(item_id="a", repetition=0, verdict="pass", scores={"exact-match": 1.0}, criteria={}, comment="ok",
               flagged=None, actor="carol", reason=None)
    assert events_of(run)[-1] == "ResultReviewed"


# -- access: keys, roles, the recorded actor ---------------------------------------------------


def test_roles_are_ordered_and_a_project_key_sees_its_project_only() -> None:
    assert role_at_least("admin", "writer") and role_at_least("writer", "reader")
    assert not role_at_least("reader", "writer")
    team, other = project_id_of("team"), project_id_of("other")
    key = Principal(key_id=uuid4(), name="ci", project_id=team, role="writer")
    assert key.sees(team) and not key.sees(other) and not key.is_instance
    admin = Principal(key_id=None, name="admin", project_id=None, role="admin")
    assert admin.sees(team) and admin.sees(other)


def test_the_recorded_actor_is_the_key_and_x_actor_only_says_on_whose_behalf() -> None:
    key_id = uuid4()
    key = Principal(key_id=key_id, name="ci bot", project_id=None, role="writer")
    assert key.actor() == f"ci bot (key {key_id})"
    forged = key.actor("admin (key env)")
    assert forged == f"ci bot (key {key_id}) on behalf of admin (key env)"
    assert parse_actor(forged) == {"keyName": "ci bot", "keyId": str(key_id), "onBehalfOf": "admin (key env)"}
    assert parse_actor("alice") == {}  # events from before keys carry free text


def test_a_key_is_revoked_once_and_names_are_checked() -> None:
    key = ApiKey.issue(project_id=None, name="ci", role="admin", prefix="elk_12345678", digest="d" * 64, actor="a")
    key.revoke(actor="a")
    with pytest.raises(KeyRevokedError):
        key.revoke(actor="a")
    with pytest.raises(InvalidRequestError, match="role must be one of"):
        ApiKey.issue(project_id=None, name="ci", role="owner", prefix="p", digest="d", actor="a")
    with pytest.raises(InvalidRequestError, match="slug"):
        Project.create(name="Team", slug="Team A", actor="a")
    assert Project.create(name="Team", slug="team-a", actor="a").id == project_id_of("team-a")
    assert issubclass(ForbiddenError, Exception)
