"""A dataset's JSON Schemas guard its items: violations are refused with the failing
fields named, and a schema change that current items would break is refused too."""

from __future__ import annotations

from conftest import Service

QUESTION = {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}
ANSWER = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def test_items_that_break_the_schemas_are_refused_with_their_fields(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("schemas", input_schema=QUESTION, expected_output_schema=ANSWER)
    ok = client.add_item(dataset.id, input={"question": "q"}, expected_output={"answer": "a"})
    client.add_item(dataset.id, input={"question": "no expected output"})  # null is not checked

    response = client.http.post(f"/api/datasets/{dataset.id}/items/batch", json={"items": [
        {"input": {"question": "fine"}},
        {"input": {"question": 7}, "expectedOutput": {"answer": 1}},
    ]})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"items/1/input/question", "items/1/expectedOutput/answer"}

    response = client.http.patch(f"/api/datasets/{dataset.id}/items/{ok.item.id}", json={"input": {"q": 1}})
    assert response.status_code == 422 and response.json()["type"].endswith("schema-violation")
    assert client.get_dataset(dataset.id).version == 2 and client.get_dataset(dataset.id).item_count == 2


def test_an_invalid_schema_is_refused(service: Service) -> None:
    response = service.client.http.post("/api/datasets", json={"name": "bad", "inputSchema": {"type": "nonsense"}})
    assert response.status_code == 422 and response.json()["type"].endswith("invalid-schema")
    assert service.client.list_datasets().pagination.total == 0


def test_a_schema_change_current_items_would_break_is_refused_naming_ten(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("tightening")
    client.add_items(dataset.id, [{"input": {"question": i}} for i in range(12)])
    response = client.http.patch(f"/api/datasets/{dataset.id}", json={"inputSchema": QUESTION})
    assert response.status_code == 422
    assert len(response.json()["failingItems"]) == 10
    assert client.get_dataset(dataset.id).input_schema is None

    loose = {"type": "object", "required": ["question"]}
    accepted = client.update_dataset(dataset.id, input_schema=loose)
    assert accepted.input_schema == loose and accepted.version == 1
    refused = client.http.post(f"/api/datasets/{dataset.id}/items", json={"input": {"other": 1}})
    assert refused.status_code == 422
