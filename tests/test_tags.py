"""Dataset version tags (issue 17, item 7): a name for a version (`golden`), moved only when
asked, deleted; reads, diffs, runs and evaluate() take a tag wherever they take a version;
tagging, moving and deleting are events of the dataset in its audit trail; the read model
(live and rebuilt) holds what the replayed aggregate holds."""

from __future__ import annotations

import io
import json
import re
from typing import Any
from uuid import UUID

import pytest
from cli_runner import evalledger
from conftest import Service, acting_for

from evalledger import Client, evaluate
from evalledger.client import ApiError
from evalledger.audit import verify_dataset
from evalledger.projections.rebuild import rebuild


def three_versions(client: Client, name: str = "capitals") -> tuple[str, list[str]]:
    """A dataset at version 3: v1 adds two items, v2 changes the first, v3 adds a third."""
    dataset = client.create_dataset(name)
    added = client.add_items(dataset.id, [{"input": {"q": "France"}, "expectedOutput": "Paris"},
                                          {"input": {"q": "Spain"}, "expectedOutput": "Madrid"}])
    ids = [str(item.id) for item in added.items]
    client.update_item(dataset.id, ids[0], expected_output="Paris, France")
    ids.append(str(client.add_item(dataset.id, input={"q": "Italy"}, expected_output="Rome").item.id))
    return str(dataset.id), ids


