"""The read model and the event log agree: for every dataset and every version, the items
listed equal the items of the aggregate replayed to that version."""

from __future__ import annotations

import random
from typing import Any
from uuid import UUID

from conftest import Service

from evalledger import Client


def random_history(client: Client, rng: random.Random, dataset_ids: list[UUID], steps: int) -> None:
    live: dict[UUID, list[str]] = {d: [] for d in dataset_ids}
    counter = 0
    for _ in range(steps):
        dataset_id = rng.choice(dataset_ids)
        items = live[dataset_id]
        action = rng.choice(["add", "batch", "update", "update", "delete", "batch-delete", "details"])
        counter += 1
        if action == "add" or (not items and action != "details"):
            written = client.add_item(dataset_id, input={"n": counter}, expected_output=rng.choice([None, counter]),
                                      metadata={"tag": rng.choice("abc")},
                                      external_id=f"ext-{counter}" if rng.random() < 0.3 else None)
            items.append(str(written.item.id))
        elif action == "batch":
            written_batch = client.add_items(dataset_id, [{"input": [counter, j]} for j in range(rng.randint(2, 6))])
            items += [str(i.id) for i in written_batch.items]
        elif action == "update":
            changes: dict[str, Any] = rng.choice([
                {"input": {"n": counter, "edited": True}},
                {"expected_output": {"answer": counter}},
                {"metadata": {"tag": "edited"}},
                {"external_id": f"renamed-{counter}"},
                {"input": "both", "expected_output": None},
            ])
            client.update_item(dataset_id, rng.choice(items), **changes)
        elif action == "delete":
            client.delete_item(dataset_id, items.pop(rng.randrange(len(items))))
        elif action == "batch-delete":
            doomed = rng.sample(items, k=min(len(items), rng.randint(1, 3)))
            client.delete_items(dataset_id, doomed)
            for item_id in doomed:
                items.remove(item_id)
        else:
            client.update_dataset(dataset_id, name=f"renamed {counter}", metadata={"step": counter})


def listed_at(client: Client, dataset_id: UUID, version: int) -> dict[str, tuple[Any, ...]]:
    return {
        str(item.id): (item.input, item.expected_output, item.metadata, item.external_id)
        for item in client.iter_items(dataset_id, version=version, per_page=7)
    }


def test_every_version_of_a_random_history_reads_back_as_the_replayed_aggregate(service: Service) -> None:
    client = service.client
    rng = random.Random(20261124)
    dataset_ids = [client.create_dataset(f"random {k}").id for k in range(3)]
    random_history(client, rng, dataset_ids, steps=70)
    assert sum(client.get_dataset(d).version for d in dataset_ids) >= 50  # the walk below is long

    for dataset_id in dataset_ids:
        # Which aggregate version cut each dataset version, from the events themselves.
        cut = {0: 1}
        for event in service.ledger.datasets.events.get(dataset_id):
            if hasattr(event, "dataset_version"):
                cut[event.dataset_version] = event.originator_version
        current = client.get_dataset(dataset_id).version
        assert sorted(cut) == list(range(current + 1))
        versions = {v.version: v for v in client.list_versions(dataset_id, per_page=1000).versions}
        for version in range(current + 1):
            replayed = service.ledger.datasets.get_dataset(dataset_id, aggregate_version=cut[version])
            expected = {
                item_id: (item.content.input, item.content.expected_output, item.content.metadata, item.external_id)
                for item_id, item in replayed.items.items()
            }
            assert listed_at(client, dataset_id, version) == expected, (dataset_id, version)
            assert versions[version].item_count == len(expected)
            for item_id in list(expected)[:3]:
                fetched = client.get_item(dataset_id, item_id, version=version)
                assert (fetched.input, fetched.expected_output) == expected[item_id][:2]
