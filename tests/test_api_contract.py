"""The API's contract at its edges (issue 12, items 6, 11, 13, 14, 15): imports read numbers
as exactly as request bodies, every page parameter is bounded alike, search is a plain
substring of the JSON text, items filter by externalId, unknown query parameters are
refused by name, and a wrong method is a 405 that says which methods the path takes."""

from __future__ import annotations

from uuid import uuid4

import pytest
from conftest import Service
from test_bad_input import assert_problem

BIG = "1180591620717411303424"  # 2**70: beyond 64 bits


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("big.jsonl", '{"input": {"n": ' + BIG + '}}\n'),
        ("big.json", '[{"input": "fine"}, {"input": {"n": ' + BIG + '}}]'),
        ("big.csv", 'input,expectedOutput\nfine,x\n"{""n"": ' + BIG + '}",y\n'),
    ],
)
def test_import_refuses_integers_beyond_64_bits_like_a_post(service: Service, filename: str, content: str) -> None:
    http = service.client.http
    dataset_id = service.client.create_dataset(f"big-{filename}").id
    posted = http.post(f"/api/datasets/{dataset_id}/items", content='{"input": {"n": ' + BIG + '}}',
                       headers={"content-type": "application/json"})
    assert_problem(posted, 422)
    answer = http.post(f"/api/datasets/{dataset_id}/items/import", params={"filename": filename},
                       content=content.encode())
    problem = assert_problem(answer, 422, "invalid-request")
    row = 1 if filename.endswith(".jsonl") else 2 if filename.endswith(".json") else 3
    assert problem["rows"] == [{"row": row, "field": "input/n", "message": "is an integer beyond 64 bits"}], problem
    assert service.client.get_dataset(dataset_id).version == 0  # nothing was written


def test_import_keeps_the_largest_64_bit_integers_exact(service: Service) -> None:
    dataset_id = service.client.create_dataset("edges").id
    content = '{"input": {"max": 18446744073709551615, "min": -9223372036854775808}}\n'
    answer = service.client.http.post(f"/api/datasets/{dataset_id}/items/import",
                                      params={"filename": "edges.jsonl"}, content=content.encode())
    assert answer.status_code == 201, answer.text
    [item] = service.client.list_items(dataset_id).items
    assert item.input == {"max": 2**64 - 1, "min": -(2**63)}


@pytest.mark.parametrize("path", [
    "/api/datasets", "/api/datasets/{dataset}/items", "/api/datasets/{dataset}/versions",
    "/api/datasets/{dataset}/events", "/api/datasets/{dataset}/diff?from=0", "/api/datasets/{dataset}/runs",
    "/api/datasets/runs/{run}/events", "/api/datasets/runs/{run}/results",
])
def test_every_page_parameter_is_bounded_alike(service: Service, path: str) -> None:
    dataset_id = service.client.create_dataset("pages").id
    service.client.add_item(dataset_id, input=1)
    run_id = service.client.create_run(dataset_id).id
    url = path.format(dataset=dataset_id, run=run_id)
    joiner = "&" if "?" in url else "?"
    for query in ("page=100000000000000000000", "page=10000001", "page=-1", "perPage=0", "perPage=100000000000000000000"):
        problem = assert_problem(service.client.http.get(url + joiner + query), 400, "invalid-parameter")
        assert problem["errors"][0]["field"] in ("query/page", "query/perPage"), problem
    for query in ("after=100000000000000000000", "after=-1"):
        if url.endswith("/events"):
            assert_problem(service.client.http.get(url + joiner + query), 400, "invalid-parameter")
    last = service.client.http.get(url + joiner + "page=10000000")
    assert last.status_code == 200, last.text  # the largest page is allowed, and simply empty


def test_event_positions_beyond_bigint_are_refused(service: Service) -> None:
    assert_problem(service.client.http.get("/api/events", params={"after": 10**20}), 400, "invalid-parameter")


