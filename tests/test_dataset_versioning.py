"""The story of one dataset: every item change is one version, and every version can be
read back exactly."""

from __future__ import annotations

from uuid import UUID

from conftest import Service


def test_each_item_change_makes_one_version_and_old_versions_read_back(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("support-bot", description="questions from tickets")
    assert isinstance(dataset.id, UUID)
    assert dataset.version == 0 and dataset.item_count == 0

    first = client.add_item(dataset.id, input={"question": "reset password?"},
                            expected_output={"answer": "use the link"}, metadata={"split": "test"})
    assert first.version == 1
    item_id = first.item.id

    updated = client.update_item(dataset.id, item_id, input={"question": "how do I reset my password?"})
    assert updated.version == 2 and updated.changed
    assert updated.item.expected_output == {"answer": "use the link"}  # untouched by a partial update

    second = client.add_item(dataset.id, input={"question": "cancel plan?"})
    assert second.version == 3

    at_1 = client.list_items(dataset.id, version=1)
    assert [i.id for i in at_1.items] == [item_id]
    original = at_1.items[0]
    assert original.input == {"question": "reset password?"}
    assert original.expected_output == {"answer": "use the link"}
    assert original.metadata == {"split": "test"}
    assert at_1.version == 1 and at_1.pagination.total == 1

    at_3 = client.list_items(dataset.id, version=3)
    assert [i.id for i in at_3.items] == [item_id, second.item.id]
    assert client.list_items(dataset.id).version == 3

    history = client.item_history(dataset.id, item_id).history
    assert [h.version for h in history] == [2, 1]
    assert history[0].input == {"question": "how do I reset my password?"}
    assert history[1].valid_to == 2 and history[0].valid_to is None

    assert client.get_item(dataset.id, item_id, version=1).input == {"question": "reset password?"}
    assert client.get_item(dataset.id, item_id).input == {"question": "how do I reset my password?"}
    assert client.get_dataset(dataset.id).version == 3


def test_a_batch_is_one_version_and_so_is_its_deletion(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("batch")
    added = client.add_items(dataset.id, [{"input": f"q{i}", "expectedOutput": f"a{i}"} for i in range(3)])
    assert added.version == 1 and added.count == 3
    assert client.get_dataset(dataset.id).item_count == 3

    removed = client.delete_items(dataset.id, [item.id for item in added.items])
    assert removed.version == 2 and removed.count == 3
    assert client.list_items(dataset.id).items == []
    assert client.list_items(dataset.id, version=1).pagination.total == 3
    assert client.get_dataset(dataset.id).item_count == 0

    versions = client.list_versions(dataset.id).versions
    assert [(v.version, v.added, v.removed, v.item_count) for v in versions] == [
        (2, 0, 3, 0), (1, 3, 0, 3), (0, 0, 0, 0)
    ]


def test_detail_changes_are_events_but_not_versions(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("details")
    client.add_item(dataset.id, input="x")
    renamed = client.update_dataset(dataset.id, name="renamed", metadata={"owner": "qa"}, reason="clearer name")
    assert renamed.name == "renamed" and renamed.metadata == {"owner": "qa"}
    assert renamed.version == 1
    events = client.list_events(dataset.id).events
    assert [e.type for e in events] == ["Created", "ItemsAdded", "DetailsChanged"]
    assert events[2].reason == "clearer name"
    assert events[2].payload == {"changes": {"name": "renamed", "metadata": {"owner": "qa"}}}
    assert events[1].payload["items"][0]["input"] == "x"


def test_an_update_that_changes_nothing_makes_no_version(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("noop")
    item = client.add_item(dataset.id, input={"q": 1}).item
    same = client.update_item(dataset.id, item.id, input={"q": 1})
    assert same.version == 1 and not same.changed
    assert client.get_dataset(dataset.id).version == 1


def test_deleted_dataset_disappears_but_its_events_stay(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("doomed")
    client.add_item(dataset.id, input="x")
    deleted = client.delete_dataset(dataset.id)
    assert deleted.deleted and deleted.version == 1
    assert all(d.id != dataset.id for d in client.list_datasets(per_page=100).datasets)
    response = client.http.get(f"/api/datasets/{dataset.id}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    events = service.ledger.datasets.events.get(dataset.id)
    assert [type(e).__name__ for e in events] == ["Created", "ItemsAdded", "Deleted"]


def test_time_travel_by_timestamp(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("asof")
    client.add_item(dataset.id, input="first")
    moment = client.list_versions(dataset.id).versions[0].created_at
    client.add_item(dataset.id, input="second")
    listing = client.list_items(dataset.id, as_of=moment)
    assert listing.version == 1 and [i.input for i in listing.items] == ["first"]


def test_diff_names_added_removed_and_changed_fields(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("diff")
    kept = client.add_item(dataset.id, input={"q": "a", "ctx": "same"}, expected_output="x").item
    gone = client.add_item(dataset.id, input={"q": "b"}).item
    client.update_item(dataset.id, kept.id, input={"q": "a2", "ctx": "same"}, metadata={"tag": "new"})
    client.delete_item(dataset.id, gone.id)
    new = client.add_item(dataset.id, input={"q": "c"}).item

    diff = client.diff(dataset.id, 2, 5)
    assert (diff.summary.added, diff.summary.removed, diff.summary.changed) == (1, 1, 1)
    by_kind = {d.change: d for d in diff.changes}
    assert by_kind["added"].item_id == new.id
    assert by_kind["removed"].item_id == gone.id
    changes = {c.field: (c.before, c.after) for c in by_kind["changed"].changes}
    assert changes == {"input.q": ("a", "a2"), "metadata.tag": (None, "new")}
