"""Every bad input is refused with a clear 4xx problem (RFC 9457, `application/problem+json`
with `type`, `title`, `status` and `detail`) and changes nothing: the dataset's version, its
item count and its event stream are exactly what they were. No bad input ever gets a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from conftest import Service, drop_schema, fresh_settings, running_service

from evalledger import Client

JSON = {"content-type": "application/json"}


def assert_problem(response: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """The response is a problem+json with the given status (and problem type, if named)."""
    assert response.status_code < 500, f"a server error for bad input: {response.status_code} {response.text}"
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, f"problem without {key!r}: {body}"
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    if kind is not None:
        assert body["type"].endswith("/" + kind), body
    return body


def assert_refused(response: httpx.Response, allowed: tuple[int, ...]) -> dict[str, Any]:
    """A problem+json with one of the `allowed` 4xx statuses."""
    assert response.status_code < 500, f"a server error for bad input: {response.status_code} {response.text}"
    assert response.status_code in allowed, f"expected one of {allowed}, got {response.status_code}: {response.text}"
    return assert_problem(response, response.status_code)


def error_fields(problem: dict[str, Any]) -> set[str]:
    return {error["field"] for error in problem.get("errors") or []}


def snapshot(client: Client, dataset_id: UUID) -> tuple[int, int, int, list[tuple[UUID, Any]]]:
    """What a refused request must leave alone: version, item count, event count, items."""
    dataset = client.get_dataset(dataset_id)
    events = client.list_events(dataset_id).pagination.total
    items = [(item.id, item.input) for item in client.iter_items(dataset_id)]
    return dataset.version, dataset.item_count, events, items


def stored_event_count(service: Service, dataset_id: UUID) -> int:
    """Events in the store itself (also for a deleted dataset, which the API no longer shows)."""
    return len(list(service.ledger.datasets.events.get(dataset_id)))


@pytest.fixture
def seeded(service: Service) -> tuple[Client, UUID, UUID]:
    """A dataset at version 2 with two items, one of them with externalId `taken`."""
    client = service.client
    dataset = client.create_dataset("refusals")
    first = client.add_item(dataset.id, input={"q": "first"}, external_id="taken").item
    client.add_item(dataset.id, input={"q": "second"}, external_id="other")
    return client, dataset.id, first.id


# -- bodies that are not JSON, or not the JSON the route takes -----------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"input": ', b'{"input": 1,}', b"{input: 1}", b"{'input': 1}", b'{"input": 1} trailing', b"\xff\xfe"],
    ids=["truncated", "trailing-comma", "bare-key", "single-quotes", "trailing-garbage", "not-utf8"],
)
def test_a_malformed_json_body_is_a_400_and_changes_nothing(seeded: tuple[Client, UUID, UUID],
                                                             body: bytes) -> None:
    client, dataset_id, item_id = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"
    assert_problem(client.http.post(url, content=body, headers=JSON), 400)
    assert_problem(client.http.post(url + "/batch", content=body, headers=JSON), 400)
    assert_problem(client.http.patch(f"{url}/{item_id}", content=body, headers=JSON), 400)
    assert_problem(client.http.request("DELETE", url + "/batch", content=body, headers=JSON), 400)
    assert_problem(client.http.patch(f"/api/datasets/{dataset_id}", content=body, headers=JSON), 400)
    assert_problem(client.http.post("/api/datasets", content=body, headers=JSON), 400)
    assert snapshot(client, dataset_id) == before
    assert client.list_datasets().pagination.total == 1


def test_a_truncated_body_says_it_is_malformed_json(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, _ = seeded
    problem = assert_problem(
        client.http.post(f"/api/datasets/{dataset_id}/items", content=b'{"input": ', headers=JSON), 400,
        "malformed-json",
    )
    assert "JSON" in problem["detail"]


def test_a_missing_input_is_a_422_naming_the_field(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, _ = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"

    alone = assert_problem(client.http.post(url, json={"expectedOutput": "a"}), 422, "validation-error")
    assert "body/input" in error_fields(alone)
    in_batch = assert_problem(client.http.post(url + "/batch", json={"items": [{"input": 1}, {"metadata": {}}]}),
                              422, "validation-error")
    assert "body/items/1/input" in error_fields(in_batch)
    assert snapshot(client, dataset_id) == before


def test_a_null_input_is_a_422_on_add_batch_and_patch(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, item_id = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"

    assert "body/input" in error_fields(assert_problem(client.http.post(url, json={"input": None}), 422))
    batch = assert_problem(client.http.post(url + "/batch", json={"items": [{"input": 1}, {"input": None}]}), 422)
    assert "body/items/1/input" in error_fields(batch)
    patched = assert_problem(client.http.patch(f"{url}/{item_id}", json={"input": None}), 422)
    assert "body/input" in error_fields(patched)
    assert_problem(client.http.patch(f"{url}/{item_id}", json={"metadata": None}), 422)
    assert snapshot(client, dataset_id) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": 1, "metadata": [1, 2]}, "body/metadata"),
        ({"input": 1, "metadata": "split=test"}, "body/metadata"),
        ({"input": 1, "metadata": 7}, "body/metadata"),
        ({"input": 1, "metadata": None}, "body/metadata"),
        ({"input": 1, "externalId": 5}, "body/externalId"),
        ({"input": 1, "externalId": ["a"]}, "body/externalId"),
        ({"input": 1, "externalId": ""}, "body/externalId"),
        ({"input": 1, "externalId": "x" * 257}, "body/externalId"),
    ],
    ids=["metadata-list", "metadata-string", "metadata-number", "metadata-null", "externalId-number",
         "externalId-list", "externalId-empty", "externalId-too-long"],
)
def test_wrong_types_in_an_item_are_a_422_naming_the_field(seeded: tuple[Client, UUID, UUID],
                                                           body: dict[str, Any], field: str) -> None:
    client, dataset_id, item_id = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"
    assert field in error_fields(assert_problem(client.http.post(url, json=body), 422, "validation-error"))
    batch = assert_problem(client.http.post(url + "/batch", json={"items": [{"input": 0}, body]}), 422)
    assert field.replace("body/", "body/items/1/") in error_fields(batch)
    patch = {key: value for key, value in body.items() if key != "input"}
    assert field in error_fields(assert_problem(client.http.patch(f"{url}/{item_id}", json=patch), 422))
    assert snapshot(client, dataset_id) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "body/name"),
        ({"name": 123}, "body/name"),
        ({"name": None}, "body/name"),
        ({"name": "x" * 201}, "body/name"),
        ({}, "body/name"),
        ({"name": "ok", "metadata": [1]}, "body/metadata"),
        ({"name": "ok", "description": 5}, "body/description"),
        ({"name": "ok", "inputSchema": "not an object"}, "body/inputSchema"),
    ],
    ids=["name-empty", "name-number", "name-null", "name-too-long", "name-missing", "metadata-list",
         "description-number", "schema-string"],
)
def test_wrong_types_in_a_dataset_are_a_422_naming_the_field(seeded: tuple[Client, UUID, UUID],
                                                             body: dict[str, Any], field: str) -> None:
    client, dataset_id, _ = seeded
    before = snapshot(client, dataset_id)
    assert field in error_fields(assert_problem(client.http.post("/api/datasets", json=body), 422))
    assert field in error_fields(assert_problem(client.http.put(f"/api/datasets/{dataset_id}", json=body), 422))
    if body:
        patched = assert_problem(client.http.patch(f"/api/datasets/{dataset_id}", json=body), 422)
        assert field in error_fields(patched)
    assert client.list_datasets().pagination.total == 1
    assert client.get_dataset(dataset_id).name == "refusals"
    assert snapshot(client, dataset_id) == before


def test_a_body_that_is_not_an_object_is_a_422(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, _ = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"
    for body in ([{"input": 1}], "input", 1, None):
        assert_problem(client.http.post(url, json=body), 422)
    assert_problem(client.http.post(url), 422)  # no body at all
    assert_problem(client.http.post(url + "/batch", json={"items": {"input": 1}}), 422)
    assert_problem(client.http.post(url + "/batch", json={"items": []}), 422)
    assert_problem(client.http.request("DELETE", url + "/batch", json={"itemIds": []}), 422)
    assert_problem(client.http.request("DELETE", url + "/batch", json={"itemIds": ["not-a-uuid"]}), 422)
    assert snapshot(client, dataset_id) == before


def test_unknown_fields_are_a_422_naming_them(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, item_id = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"
    cases = [
        (client.http.post(url, json={"input": 1, "surprise": True}), "body/surprise"),
        (client.http.post(url + "/batch", json={"items": [{"input": 1, "extra": 1}]}), "body/items/0/extra"),
        (client.http.post(url + "/batch", json={"items": [{"input": 1}], "version": 3}), "body/version"),
        (client.http.patch(f"{url}/{item_id}", json={"input": 2, "id": str(uuid4())}), "body/id"),
        (client.http.request("DELETE", url + "/batch", json={"itemIds": [str(item_id)], "all": True}), "body/all"),
        (client.http.patch(f"/api/datasets/{dataset_id}", json={"owner": "qa"}), "body/owner"),
        (client.http.put(f"/api/datasets/{dataset_id}", json={"name": "n", "version": 9}), "body/version"),
        (client.http.post("/api/datasets", json={"name": "n", "items": []}), "body/items"),
    ]
    for response, field in cases:
        problem = assert_problem(response, 422, "validation-error")
        assert field in error_fields(problem), problem
    assert snapshot(client, dataset_id) == before
    assert client.list_datasets().pagination.total == 1


def test_bad_headers_are_refused(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, _ = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"
    assert_problem(client.http.post(url, json={"input": 1}, headers={"X-Actor": "a" * 201}), 400)
    assert_problem(client.http.post(url, json={"input": 1}, headers={"X-Change-Reason": "r" * 2001}), 400)
    assert snapshot(client, dataset_id) == before


# -- things that do not exist -------------------------------------------------------------


def test_an_unknown_dataset_is_a_404_everywhere_and_nothing_is_created(service: Service) -> None:
    client = service.client
    http = client.http
    existing = client.create_dataset("existing")
    client.add_item(existing.id, input=1)
    before = snapshot(client, existing.id)
    unknown = uuid4()
    base = f"/api/datasets/{unknown}"
    item = uuid4()
    responses = [
        http.get(base),
        http.put(base, json={"name": "n"}),
        http.patch(base, json={"name": "n"}),
        http.delete(base),
        http.get(base + "/items"),
        http.post(base + "/items", json={"input": 1}),
        http.post(base + "/items/batch", json={"items": [{"input": 1}]}),
        http.request("DELETE", base + "/items/batch", json={"itemIds": [str(item)]}),
        http.get(f"{base}/items/{item}"),
        http.patch(f"{base}/items/{item}", json={"input": 1}),
        http.delete(f"{base}/items/{item}"),
        http.get(f"{base}/items/{item}/history"),
        http.get(base + "/versions"),
        http.get(base + "/diff", params={"from": 0, "to": 0}),
        http.get(base + "/events"),
    ]
    for response in responses:
        assert_problem(response, 404)
    assert_problem(http.post(base + "/items", json={"input": 1}), 404, "dataset-not-found")
    assert client.list_datasets().pagination.total == 1
    assert snapshot(client, existing.id) == before


def test_an_unknown_item_is_a_404_on_get_patch_delete_and_history(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, _ = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items/{uuid4()}"
    assert_problem(client.http.get(url), 404, "item-not-found")
    assert_problem(client.http.get(url, params={"version": 1}), 404, "item-not-found")
    assert_problem(client.http.patch(url, json={"input": 3}), 404, "item-not-found")
    assert_problem(client.http.patch(url, json={}), 404)
    assert_problem(client.http.delete(url), 404, "item-not-found")
    assert_problem(client.http.get(url + "/history"), 404, "item-not-found")
    assert snapshot(client, dataset_id) == before


def test_an_item_of_another_dataset_is_not_found_here(service: Service) -> None:
    client = service.client
    mine = client.create_dataset("mine")
    client.add_item(mine.id, input=1)
    theirs = client.create_dataset("theirs")
    their_item = client.add_item(theirs.id, input="theirs").item
    before_mine, before_theirs = snapshot(client, mine.id), snapshot(client, theirs.id)
    url = f"/api/datasets/{mine.id}/items/{their_item.id}"
    assert_problem(client.http.get(url), 404)
    assert_problem(client.http.patch(url, json={"input": "stolen"}), 404)
    assert_problem(client.http.delete(url), 404)
    assert_problem(client.http.request("DELETE", f"/api/datasets/{mine.id}/items/batch",
                                       json={"itemIds": [str(their_item.id)]}), 404)
    assert snapshot(client, mine.id) == before_mine
    assert snapshot(client, theirs.id) == before_theirs


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1234", "7b1e3c1a-0000-4000-8000-00000000000", "%20"])
def test_a_malformed_uuid_in_the_path_is_a_404(seeded: tuple[Client, UUID, UUID], bad_id: str) -> None:
    client, dataset_id, item_id = seeded
    before = snapshot(client, dataset_id)
    http = client.http
    for response in (
        http.get(f"/api/datasets/{bad_id}"),
        http.patch(f"/api/datasets/{bad_id}", json={"name": "n"}),
        http.delete(f"/api/datasets/{bad_id}"),
        http.get(f"/api/datasets/{bad_id}/items"),
        http.post(f"/api/datasets/{bad_id}/items", json={"input": 1}),
        http.get(f"/api/datasets/{bad_id}/versions"),
        http.get(f"/api/datasets/{bad_id}/events"),
        http.get(f"/api/datasets/{dataset_id}/items/{bad_id}"),
        http.patch(f"/api/datasets/{dataset_id}/items/{bad_id}", json={"input": 1}),
        http.delete(f"/api/datasets/{dataset_id}/items/{bad_id}"),
        http.get(f"/api/datasets/{dataset_id}/items/{bad_id}/history"),
    ):
        assert_problem(response, 404)
    assert snapshot(client, dataset_id) == before
    assert client.get_item(dataset_id, item_id).input == {"q": "first"}


def test_a_version_beyond_the_current_one_is_a_404_and_a_negative_one_a_400(
    seeded: tuple[Client, UUID, UUID],
) -> None:
    client, dataset_id, item_id = seeded  # at version 2
    url = f"/api/datasets/{dataset_id}/items"
    for version in (3, 1_000_000, 10**30):
        problem = assert_problem(client.http.get(url, params={"version": version}), 404, "version-not-found")
        assert "version" in problem["detail"]
        assert_problem(client.http.get(f"{url}/{item_id}", params={"version": version}), 404)
        assert_problem(client.http.get(f"/api/datasets/{dataset_id}/diff", params={"from": 0, "to": version}), 404)
    for version in (-1, -100):
        assert_problem(client.http.get(url, params={"version": version}), 400, "invalid-parameter")
        assert_problem(client.http.get(f"{url}/{item_id}", params={"version": version}), 400)
    assert_problem(client.http.get(url, params={"version": "two"}), 400)
    assert client.list_items(dataset_id, version=2).pagination.total == 2  # the last real one still reads


def test_per_page_zero_or_over_the_max_and_negative_pages_are_a_400(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, _ = seeded
    max_per_page = 1000  # Settings' default, which the `service` fixture keeps
    for path in (f"/api/datasets/{dataset_id}/items", f"/api/datasets/{dataset_id}/versions",
                 f"/api/datasets/{dataset_id}/events", "/api/datasets"):
        for params in ({"perPage": 0}, {"perPage": -1}, {"perPage": max_per_page + 1}, {"perPage": "ten"},
                       {"page": -1}, {"page": "first"}):
            problem = assert_problem(client.http.get(path, params=params), 400, "invalid-parameter")
            assert problem["errors"], problem
        assert client.http.get(path, params={"perPage": max_per_page}).status_code == 200
    zero = assert_problem(client.http.get(f"/api/datasets/{dataset_id}/items", params={"perPage": 0}), 400)
    assert "query/perPage" in error_fields(zero)


# -- conflicts ------------------------------------------------------------------------------


def test_an_external_id_already_used_is_a_409_on_add_batch_and_patch(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, item_id = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"

    alone = assert_problem(client.http.post(url, json={"input": 3, "externalId": "taken"}), 409, "external-id-taken")
    assert "taken" in alone["detail"]
    batch = assert_problem(
        client.http.post(url + "/batch", json={"items": [{"input": 3, "externalId": "fresh"},
                                                         {"input": 4, "externalId": "taken"}]}),
        409, "external-id-taken",
    )
    assert "body/items/1/externalId" in error_fields(batch) or "items/1/externalId" in error_fields(batch)
    second = client.list_items(dataset_id).items[1]
    assert_problem(client.http.patch(f"{url}/{second.id}", json={"externalId": "taken"}), 409, "external-id-taken")
    assert snapshot(client, dataset_id) == before
    # "fresh" was not half-claimed by the refused batch
    assert client.add_item(dataset_id, input=5, external_id="fresh").version == before[0] + 1
    # and an item may keep its own externalId
    assert client.update_item(dataset_id, item_id, external_id="taken").changed is False


def test_a_batch_that_repeats_an_external_id_is_a_409_and_writes_nothing(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, _ = seeded
    before = snapshot(client, dataset_id)
    problem = assert_problem(
        client.http.post(f"/api/datasets/{dataset_id}/items/batch", json={"items": [
            {"input": 1, "externalId": "x"}, {"input": 2, "externalId": "y"}, {"input": 3, "externalId": "x"},
        ]}),
        409, "external-id-taken",
    )
    assert "x" in problem["detail"]
    assert snapshot(client, dataset_id) == before
    assert client.add_items(dataset_id, [{"input": 1, "externalId": "x"}]).count == 1  # x was never taken


def test_a_batch_delete_naming_an_unknown_item_is_a_404_and_deletes_nothing(
    seeded: tuple[Client, UUID, UUID],
) -> None:
    client, dataset_id, item_id = seeded
    before = snapshot(client, dataset_id)
    unknown = uuid4()
    problem = assert_problem(
        client.http.request("DELETE", f"/api/datasets/{dataset_id}/items/batch",
                            json={"itemIds": [str(item_id), str(unknown)]}),
        404, "item-not-found",
    )
    assert str(unknown) in problem["detail"]
    assert snapshot(client, dataset_id) == before
    assert client.get_item(dataset_id, item_id).input == {"q": "first"}


def test_patch_or_delete_of_a_deleted_item_is_a_404(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, item_id = seeded
    client.delete_item(dataset_id, item_id)
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items/{item_id}"
    assert_problem(client.http.patch(url, json={"input": "revived"}), 404, "item-not-found")
    assert_problem(client.http.delete(url), 404, "item-not-found")
    assert_problem(client.http.get(url), 404, "item-not-found")
    assert_problem(client.http.request("DELETE", f"/api/datasets/{dataset_id}/items/batch",
                                       json={"itemIds": [str(item_id)]}), 404)
    assert snapshot(client, dataset_id) == before
    # its past is still there
    assert client.get_item(dataset_id, item_id, version=1).input == {"q": "first"}


def test_writes_to_a_deleted_dataset_are_a_404_and_record_nothing(service: Service) -> None:
    client = service.client
    http = client.http
    dataset = client.create_dataset("doomed")
    item = client.add_item(dataset.id, input=1).item
    client.delete_dataset(dataset.id)
    events = stored_event_count(service, dataset.id)
    base = f"/api/datasets/{dataset.id}"
    for response in (
        http.post(base + "/items", json={"input": 2}),
        http.post(base + "/items/batch", json={"items": [{"input": 2}]}),
        http.patch(f"{base}/items/{item.id}", json={"input": 2}),
        http.delete(f"{base}/items/{item.id}"),
        http.request("DELETE", base + "/items/batch", json={"itemIds": [str(item.id)]}),
        http.patch(base, json={"name": "back"}),
        http.put(base, json={"name": "back"}),
        http.delete(base),
    ):
        assert_problem(response, 404)
    assert_problem(http.post(base + "/items", json={"input": 2}), 404, "dataset-not-found")
    for response in (http.get(base), http.get(base + "/items"), http.get(f"{base}/items/{item.id}"),
                     http.get(base + "/versions")):
        assert_problem(response, 404)
    assert stored_event_count(service, dataset.id) == events
    assert client.list_datasets().pagination.total == 0


# -- limits ---------------------------------------------------------------------------------

BODY_LIMIT = 4096
BATCH_LIMIT = 5


@pytest.fixture
def limited(database_url: str) -> Iterator[Service]:
    """The service with a small body limit and a small batch limit."""
    settings = fresh_settings(database_url, max_body_bytes=BODY_LIMIT, max_batch_items=BATCH_LIMIT)
    try:
        with running_service(settings) as running:
            yield running
    finally:
        drop_schema(database_url, settings.schema)


def body_of_exactly(size: int) -> bytes:
    head, tail = b'{"input": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_a_body_over_the_limit_is_a_413_and_changes_nothing(limited: Service) -> None:
    client = limited.client
    dataset = client.create_dataset("limits")
    item = client.add_item(dataset.id, input="small").item
    before = snapshot(client, dataset.id)
    url = f"/api/datasets/{dataset.id}/items"

    assert len(body_of_exactly(BODY_LIMIT + 1)) == BODY_LIMIT + 1
    problem = assert_problem(client.http.post(url, content=body_of_exactly(BODY_LIMIT + 1), headers=JSON), 413,
                             "body-too-large")
    assert str(BODY_LIMIT) in problem["detail"]
    assert_problem(client.http.post(url, json={"input": "y" * 100_000}), 413, "body-too-large")
    assert_problem(client.http.post(url + "/batch", json={"items": [{"input": "z" * 1000}] * 5}), 413)
    assert_problem(client.http.patch(f"{url}/{item.id}", json={"input": "p" * 5000}), 413)
    assert_problem(client.http.post("/api/datasets", json={"name": "n", "description": "d" * 5000}), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield b'{"input": "'
        for _ in range(20):
            yield b"s" * 500
        yield b'"}'

    assert_problem(client.http.post(url, content=chunks(), headers=JSON), 413, "body-too-large")
    assert snapshot(client, dataset.id) == before
    assert client.list_datasets().pagination.total == 1


def test_a_body_of_exactly_the_limit_is_accepted(limited: Service) -> None:
    client = limited.client
    dataset = client.create_dataset("edge")
    response = client.http.post(f"/api/datasets/{dataset.id}/items", content=body_of_exactly(BODY_LIMIT),
                                headers=JSON)
    assert response.status_code == 201, response.text
    assert client.get_dataset(dataset.id).item_count == 1


def test_a_batch_over_the_max_batch_size_is_a_422_and_writes_nothing(limited: Service) -> None:
    client = limited.client
    dataset = client.create_dataset("batch-limit")
    added = client.add_items(dataset.id, [{"input": i} for i in range(BATCH_LIMIT)])  # exactly the max is fine
    assert added.count == BATCH_LIMIT
    before = snapshot(client, dataset.id)
    url = f"/api/datasets/{dataset.id}/items/batch"

    problem = assert_problem(client.http.post(url, json={"items": [{"input": i} for i in range(BATCH_LIMIT + 1)]}),
                             422)
    assert str(BATCH_LIMIT) in problem["detail"]
    ids = [str(item.id) for item in added.items] + [str(uuid4())]
    assert_problem(client.http.request("DELETE", url, json={"itemIds": ids}), 422)
    assert snapshot(client, dataset.id) == before


# -- JSON the store cannot hold ------------------------------------------------------------


def assert_still_serving(client: Client, dataset_id: UUID) -> None:
    """After a refused request, the next good write is acknowledged and readable."""
    written = client.add_item(dataset_id, input={"after": "refusal"})
    assert client.get_item(dataset_id, written.item.id).input == {"after": "refusal"}
    assert client.get_dataset(dataset_id).version == written.version


@pytest.mark.parametrize(
    "body",
    [b'{"input": NaN}', b'{"input": {"x": Infinity}}', b'{"input": 1, "expectedOutput": -Infinity}',
     b'{"input": 1, "metadata": {"score": NaN}}'],
    ids=["input-nan", "input-infinity", "expected-minus-infinity", "metadata-nan"],
)
def test_nan_and_infinity_are_not_json_and_are_refused(seeded: tuple[Client, UUID, UUID], body: bytes) -> None:
    """RFC 8259 has no NaN or Infinity; accepting them silently stores `null` instead."""
    client, dataset_id, _ = seeded
    before = snapshot(client, dataset_id)
    assert_problem(client.http.post(f"/api/datasets/{dataset_id}/items", content=body, headers=JSON), 400)
    assert snapshot(client, dataset_id) == before


@pytest.mark.parametrize(
    "body",
    [
        b'{"input": 123456789012345678901234567890}',
        b'{"input": ' + b"[" * 300 + b"]" * 300 + b"}",
        b'{"input": "\\ud800"}',
        b'{"input": 1, "metadata": {"\\udfff": 1}}',
    ],
    ids=["integer-beyond-64-bits", "nested-300-deep", "lone-surrogate", "lone-surrogate-key"],
)
def test_json_values_the_store_cannot_encode_are_a_4xx_not_a_500(seeded: tuple[Client, UUID, UUID],
                                                                 body: bytes) -> None:
    client, dataset_id, item_id = seeded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"
    assert_refused(client.http.post(url, content=body, headers=JSON), (400, 422))
    assert_refused(client.http.patch(f"{url}/{item_id}", content=body, headers=JSON), (400, 422))
    assert_refused(client.http.post(url + "/batch", content=b'{"items": [' + body + b"]}", headers=JSON),
                   (400, 422))
    assert snapshot(client, dataset_id) == before
    assert_still_serving(client, dataset_id)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("items", {"input": "a\u0000b"}),
        ("items", {"input": {"q\u0000": 1}}),
        ("items", {"input": 1, "expectedOutput": "\u0000"}),
        ("items", {"input": 1, "externalId": "ext\u0000"}),
        ("items", {"input": 1, "metadata": {"tag": "\u0000"}}),
        ("dataset", {"name": "nul\u0000name"}),
    ],
    ids=["input", "input-key", "expected-output", "external-id", "metadata", "dataset-name"],
)
def test_a_nul_character_is_refused_and_does_not_stop_the_read_side(service: Service, path: str,
                                                                     body: dict[str, Any]) -> None:
    """PostgreSQL text and jsonb cannot hold U+0000. Such a write must be refused before it is
    recorded: an event the projection cannot apply would stop every later read-your-writes."""
    client = service.client
    dataset = client.create_dataset("nul")
    client.add_item(dataset.id, input="before")
    before = snapshot(client, dataset.id)
    stored = stored_event_count(service, dataset.id)
    url = "/api/datasets" if path == "dataset" else f"/api/datasets/{dataset.id}/items"
    problem = assert_refused(client.http.post(url, json=body), (422,))
    assert problem.get("errors"), problem
    assert stored_event_count(service, dataset.id) == stored
    assert snapshot(client, dataset.id) == before
    assert client.list_datasets().pagination.total == 1
    assert_still_serving(client, dataset.id)
    other = client.create_dataset("another")  # and other datasets are not affected
    assert client.get_dataset(other.id).name == "another"


def test_a_search_term_with_a_nul_character_is_not_a_500(seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, _ = seeded
    response = client.http.get(f"/api/datasets/{dataset_id}/items", params={"search": "fi\u0000rst"})
    if response.status_code == 200:
        assert response.json()["pagination"]["total"] == 0  # nothing can contain it
    else:
        assert_refused(response, (400, 422))


def test_no_bad_input_here_left_the_service_unable_to_write(seeded: tuple[Client, UUID, UUID]) -> None:
    """A sweep of everything above on one dataset, then a good write: still served."""
    client, dataset_id, item_id = seeded
    url = f"/api/datasets/{dataset_id}/items"
    bad = [
        ("POST", url, b"{"),
        ("POST", url, b'{"input": null}'),
        ("POST", url, b'{"input": 1, "externalId": "taken"}'),
        ("POST", url + "/batch", b'{"items": [{"input": 1, "externalId": "a"}, {"input": 2, "externalId": "a"}]}'),
        ("PATCH", f"{url}/{uuid4()}", b'{"input": 1}'),
        ("PATCH", f"{url}/{item_id}", b'{"input": 1, "nope": 2}'),
        ("DELETE", url + "/batch", b'{"itemIds": ["' + str(uuid4()).encode() + b'"]}'),
    ]
    before = snapshot(client, dataset_id)
    for method, path, body in bad:
        response = client.http.request(method, path, content=body, headers=JSON)
        assert 400 <= response.status_code < 500, (method, path, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert snapshot(client, dataset_id) == before
    assert_still_serving(client, dataset_id)


def test_a_nul_character_in_any_query_parameter_is_a_400_in_the_api_and_the_ui(
        seeded: tuple[Client, UUID, UUID]) -> None:
    client, dataset_id, _ = seeded
    http = client.http
    for path, params in ((f"/api/datasets/{dataset_id}/runs", {"promptVersion": "v\x00"}),
                         (f"/api/datasets/{dataset_id}/items", {"search": "\x00"}),
                         (f"/api/datasets/{dataset_id}/runs", {"tag": ["ok", "\x00"]})):
        assert_problem(http.get(path, params=params), 400, "invalid-parameter")
    page = http.get(f"/datasets/{dataset_id}", params={"search": "a\x00"})
    assert page.status_code == 400 and "NUL" in page.text and page.headers["content-type"].startswith("text/html")
