"""A dataset's JSON Schemas (`inputSchema`, `expectedOutputSchema`) guard its items: an item
that breaks them is refused with a 422 naming the failing fields, a batch with one bad item
writes nothing, an invalid schema is refused, and a schema change that current items would
break is refused naming (up to ten of) them. A null expectedOutput is never checked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from conftest import Service
from json_endpoint import QuietHandler, answer_json, serve, stop, url_of

from evalledger import Client

QUESTION = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "context": {"type": "string"}},
    "required": ["question"],
}
ANSWER = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def assert_problem(response: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    assert response.status_code < 500, f"a server error: {response.status_code} {response.text}"
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    if kind is not None:
        assert body["type"].endswith("/" + kind), body
    return body


def fields(problem: dict[str, Any]) -> set[str]:
    return {error["field"] for error in problem.get("errors") or []}


def snapshot(client: Client, dataset_id: UUID) -> tuple[int, int, int, Any, Any]:
    dataset = client.get_dataset(dataset_id)
    events = client.list_events(dataset_id).pagination.total
    return dataset.version, dataset.item_count, events, dataset.input_schema, dataset.expected_output_schema


@pytest.fixture
def guarded(service: Service) -> tuple[Client, UUID]:
    """A dataset with both schemas and one good item (version 1)."""
    client = service.client
    dataset = client.create_dataset("guarded", input_schema=QUESTION, expected_output_schema=ANSWER)
    assert dataset.input_schema == QUESTION and dataset.expected_output_schema == ANSWER
    client.add_item(dataset.id, input={"question": "ok?"}, expected_output={"answer": "yes"})
    return client, dataset.id


# -- items against the schemas ------------------------------------------------------------


def test_an_item_whose_input_breaks_the_schema_is_refused_naming_the_field(guarded: tuple[Client, UUID]) -> None:
    client, dataset_id = guarded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"

    wrong_type = assert_problem(client.http.post(url, json={"input": {"question": 7}}), 422, "schema-violation")
    assert fields(wrong_type) == {"items/0/input/question"}
    assert "question" in wrong_type["detail"]

    two_wrong = assert_problem(client.http.post(url, json={"input": {"question": 7, "context": []}}), 422)
    assert fields(two_wrong) == {"items/0/input/question", "items/0/input/context"}

    missing = assert_problem(client.http.post(url, json={"input": {"context": "no question"}}), 422)
    assert fields(missing) == {"items/0/input"}
    assert any("question" in error["message"] for error in missing["errors"])

    not_an_object = assert_problem(client.http.post(url, json={"input": "just text"}), 422, "schema-violation")
    assert fields(not_an_object) == {"items/0/input"}
    assert snapshot(client, dataset_id) == before


def test_an_item_whose_expected_output_breaks_the_schema_is_refused(guarded: tuple[Client, UUID]) -> None:
    client, dataset_id = guarded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items"
    problem = assert_problem(
        client.http.post(url, json={"input": {"question": "q"}, "expectedOutput": {"answer": 42}}), 422,
        "schema-violation",
    )
    assert fields(problem) == {"items/0/expectedOutput/answer"}
    both = assert_problem(client.http.post(url, json={"input": {}, "expectedOutput": "forty-two"}), 422)
    assert fields(both) == {"items/0/input", "items/0/expectedOutput"}
    assert snapshot(client, dataset_id) == before


def test_a_null_expected_output_is_not_checked_against_the_schema(guarded: tuple[Client, UUID]) -> None:
    client, dataset_id = guarded
    alone = client.add_item(dataset_id, input={"question": "no answer yet"}, expected_output=None)
    assert alone.item.expected_output is None
    batch = client.add_items(dataset_id, [{"input": {"question": "left out"}},
                                          {"input": {"question": "explicit"}, "expectedOutput": None}])
    assert batch.count == 2
    first = client.list_items(dataset_id).items[0]
    cleared = client.update_item(dataset_id, first.id, expected_output=None)
    assert cleared.changed and cleared.item.expected_output is None
    # the input is still checked
    response = client.http.post(f"/api/datasets/{dataset_id}/items", json={"input": {"q": 1}, "expectedOutput": None})
    assert fields(assert_problem(response, 422)) == {"items/0/input"}


def test_a_batch_with_one_bad_item_writes_nothing(guarded: tuple[Client, UUID]) -> None:
    client, dataset_id = guarded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items/batch"
    items: list[dict[str, Any]] = [{"input": {"question": f"q{i}"}, "expectedOutput": {"answer": f"a{i}"}}
                                   for i in range(5)]
    items[2] = {"input": {"question": None}, "expectedOutput": {"answer": "a2"}}

    problem = assert_problem(client.http.post(url, json={"items": items}), 422, "schema-violation")
    assert fields(problem) == {"items/2/input/question"}
    assert snapshot(client, dataset_id) == before
    assert client.list_items(dataset_id).pagination.total == 1

    items[4] = {"input": {"question": "q4"}, "expectedOutput": {"answer": False}}
    several = assert_problem(client.http.post(url, json={"items": items}), 422)
    assert fields(several) == {"items/2/input/question", "items/4/expectedOutput/answer"}
    assert snapshot(client, dataset_id) == before

    items[2] = {"input": {"question": "q2"}, "expectedOutput": {"answer": "a2"}}
    items[4] = {"input": {"question": "q4"}, "expectedOutput": {"answer": "a4"}}
    written = client.add_items(dataset_id, items)
    assert written.count == 5 and written.version == before[0] + 1


def test_a_patch_that_would_break_the_schema_is_refused(guarded: tuple[Client, UUID]) -> None:
    client, dataset_id = guarded
    item = client.list_items(dataset_id).items[0]
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}/items/{item.id}"

    bad_input = assert_problem(client.http.patch(url, json={"input": {"question": 1}}), 422, "schema-violation")
    assert any(field.endswith("input/question") for field in fields(bad_input)), bad_input
    dropped = assert_problem(client.http.patch(url, json={"input": {"context": "c"}}), 422, "schema-violation")
    assert any(field.endswith("input") for field in fields(dropped)), dropped
    bad_output = assert_problem(client.http.patch(url, json={"expectedOutput": {"answer": ["no"]}}), 422)
    assert any(field.endswith("expectedOutput/answer") for field in fields(bad_output)), bad_output

    assert snapshot(client, dataset_id) == before
    unchanged = client.get_item(dataset_id, item.id)
    assert unchanged.input == {"question": "ok?"} and unchanged.expected_output == {"answer": "yes"}
    # a patch that keeps the item valid is fine, and so is one that only touches metadata
    assert client.update_item(dataset_id, item.id, input={"question": "still ok?"}).version == before[0] + 1
    assert client.update_item(dataset_id, item.id, metadata={"tag": "x"}).version == before[0] + 2


def test_local_refs_in_a_schema_resolve(service: Service) -> None:
    client = service.client
    schema = {"$defs": {"text": {"type": "string", "minLength": 1}},
              "type": "object", "properties": {"question": {"$ref": "#/$defs/text"}}, "required": ["question"]}
    dataset = client.create_dataset("refs", input_schema=schema)
    client.add_item(dataset.id, input={"question": "fine"})
    problem = assert_problem(client.http.post(f"/api/datasets/{dataset.id}/items", json={"input": {"question": ""}}),
                             422, "schema-violation")
    assert fields(problem) == {"items/0/input/question"}


# -- the schemas themselves ---------------------------------------------------------------

INVALID_SCHEMAS = [
    {"type": "nonsense"},
    {"type": "object", "required": "question"},
    {"type": "object", "properties": []},
    {"type": "number", "minimum": "ten"},
    {"type": "string", "pattern": "("},
]


@pytest.mark.parametrize("schema", INVALID_SCHEMAS, ids=["type", "required", "properties", "minimum", "pattern"])
def test_an_invalid_json_schema_is_refused_on_create(service: Service, schema: dict[str, Any]) -> None:
    client = service.client
    for key in ("inputSchema", "expectedOutputSchema"):
        problem = assert_problem(client.http.post("/api/datasets", json={"name": "bad", key: schema}), 422,
                                 "invalid-schema")
        assert all(field.startswith(key) for field in fields(problem)) and fields(problem), problem
        assert key in problem["detail"]
    assert client.list_datasets().pagination.total == 0


@pytest.mark.parametrize("schema", INVALID_SCHEMAS, ids=["type", "required", "properties", "minimum", "pattern"])
def test_an_invalid_json_schema_is_refused_on_patch_and_put(guarded: tuple[Client, UUID],
                                                            schema: dict[str, Any]) -> None:
    client, dataset_id = guarded
    before = snapshot(client, dataset_id)
    url = f"/api/datasets/{dataset_id}"
    assert_problem(client.http.patch(url, json={"inputSchema": schema}), 422, "invalid-schema")
    assert_problem(client.http.patch(url, json={"expectedOutputSchema": schema}), 422, "invalid-schema")
    assert_problem(client.http.put(url, json={"name": "guarded", "inputSchema": schema,
                                              "expectedOutputSchema": ANSWER}), 422, "invalid-schema")
    assert snapshot(client, dataset_id) == before


def test_a_schema_whose_ref_points_nowhere_is_refused(service: Service) -> None:
    """Accepting it would make every later item write fail (the reference cannot be resolved)."""
    client = service.client
    dangling = {"type": "object", "properties": {"question": {"$ref": "#/$defs/missing"}}}
    response = client.http.post("/api/datasets", json={"name": "dangling", "inputSchema": dangling})
    if response.status_code == 201:  # show what accepting it leads to
        add = client.http.post(f"/api/datasets/{response.json()['id']}/items", json={"input": {"question": "q"}})
        assert add.status_code < 500, f"adding an item to it is a server error: {add.status_code} {add.text}"
    assert_problem(response, 422, "invalid-schema")


@pytest.fixture
def schema_host() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server that serves a JSON Schema and records every request it gets."""
    hits: list[str] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            hits.append(self.path)
            answer_json(self, 200, {"type": "object"}, content_type="application/schema+json")

    server = serve(Handler)
    try:
        yield url_of(server, "/schema.json"), hits
    finally:
        stop(server)