def refused(call: Any, status: int, problem_type: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert (caught.value.status, caught.value.type) == (status, problem_type), caught.value.problem
    return caught.value


def test_tag_move_and_delete_are_audited_and_reads_take_the_tag(service: Service) -> None:
    client = service.new_client(actor="alice")
    dataset_id, ids = three_versions(client)

    tagged = client.tag_version(dataset_id, "golden", 1, reason="reviewed by QA")
    assert (tagged.outcome, tagged.version, tagged.previous_version) == ("tagged", 1, None)
    assert (tagged.actor, tagged.reason) == (acting_for("alice"), "reviewed by QA")
    assert client.tag_version(dataset_id, "latest").version == 3  # default: the current version
    assert client.get_dataset(dataset_id).version == 3, "a tag does not make a version"

    # Reads by tag are reads of the version the tag names.
    listing = client.list_items(dataset_id, tag="golden")
    assert listing.version == 1 and [i.expected_output for i in listing.items] == ["Paris", "Madrid"]
    assert client.get_item(dataset_id, ids[0], tag="golden").expected_output == "Paris"
    assert [str(i.id) for i in client.iter_items(dataset_id, tag="latest", per_page=1)] == ids
    diff = client.diff(dataset_id, from_tag="golden", to_tag="latest")
    assert (diff.from_version, diff.to_version) == (1, 3)
    assert (diff.summary.added, diff.summary.changed, diff.summary.removed) == (1, 1, 0)
    assert client.diff(dataset_id, 2, to_tag="golden").to_version == 1
    exported = io.BytesIO()
    assert client.export_items(dataset_id, exported, tag="golden") == 1
    assert [json.loads(line)["expectedOutput"] for line in exported.getvalue().splitlines()] == ["Paris", "Madrid"]
    raw = client.http.get(f"/api/datasets/{dataset_id}/items/export", params={"tag": "golden", "format": "csv"})
    assert raw.status_code == 200 and raw.headers["X-Dataset-Version"] == "1"
    refused(lambda: client.export_items(dataset_id, io.BytesIO(), tag="nope"), 404, "tag-not-found")

    # Tagging a version with the tag it has changes nothing; moving needs asking for.
    events_before = client.list_events(dataset_id, per_page=100).pagination.total
    assert client.tag_version(dataset_id, "golden", 1).outcome == "unchanged"
    error = refused(lambda: client.tag_version(dataset_id, "golden", 2), 409, "tag-exists")
    assert error.problem["taggedVersion"] == 1 and "move" in error.detail
    assert client.get_tag(dataset_id, "golden").version == 1
    assert client.list_events(dataset_id, per_page=100).pagination.total == events_before
    moved = client.tag_version(dataset_id, "golden", 2, move=True, reason="fixed France")
    assert (moved.outcome, moved.version, moved.previous_version) == ("moved", 2, 1)
    assert client.list_items(dataset_id, tag="golden").items[0].expected_output == "Paris, France"

    listed = client.list_tags(dataset_id)
    assert [(t.tag, t.version, t.reason) for t in listed.tags] == [("golden", 2, "fixed France"),
                                                                   ("latest", 3, None)]
    versions = {v.version: v.tags for v in client.list_versions(dataset_id).versions}
    assert versions == {3: ["latest"], 2: ["golden"], 1: [], 0: []}

    deleted = client.delete_tag(dataset_id, "latest", reason="not needed")
    assert (deleted.tag, deleted.version, deleted.deleted) == ("latest", 3, True)
    assert [t.tag for t in client.list_tags(dataset_id).tags] == ["golden"]

    # The audit trail: who pointed which tag where, and why; no dataset version changes.
    events = client.list_events(dataset_id, per_page=100).events
    tag_events = [(e.type, e.payload, e.actor, e.reason, e.version) for e in events
                  if e.type in ("VersionTagged", "TagMoved", "TagDeleted")]
    assert tag_events == [
        ("VersionTagged", {"tag": "golden", "taggedVersion": 1}, acting_for("alice"), "reviewed by QA", None),
        ("VersionTagged", {"tag": "latest", "taggedVersion": 3}, acting_for("alice"), None, None),
        ("TagMoved", {"tag": "golden", "taggedVersion": 2, "previousVersion": 1}, acting_for("alice"), "fixed France", None),
        ("TagDeleted", {"tag": "latest", "previousVersion": 3}, acting_for("alice"), "not needed", None),
    ]
    moves = client.request("GET", f"/api/datasets/{dataset_id}/events", params={"type": "TagMoved"})
    assert [e["payload"]["tag"] for e in moves["events"]] == ["golden"]
    feed = client.request("GET", "/api/events", params={"type": "VersionTagged"})
    assert len(feed["events"]) == 2 and all(e["aggregateType"] == "Dataset" for e in feed["events"])


def test_bad_tags_are_refused_and_change_nothing(service: Service) -> None:
    client = service.client
    dataset_id, _ = three_versions(client)
    client.tag_version(dataset_id, "golden", 1)
    total = client.list_events(dataset_id, per_page=1).pagination.total

    refused(lambda: client.list_items(dataset_id, tag="silver"), 404, "tag-not-found")
    refused(lambda: client.get_tag(dataset_id, "silver"), 404, "tag-not-found")
    refused(lambda: client.delete_tag(dataset_id, "silver"), 404, "tag-not-found")
    refused(lambda: client.create_run(dataset_id, tag="silver"), 404, "tag-not-found")
    refused(lambda: client.diff(dataset_id, from_tag="silver"), 404, "tag-not-found")
    refused(lambda: client.tag_version(dataset_id, "silver", 4), 404, "version-not-found")
    refused(lambda: client.list_items(dataset_id, version=1, tag="golden"), 422, "invalid-request")
    refused(lambda: client.create_run(dataset_id, version=1, tag="golden"), 422, "invalid-request")
    refused(lambda: client.list_tags("6f1c1b9e-3f0a-4d5e-9b1a-2c7d8e9f0a1b"), 404, "dataset-not-found")
    http = client.http
    for name in ("1st", "-x", "a b", "x" * 101, "gold%0A"):
        answer = http.put(f"/api/datasets/{dataset_id}/tags/{name}", json={})
        assert 400 <= answer.status_code < 500 and answer.headers["content-type"] == "application/problem+json", (
            name, answer.status_code, answer.text)
    for body in ({"version": -1}, {"version": "1"}, {"move": "yes"}, {"version": 1, "extra": 1}):
        answer = http.put(f"/api/datasets/{dataset_id}/tags/silver", json=body)
        assert answer.status_code in (400, 422), (body, answer.text)
    assert client.list_events(dataset_id, per_page=1).pagination.total == total
    assert [t.tag for t in client.list_tags(dataset_id).tags] == ["golden"]

    # A deleted dataset's tags are gone with it.
    client.delete_dataset(dataset_id)
    refused(lambda: client.tag_version(dataset_id, "golden", 1), 404, "dataset-not-found")
    refused(lambda: client.list_tags(dataset_id), 404, "dataset-not-found")


def test_runs_and_evaluate_pin_the_version_a_tag_names(service: Service) -> None:
    client = service.client
    dataset_id, _ = three_versions(client, "geo")
    client.tag_version(dataset_id, "golden", 1)

    run = client.create_run(dataset_id, tag="golden", metadata={"owner": "qa"})
    assert (run.dataset_version, run.total_items) == (1, 2)
    assert run.metadata == {"owner": "qa", "datasetTag": "golden"}

    def answer(input: dict[str, str]) -> str:
        return {"France": "Paris", "Spain": "Madrid"}.get(input["q"], "?")

    result = evaluate("geo", answer, ["exact-match"], tag="golden", url=service.url, progress=False)
    assert (result.run["datasetVersion"], len(result.results), result.scores) == (1, 2, {"exact-match": 1.0})
    assert result.run["metadata"]["datasetTag"] == "golden"
    # Moving the tag later does not move the runs made through it.
    client.tag_version(dataset_id, "golden", 3, move=True)
    assert client.get_run(result.run_id).dataset_version == 1
    local = evaluate("geo", answer, ["exact-match"], tag="golden", ledger=service.ledger, progress=False)
    assert (local.run["datasetVersion"], len(local.results)) == (3, 3)
    with pytest.raises(ApiError, match="tag-not-found"):
        evaluate("geo", answer, ["exact-match"], tag="silver", url=service.url, progress=False)


def test_the_read_model_holds_the_replayed_tags_live_and_rebuilt(service: Service) -> None:
    client = service.client
    datasets = [three_versions(client, f"d{n}")[0] for n in range(3)]
    for n, dataset_id in enumerate(datasets):
        client.tag_version(dataset_id, "golden", n)
        client.tag_version(dataset_id, "next", 3)
        client.tag_version(dataset_id, "golden", 3 - n, move=True)
        client.tag_version(dataset_id, "gone", 2)
        client.delete_tag(dataset_id, "gone")
        client.add_item(dataset_id, input={"q": "later"})
    client.tag_version(datasets[0], "gone", 4)
    client.delete_dataset(datasets[2])

    def read_model() -> dict[str, Any]:
        return {d: [(t.tag, t.version, t.actor, t.reason, t.tagged_at) for t in client.list_tags(d).tags]
                for d in datasets[:2]}

    live = read_model()
    for dataset_id in datasets[:2]:
        replayed = service.ledger.datasets.get_dataset(UUID(dataset_id)).tags
        assert {tag: version for tag, version, *_ in live[dataset_id]} == replayed
    assert [t for t, *_ in live[datasets[0]]] == ["golden", "gone", "next"]
    events = {d: client.list_events(d, per_page=1).pagination.total for d in datasets[:2]}

    for dataset_id in datasets[:2]:  # the audit check replays tagged datasets as any other
        assert list(verify_dataset(service.ledger, UUID(dataset_id))) == []
    follower = next(f for f in service.ledger.followers if f.name == "datasets")
    assert rebuild(follower, service.ledger.connection).events > 0
    assert read_model() == live
    assert {d: client.list_events(d, per_page=1).pagination.total for d in datasets[:2]} == events
    assert {v.version: v.tags for v in client.list_versions(datasets[1]).versions}[2] == ["golden"]


def test_the_command_line_tags_lists_and_deletes(service: Service) -> None:
    dataset_id, _ = three_versions(service.client, "cli")
    tagged = evalledger("--actor", "bob", "datasets", "tag", "set", dataset_id, "golden", "--version", "1",
                        url=service.url)
    assert tagged.returncode == 0 and tagged.stdout.strip() == "1", tagged.stderr
    assert "tagged version 1 'golden'" in tagged.stderr
    kept = evalledger("datasets", "tag", "set", dataset_id, "golden", "--version", "2", url=service.url)
    assert kept.returncode == 1 and "tag-exists" in kept.stderr and "move" in kept.stderr
    moved = evalledger("--actor", "carol", "datasets", "tag", "set", dataset_id, "golden", "--version", "2", "--move",
                       url=service.url)
    assert moved.returncode == 0 and "moved tag 'golden' from version 1 to version 2" in moved.stderr
    listed = evalledger("datasets", "tag", "list", dataset_id, url=service.url)
    assert listed.returncode == 0 and "golden" in listed.stdout and "carol" in listed.stdout
    items = evalledger("items", "list", dataset_id, "--tag", "golden", url=service.url)
    assert items.returncode == 0 and "items at version 2 (2)" in items.stdout
    deleted = evalledger("datasets", "tag", "delete", dataset_id, "golden", url=service.url)
    assert deleted.returncode == 0 and "it named version 2" in deleted.stderr
    assert service.client.list_tags(dataset_id).tags == []


def test_the_dataset_page_version_picker_names_tagged_versions(service: Service) -> None:
    from evalledger.ui.datasets import VERSION_CHOICES

    client = service.client
    dataset_id, _ = three_versions(client, "picker")
    for n in range(VERSION_CHOICES):  # version 1 falls out of the picker's recent versions
        client.add_item(dataset_id, input={"q": f"more {n}"})
    client.tag_version(dataset_id, "golden", 1)
    client.tag_version(dataset_id, "release-2026-12")
    page = client.http.get(f"/datasets/{dataset_id}")
    assert page.status_code == 200
    current = 3 + VERSION_CHOICES
    assert re.search(rf'<option value="{current}" selected>v{current} \[release-2026-12\] \(current\)', page.text)
    assert re.search(r'<option value="1" >v1 \[golden\]</option>', page.text), page.text
    older = client.http.get(f"/datasets/{dataset_id}", params={"version": 1})
    assert re.search(r'<option value="1" selected>v1 \[golden\]</option>', older.text)
    assert older.text.count('<option value="1"') == 1
