"""Bad input gets a clear 4xx problem and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Service, running_service, with_settings

from evalledger import Client
from evalledger.settings import Settings


def state(client: Client, dataset_id: Any) -> tuple[int, int, int]:
    dataset = client.get_dataset(dataset_id)
    return dataset.version, dataset.item_count, client.list_events(dataset_id).pagination.total


def assert_problem(response: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if kind is not None:
        assert body["type"].endswith("/" + kind), body
    return body


def test_bad_writes_are_refused_and_change_nothing(service: Service) -> None:
    client = service.client
    http = client.http
    dataset = client.create_dataset("refusals")
    item = client.add_item(dataset.id, input={"q": 1}, external_id="one").item
    before = state(client, dataset.id)
    items_url = f"/api/datasets/{dataset.id}/items"

    assert_problem(http.post(items_url, content=b'{"input": ', headers={"content-type": "application/json"}),
                   400, "malformed-json")
    missing = assert_problem(http.post(items_url, json={"expectedOutput": 1}), 422, "validation-error")
    assert missing["errors"][0]["field"] == "body/input"
    assert_problem(http.post(items_url, json={"input": None}), 422)
    assert_problem(http.post(items_url, json={"input": 1, "metadata": [1]}), 422)
    assert_problem(http.post(items_url, json={"input": 1, "externalId": 5}), 422)
    assert_problem(http.post(items_url, json={"input": 1, "surprise": True}), 422)
    assert_problem(http.post("/api/datasets", json={"name": ""}), 422)
    assert_problem(http.post(items_url, json={"input": 2, "externalId": "one"}), 409, "external-id-taken")
    assert_problem(http.post(items_url + "/batch", json={"items": [{"input": 2, "externalId": "one"}]}), 409)
    assert_problem(http.post(items_url + "/batch", json={"items": [{"input": 2, "externalId": "x"},
                                                                   {"input": 3, "externalId": "x"}]}), 409)
    assert_problem(http.post(items_url + "/batch", json={"items": []}), 422)
    unknown = "7b1e3c1a-0000-4000-8000-000000000000"
    assert_problem(http.request("DELETE", items_url + "/batch", json={"itemIds": [str(item.id), unknown]}),
                   404, "item-not-found")
    assert_problem(http.patch(f"{items_url}/{unknown}", json={"input": 3}), 404)
    assert_problem(http.delete(f"{items_url}/{unknown}"), 404)
    assert_problem(http.patch(f"{items_url}/{item.id}", json={"input": None}), 422)
    assert state(client, dataset.id) == before

    assert_problem(http.post(f"/api/datasets/{unknown}/items", json={"input": 1}), 404, "dataset-not-found")
    assert_problem(http.get(f"/api/datasets/{unknown}"), 404)
    assert_problem(http.get("/api/datasets/not-a-uuid"), 404)
    assert_problem(http.get(f"{items_url}/not-a-uuid"), 404)


def test_bad_reads_are_refused(service: Service) -> None:
    client = service.client
    http = client.http
    dataset = client.create_dataset("reads")
    client.add_item(dataset.id, input=1)
    items_url = f"/api/datasets/{dataset.id}/items"
    assert_problem(http.get(items_url, params={"version": 2}), 404, "version-not-found")
    assert_problem(http.get(items_url, params={"version": -1}), 400, "invalid-parameter")
    assert_problem(http.get(items_url, params={"perPage": 0}), 400)
    assert_problem(http.get(items_url, params={"perPage": 100_000}), 400)
    assert_problem(http.get(items_url, params={"page": -1}), 400)
    assert_problem(http.get(items_url, params={"asOf": "yesterday"}), 400)
    assert_problem(http.get(items_url, params={"asOf": "2001-01-01T00:00:00Z"}), 404, "version-not-found")
    assert_problem(http.get(f"/api/datasets/{dataset.id}/diff", params={"from": 0, "to": 9}), 404)
    assert_problem(http.get("/api/nowhere"), 404)
    assert_problem(http.put(f"/api/datasets/{dataset.id}/versions"), 405)


def test_writes_to_deleted_things_are_not_found(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("gone")
    item = client.add_item(dataset.id, input=1).item
    client.delete_item(dataset.id, item.id)
    assert_problem(client.http.patch(f"/api/datasets/{dataset.id}/items/{item.id}", json={"input": 2}), 404)
    client.delete_dataset(dataset.id)
    assert_problem(client.http.post(f"/api/datasets/{dataset.id}/items", json={"input": 1}), 404)
    assert_problem(client.http.delete(f"/api/datasets/{dataset.id}"), 404)


@pytest.fixture
def small_limits(settings: Settings) -> Iterator[Client]:
    with running_service(with_settings(settings, max_body_bytes=2000, max_batch_items=3)) as running:
        yield running.client


def test_bodies_over_the_limit_are_refused(small_limits: Client) -> None:
    client = small_limits
    dataset = client.create_dataset("limits")
    big = {"input": "x" * 5000}
    assert_problem(client.http.post(f"/api/datasets/{dataset.id}/items", json=big), 413, "body-too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield b'{"input": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    assert_problem(client.http.post(f"/api/datasets/{dataset.id}/items", content=chunks(),
                                    headers={"content-type": "application/json"}), 413)
    assert_problem(client.http.post(f"/api/datasets/{dataset.id}/items/batch",
                                    json={"items": [{"input": i} for i in range(4)]}), 422)
    assert client.get_dataset(dataset.id).version == 0