def test_a_remote_ref_is_never_fetched(service: Service, schema_host: tuple[str, list[str]]) -> None:
    """A schema must not make the service call out to URLs its callers name (SSRF)."""
    url, hits = schema_host
    client = service.client
    response = client.http.post("/api/datasets", json={"name": "remote", "inputSchema": {"$ref": url}})
    if response.status_code == 201:  # give it every chance to fetch
        client.http.post(f"/api/datasets/{response.json()['id']}/items", json={"input": {"question": "q"}})
    assert hits == [], f"the service fetched {hits} from {url}"
    assert_problem(response, 422, "invalid-schema")


# -- changing the schemas of a dataset that has items ---------------------------------------


def test_a_schema_change_that_current_items_break_is_refused_naming_at_most_ten(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("tightening")
    failing = client.add_items(dataset.id, [{"input": {"question": i}, "externalId": f"bad-{i}"} for i in range(12)])
    client.add_items(dataset.id, [{"input": {"question": f"fine {i}"}} for i in range(3)])
    failing_ids = {str(ref.id): ref.external_id for ref in failing.items}
    before = snapshot(client, dataset.id)

    problem = assert_problem(client.http.patch(f"/api/datasets/{dataset.id}", json={"inputSchema": QUESTION}),
                             422, "schema-violation")
    listed = problem["failingItems"]
    assert 1 <= len(listed) <= 10
    assert len(listed) == 10  # there are 12; ten are shown
    assert len({entry["itemId"] for entry in listed}) == len(listed)
    for entry in listed:
        assert entry["itemId"] in failing_ids
        assert entry["externalId"] == failing_ids[entry["itemId"]]
        assert entry["errors"] and entry["errors"][0]["field"].endswith("input/question")
    assert problem["errors"] and all(
        any(error["field"].startswith(f"items/{entry['itemId']}/") for entry in listed) for error in problem["errors"]
    )
    assert snapshot(client, dataset.id) == before
    assert client.get_dataset(dataset.id).input_schema is None

    put = client.http.put(f"/api/datasets/{dataset.id}", json={"name": "tightening", "inputSchema": QUESTION})
    assert len(assert_problem(put, 422, "schema-violation")["failingItems"]) == 10
    assert snapshot(client, dataset.id) == before


def test_a_schema_change_lists_every_failing_item_when_there_are_few(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("few")
    refs = client.add_items(dataset.id, [{"input": {"question": "fine"}, "expectedOutput": {"answer": "a"}},
                                         {"input": {"question": "fine"}, "expectedOutput": {"answer": 1}},
                                         {"input": {"question": "fine"}, "expectedOutput": "plain"}]).items
    problem = assert_problem(client.http.patch(f"/api/datasets/{dataset.id}", json={"expectedOutputSchema": ANSWER}),
                             422, "schema-violation")
    assert {entry["itemId"] for entry in problem["failingItems"]} == {str(refs[1].id), str(refs[2].id)}
    assert client.get_dataset(dataset.id).expected_output_schema is None


def test_a_schema_change_current_items_satisfy_is_accepted_without_a_new_version(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("loosening")
    client.add_items(dataset.id, [{"input": {"question": f"q{i}"}} for i in range(4)])
    bad = client.add_items(dataset.id, [{"input": {"question": i}} for i in range(3)]).items
    client.delete_items(dataset.id, [bad[0].id, bad[1].id])                     # deleted: not current
    client.update_item(dataset.id, bad[2].id, input={"question": "fixed"})      # old revision broke it
    client.add_item(dataset.id, input={"question": "no answer"}, expected_output=None)
    version, count, events, _, _ = snapshot(client, dataset.id)
    versions_before = client.list_versions(dataset.id).pagination.total

    changed = client.update_dataset(dataset.id, input_schema=QUESTION, expected_output_schema=ANSWER,
                                    reason="tighten")
    assert changed.input_schema == QUESTION and changed.expected_output_schema == ANSWER
    assert changed.version == version  # no new version
    assert snapshot(client, dataset.id) == (version, count, events + 1, QUESTION, ANSWER)
    assert client.list_versions(dataset.id).pagination.total == versions_before
    last = client.list_events(dataset.id, per_page=100).events[-1]
    assert last.type == "DetailsChanged" and last.version is None and last.reason == "tighten"
    assert last.payload["changes"]["inputSchema"] == QUESTION

    # and from now on the schema holds
    refused = client.http.post(f"/api/datasets/{dataset.id}/items", json={"input": {"question": 5}})
    assert fields(assert_problem(refused, 422, "schema-violation")) == {"items/0/input/question"}


def test_clearing_a_schema_lets_items_it_refused_in(guarded: tuple[Client, UUID]) -> None:
    client, dataset_id = guarded
    version = client.get_dataset(dataset_id).version
    url = f"/api/datasets/{dataset_id}/items"
    assert client.http.post(url, json={"input": "free text"}).status_code == 422
    cleared = client.update_dataset(dataset_id, input_schema=None)
    assert cleared.input_schema is None and cleared.expected_output_schema == ANSWER
    assert cleared.version == version
    assert client.add_item(dataset_id, input="free text", expected_output={"answer": "a"}).version == version + 1
    refused = client.http.post(url, json={"input": "x", "expectedOutput": {"answer": 0}})
    assert fields(assert_problem(refused, 422)) == {"items/0/expectedOutput/answer"}


def test_setting_the_same_schema_again_changes_nothing(guarded: tuple[Client, UUID]) -> None:
    client, dataset_id = guarded
    before = snapshot(client, dataset_id)
    again = client.update_dataset(dataset_id, input_schema=QUESTION)
    assert again.input_schema == QUESTION
    assert snapshot(client, dataset_id) == before
