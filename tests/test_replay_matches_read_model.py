"""The audit check, from the outside: drive a randomised edit history through the HTTP API,
then walk every version of every dataset and see that the read model lists exactly the
items the aggregate holds when it is replayed from its events up to that version."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import psycopg
from conftest import Service
from listing import every_page
from psycopg.sql import SQL, Identifier

from evalledger.adapters import database
from evalledger.domain.datasets import Dataset

SEED = 20_240_611
COMMANDS = 60
PER_PAGE = 4  # small, so that every listing of more than a few items spans several pages


# -- the history ---------------------------------------------------------------------------


@dataclass
class Tracked:
    """What the test knows about one dataset while it writes, to choose valid commands."""

    id: str
    version: int = 0
    live: list[str] = field(default_factory=list)  # item ids, in creation order
    external_ids: dict[str, str] = field(default_factory=dict)  # item id -> externalId
    freed_external_ids: list[str] = field(default_factory=list)  # once used, free again now
    minted: int = 0  # externalIds made up so far


def fresh_external_id(tracked: Tracked) -> str:
    tracked.minted += 1
    return f"ext-{tracked.minted}"


def random_json(rng: random.Random, step: int) -> Any:
    """A JSON value of a random shape: objects, arrays, strings (some not ASCII), numbers,
    booleans, nested."""
    shape = rng.randrange(6)
    if shape == 0:
        return {"question": f"q{step}", "context": "ctx " * rng.randint(0, 5), "n": step}
    if shape == 1:
        return [step, f"s{step}", {"nested": [True, False, None]}, 0.5]
    if shape == 2:
        return f"plain text {step} — café ✓"
    if shape == 3:
        return step * 7
    if shape == 4:
        return {"deep": {"er": {"est": [step, {"x": rng.random() < 0.5}]}}, "empty": {}}
    return {"turns": [{"role": "user", "content": f"hi {step}"}, {"role": "assistant", "content": ""}]}


def new_external_id(rng: random.Random, tracked: Tracked) -> str:
    """A fresh externalId, or sometimes one that another item gave up."""
    if tracked.freed_external_ids and rng.random() < 0.4:
        return tracked.freed_external_ids.pop(rng.randrange(len(tracked.freed_external_ids)))
    return fresh_external_id(tracked)


def new_item_body(rng: random.Random, tracked: Tracked, step: int) -> dict[str, Any]:
    body: dict[str, Any] = {"input": random_json(rng, step)}
    if rng.random() < 0.7:
        body["expectedOutput"] = random_json(rng, step + 1000)
    if rng.random() < 0.6:
        body["metadata"] = {"split": rng.choice(["train", "test"]), "step": step,
                            "tags": ["a", "b"][: rng.randint(0, 2)]}
    if rng.random() < 0.4:
        body["externalId"] = new_external_id(rng, tracked)
    return body


def remember_added(tracked: Tracked, item_id: str, external_id: str | None) -> None:
    tracked.live.append(item_id)
    if external_id is not None:
        tracked.external_ids[item_id] = external_id


def forget_deleted(tracked: Tracked, item_id: str) -> None:
    tracked.live.remove(item_id)
    external_id = tracked.external_ids.pop(item_id, None)
    if external_id is not None:
        tracked.freed_external_ids.append(external_id)


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    return response.json()


def run_random_history(http: httpx.Client, rng: random.Random, datasets: list[Tracked]) -> dict[str, int]:
    """COMMANDS random writes spread over the datasets; returns how often each kind ran."""
    kinds = {"add": 3, "batch-add": 2, "update": 5, "delete": 2, "batch-delete": 1, "details": 1}
    ran = dict.fromkeys(kinds, 0)
    for step in range(COMMANDS):
        tracked = rng.choice(datasets)
        kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
        if kind in ("update", "delete") and not tracked.live:
            kind = "add"
        if kind == "batch-delete" and len(tracked.live) < 2:
            kind = "batch-add"
        ran[kind] += 1
        base = f"/api/datasets/{tracked.id}"
        headers = {"X-Actor": f"tester-{step % 3}", "X-Change-Reason": f"step {step}"}

        if kind == "add":
            body = new_item_body(rng, tracked, step)
            answer = expect(http.post(f"{base}/items", json=body, headers=headers), 201)
            tracked.version += 1
            assert answer["version"] == tracked.version
            assert answer["item"]["input"] == body["input"]
            remember_added(tracked, answer["item"]["id"], body.get("externalId"))

        elif kind == "batch-add":
            bodies = [new_item_body(rng, tracked, step * 100 + j) for j in range(rng.randint(2, 6))]
            answer = expect(http.post(f"{base}/items/batch", json={"items": bodies}, headers=headers), 201)
            tracked.version += 1
            assert answer["version"] == tracked.version and answer["count"] == len(bodies)
            for body, item in zip(bodies, answer["items"], strict=True):
                remember_added(tracked, item["id"], body.get("externalId"))

        elif kind == "update":
            item_id = rng.choice(tracked.live)
            fields = rng.sample(["input", "expectedOutput", "metadata", "externalId"], k=rng.randint(1, 3))
            patch: dict[str, Any] = {}
            for name in fields:
                if name == "input":
                    patch["input"] = random_json(rng, step + 2000)
                elif name == "expectedOutput":
                    patch["expectedOutput"] = None if rng.random() < 0.25 else random_json(rng, step + 3000)
                elif name == "metadata":
                    patch["metadata"] = {} if rng.random() < 0.2 else {"edited": step, "split": "dev"}
                else:  # a new externalId, or none (the old one, if any, is given up)
                    clear = item_id in tracked.external_ids and rng.random() < 0.3
                    patch["externalId"] = None if clear else new_external_id(rng, tracked)
            answer = expect(http.patch(f"{base}/items/{item_id}", json=patch, headers=headers), 200)
            if answer["changed"]:
                tracked.version += 1
            assert answer["version"] == tracked.version
            for name, value in patch.items():
                assert answer["item"][name] == value, (name, answer["item"], patch)
            if "externalId" in patch:
                old = tracked.external_ids.pop(item_id, None)
                if old is not None and old != patch["externalId"]:
                    tracked.freed_external_ids.append(old)
                if patch["externalId"] is not None:
                    tracked.external_ids[item_id] = patch["externalId"]

        elif kind == "delete":
            item_id = tracked.live[rng.randrange(len(tracked.live))]
            answer = expect(http.delete(f"{base}/items/{item_id}", headers=headers), 200)
            tracked.version += 1
            assert answer["version"] == tracked.version
            forget_deleted(tracked, item_id)

        elif kind == "batch-delete":
            doomed = rng.sample(tracked.live, k=rng.randint(2, min(4, len(tracked.live))))
            ids = doomed + doomed[:1]  # a repeated id is deleted once
            answer = expect(http.request("DELETE", f"{base}/items/batch", json={"itemIds": ids}, headers=headers), 200)
            tracked.version += 1
            assert answer["version"] == tracked.version and answer["count"] == len(doomed)
            for item_id in doomed:
                forget_deleted(tracked, item_id)

        else:  # details: events in the stream, but no new version
            change = rng.choice([
                {"name": f"renamed at step {step}"},
                {"metadata": {"owner": f"team-{step}"}},
                {"description": f"described at step {step}", "name": f"both at {step}"},
            ])
            answer = expect(http.patch(base, json=change, headers=headers), 200)
            assert answer["version"] == tracked.version
            for name, value in change.items():
                assert answer[name] == value
    return ran


# -- the two sides -------------------------------------------------------------------------


def wire(item_id: str, external_id: str | None, input_: Any, expected_output: Any, metadata: Any) -> dict[str, Any]:
    return {"id": item_id, "externalId": external_id, "input": input_, "expectedOutput": expected_output,
            "metadata": metadata}


def replayed_items(dataset: Dataset) -> dict[str, dict[str, Any]]:
    return {
        item_id: wire(item_id, item.external_id, item.content.input, item.content.expected_output,
                      item.content.metadata)
        for item_id, item in dataset.items.items()
    }


def listed_items(http: httpx.Client, dataset_id: str, version: int) -> dict[str, dict[str, Any]]:
    """Every item the read model lists at `version`, following the pages to the end."""
    found: dict[str, dict[str, Any]] = {}
    for listing in every_page(http, f"/api/datasets/{dataset_id}/items", PER_PAGE, version=version):
        assert listing["version"] == version
        for item in listing["items"]:
            assert item["id"] not in found, f"item {item['id']} listed twice at version {version}"
            found[item["id"]] = wire(item["id"], item["externalId"], item["input"], item["expectedOutput"],
                                     item["metadata"])
    assert listing["pagination"]["total"] == len(found)
    return found


def aggregate_versions_from_events(service: Service, dataset_id: str) -> dict[int, int]:
    """Dataset version -> the aggregate version (event count) of the last event that made it.
    Detail changes after it do not touch items, so any later aggregate version up to the
    next item change replays to the same items."""
    cut: dict[int, int] = {}
    for event in service.ledger.datasets.events.get(UUID(dataset_id)):
        if isinstance(event, Dataset.Created):
            cut[0] = event.originator_version
        elif hasattr(event, "dataset_version"):
            cut[event.dataset_version] = event.originator_version
    return cut


def aggregate_versions_from_read_model(service: Service, dataset_id: str) -> dict[int, int]:
    params = database.parse_database_url(service.settings.database_url or "")
    with psycopg.connect(params.conninfo) as conn:
        rows = conn.execute(
            SQL("SELECT version, aggregate_version FROM {}.{} WHERE dataset_id = %s").format(
                Identifier(service.settings.schema), Identifier("dataset_versions")),
            (dataset_id,),
        ).fetchall()
    return dict(rows)


def all_versions(http: httpx.Client, dataset_id: str) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = []
    page = 0
    while True:
        listing = expect(http.get(f"/api/datasets/{dataset_id}/versions",
                                  params={"page": page, "perPage": 10}), 200)
        versions += listing["versions"]
        if not listing["pagination"]["hasMore"]:
            return versions
        page += 1


# -- the acceptance ------------------------------------------------------------------------


def test_every_version_of_a_random_history_lists_what_the_replayed_aggregate_holds(service: Service) -> None:
    rng = random.Random(SEED)
    http = service.client.http
    datasets = [
        Tracked(id=expect(http.post("/api/datasets", json={"name": f"replay-{n}"}), 201)["id"])
        for n in range(3)
    ]

    ran = run_random_history(http, rng, datasets)
    # The seed gives a history that exercises every kind of command more than once.
    assert all(count >= 2 for count in ran.values()), ran

    compared_versions = compared_items = sampled_gets = 0
    for tracked in datasets:
        dataset_id = tracked.id
        current = expect(http.get(f"/api/datasets/{dataset_id}"), 200)
        assert current["version"] == tracked.version
        assert current["itemCount"] == len(tracked.live)

        cut = aggregate_versions_from_events(service, dataset_id)
        assert sorted(cut) == list(range(tracked.version + 1)), "dataset versions are 0..current without gaps"
        # The read model records the same cut for each version.
        assert aggregate_versions_from_read_model(service, dataset_id) == cut

        versions = {v["version"]: v for v in all_versions(http, dataset_id)}
        assert sorted(versions) == list(range(tracked.version + 1))

        ever_seen: set[str] = set()
        for version in range(tracked.version + 1):
            replayed = replayed_items(service.ledger.datasets.get_dataset(UUID(dataset_id),
                                                                          aggregate_version=cut[version]))
            listed = listed_items(http, dataset_id, version)
            assert set(listed) == set(replayed), (
                f"dataset {dataset_id} version {version}: listed but not replayed "
                f"{sorted(set(listed) - set(replayed))}, replayed but not listed {sorted(set(replayed) - set(listed))}"
            )
            for item_id, expected in replayed.items():
                assert listed[item_id] == expected, f"dataset {dataset_id} version {version} item {item_id}"
            assert versions[version]["itemCount"] == len(replayed), f"item count of version {version}"
            compared_versions += 1
            compared_items += len(replayed)

            # One item at a time, as of this version: a sample of present ones ...
            for item_id in rng.sample(sorted(replayed), k=min(3, len(replayed))):
                item = expect(http.get(f"/api/datasets/{dataset_id}/items/{item_id}",
                                       params={"version": version}), 200)
                assert wire(item["id"], item["externalId"], item["input"], item["expectedOutput"],
                            item["metadata"]) == replayed[item_id]
                assert item["validFrom"] <= version and (item["validTo"] is None or item["validTo"] > version)
                sampled_gets += 1
            # ... and ones that existed at another version but not at this one are not found.
            for item_id in sorted(ever_seen - set(replayed))[:2]:
                response = http.get(f"/api/datasets/{dataset_id}/items/{item_id}", params={"version": version})
                assert response.status_code == 404, (version, item_id, response.text)
            ever_seen |= set(replayed)

        # Replaying with no version gives the current state, which is the current listing.
        latest = replayed_items(service.ledger.datasets.get_dataset(UUID(dataset_id)))
        assert latest == listed_items(http, dataset_id, tracked.version)
        assert set(latest) == set(tracked.live)

    assert compared_versions >= COMMANDS * 0.8
    assert compared_items > 100 and sampled_gets > 30