def test_search_is_a_substring_of_the_json_text(service: Service) -> None:
    client = service.client
    dataset_id = client.create_dataset("search").id
    client.add_items(dataset_id, [
        {"input": {"q": 2}},
        {"input": 'she said "hi" 100%_done'},
        {"input": "other", "expectedOutput": {"Answer": "Quebec"}},
    ])

    def found(search: str) -> list[object]:
        return [item.input for item in client.list_items(dataset_id, search=search, per_page=100).items]

    assert found('"q"') == [{"q": 2}]
    assert found("q") == [{"q": 2}, "other"]
    assert found("QUEB") == ["other"]  # case-insensitive, expectedOutput too
    assert found('"q": 2') == [{"q": 2}]
    assert found('said "hi"') == ['she said "hi" 100%_done']  # a string's text, quotes unescaped
    assert found("100%_") == ['she said "hi" 100%_done']  # LIKE's wildcards are plain characters
    assert found("%") == ['she said "hi" 100%_done']
    assert found('"answer"') == ["other"]
    assert found("nowhere") == []


def test_items_filter_by_external_id(service: Service) -> None:
    client = service.client
    dataset_id = client.create_dataset("ext").id
    client.add_items(dataset_id, [{"input": 1, "externalId": "a"}, {"input": 2, "externalId": "b"},
                                  {"input": 3}])
    listing = client.http.get(f"/api/datasets/{dataset_id}/items", params={"externalId": "b"}).json()
    assert [item["input"] for item in listing["items"]] == [2]
    assert listing["pagination"]["total"] == 1
    both = client.http.get(f"/api/datasets/{dataset_id}/items", params={"externalId": "a", "search": "1"}).json()
    assert [item["input"] for item in both["items"]] == [1]
    none = client.http.get(f"/api/datasets/{dataset_id}/items", params={"externalId": "zzz"}).json()
    assert none["items"] == [] and none["pagination"]["total"] == 0
    # At an earlier version the item did not exist yet.
    old = client.http.get(f"/api/datasets/{dataset_id}/items", params={"externalId": "a", "version": 0}).json()
    assert old["items"] == []


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/datasets?perpage=5"),
    ("GET", "/api/datasets/{dataset}/items?externalid=a"),
    ("GET", "/api/datasets/{dataset}/items?page=0&bogus=1&other=2"),
    ("POST", "/api/datasets/{dataset}/items?dryRun=true"),
    ("GET", "/health?verbose=1"),
    ("GET", "/api/events?perPage=10"),
])
def test_unknown_query_parameters_are_refused_by_name(service: Service, method: str, path: str) -> None:
    dataset_id = service.client.create_dataset("params").id
    before = service.client.get_dataset(dataset_id).version
    response = service.client.http.request(method, path.format(dataset=dataset_id), json={"input": 1})
    problem = assert_problem(response, 400, "unknown-parameter")
    named = path.split("?")[1].split("&")
    unknown = [pair.split("=")[0] for pair in named if pair.split("=")[0] not in ("page",)]
    assert [error["field"] for error in problem["errors"]] == sorted(f"query/{name}" for name in unknown)
    for name in unknown:
        assert name in problem["detail"]
    assert service.client.get_dataset(dataset_id).version == before  # nothing was written


def test_import_takes_its_filename_as_a_declared_parameter(service: Service) -> None:
    dataset_id = service.client.create_dataset("declared").id
    answer = service.client.http.post(f"/api/datasets/{dataset_id}/items/import",
                                      params={"filename": "a.jsonl", "dryRun": "true"}, content=b'{"input": 1}\n')
    assert answer.status_code == 200, answer.text
    assert answer.json()["format"] == "jsonl"


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/api/datasets/compare", "POST"),
    ("PATCH", "/api/datasets/compare", "POST"),
    ("GET", "/api/datasets/compare", "POST"),
    ("POST", "/api/datasets/{dataset}", "DELETE, GET, PATCH, PUT"),
    ("PUT", "/api/datasets", "GET, POST"),
    ("POST", "/api/datasets/{dataset}/items/{item}", "DELETE, GET, PATCH"),
    ("GET", "/api/datasets/{dataset}/items/batch", "DELETE, POST"),
    ("DELETE", "/health", "GET"),
])
def test_a_wrong_method_is_405_with_allow(service: Service, method: str, path: str, allow: str) -> None:
    dataset_id = service.client.create_dataset("methods").id
    item_id = service.client.add_item(dataset_id, input=1).item.id
    response = service.client.http.request(method, path.format(dataset=dataset_id, item=item_id))
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == allow


def test_a_malformed_id_is_still_404(service: Service) -> None:
    for path in ("/api/datasets/not-a-uuid", f"/api/datasets/{uuid4()}x/items", "/api/datasets/runs/zzz"):
        assert_problem(service.client.http.get(path), 404, "not-found")
