"""Items in and out: CSV, JSON and JSONL imports (one version each), streamed exports that
re-import to the same items, duplicates and copies that record their origin."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
from conftest import Service

from evalledger import Client


def import_file(client: Client, dataset_id: Any, content: bytes | str, filename: str,
                **params: Any) -> httpx.Response:
    body = content.encode() if isinstance(content, str) else content
    return client.http.post(f"/api/datasets/{dataset_id}/items/import", content=body,
                            params={"filename": filename, **params})


def test_a_csv_import_maps_columns_and_is_one_version(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("csv")
    csv_text = (
        "question,context,answer,split,id\n"
        'what?,"{""a"": 1}",42,train,q1\n'
        'why?,,"[1, 2]",test,q2\n'
        "how?,{not json},x,train,q3\n"
    )
    response = import_file(client, dataset.id, csv_text, "cases.csv",
                           map=["question=input", "context=input", "answer=expectedOutput", "split=metadata",
                                "id=externalId"])
    assert response.status_code == 201, response.text
    summary = response.json()
    assert (summary["version"], summary["added"], summary["rows"]) == (1, 3, 3)
    assert summary["warnings"][0]["row"] == 4 and summary["warnings"][0]["field"] == "context"
    items = {i.external_id: i for i in client.list_items(dataset.id).items}
    assert items["q1"].input == {"question": "what?", "context": {"a": 1}}
    assert items["q2"].input == {"question": "why?", "context": None}
    assert items["q2"].expected_output == [1, 2]
    assert items["q3"].input["context"] == "{not json}"
    assert items["q1"].metadata == {"split": "train"}
    assert items["q1"].source == {"kind": "import", "file": "cases.csv", "format": "csv", "row": 2}


def test_the_seed_rules_hold(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("rules")
    no_input = import_file(client, dataset.id, "question,answer\nq,a\n", "x.csv")
    assert no_input.status_code == 422 and "no column is mapped to input" in no_input.json()["detail"]
    empty_cell = import_file(client, dataset.id, "input,expectedOutput\nq1,a\n,b\nq3,c\n", "x.csv")
    assert empty_cell.status_code == 422
    assert empty_cell.json()["rows"] == [{"row": 3, "field": "input", "message": "input is missing or empty"}]
    defaults = import_file(client, dataset.id, 'input,metadata\n"{""q"": 1}",\n', "x.csv")
    assert defaults.status_code == 201
    [item] = client.list_items(dataset.id).items
    assert item.input == {"q": 1} and item.metadata == {}
    assert client.get_dataset(dataset.id).version == 1  # the refused imports wrote nothing


def test_dry_run_and_skip_invalid(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("dry")
    lines = "\n".join([json.dumps({"input": "a"}), "not json", json.dumps({"expectedOutput": 1}),
                       json.dumps({"input": "d", "metadata": {"k": 1}})])
    preview = import_file(client, dataset.id, lines, "x.jsonl", dryRun="true")
    assert preview.status_code == 200
    body = preview.json()
    assert body["dryRun"] and body["validRows"] == 2 and [e["row"] for e in body["errors"]] == [2, 3]
    assert [p["input"] for p in body["preview"]] == ["a", "d"]
    assert client.get_dataset(dataset.id).version == 0
    assert import_file(client, dataset.id, lines, "x.jsonl").status_code == 422
    skipped = import_file(client, dataset.id, lines, "x.jsonl", skipInvalid="true")
    assert skipped.status_code == 201 and skipped.json()["skippedRows"] == [2, 3]
    assert client.get_dataset(dataset.id).item_count == 2


def test_upsert_twice_changes_nothing_the_second_time_and_replace_makes_the_file_the_version(
    service: Service,
) -> None:
    client = service.client
    dataset = client.create_dataset("upsert")
    rows = [{"externalId": f"e{i}", "input": {"n": i}} for i in range(5)]
    first = import_file(client, dataset.id, json.dumps(rows), "x.json", mode="upsert")
    assert first.status_code == 201 and first.json()["added"] == 5
    again = import_file(client, dataset.id, json.dumps(rows), "x.json", mode="upsert")
    assert again.status_code == 200 and not again.json()["newVersion"] and again.json()["unchanged"] == 5
    assert client.get_dataset(dataset.id).version == 1

    rows[0]["input"] = {"n": "changed"}
    replaced = import_file(client, dataset.id, json.dumps(rows[:3] + [{"externalId": "new", "input": 9}]), "x.json",
                           mode="replace")
    summary = replaced.json()
    assert (summary["added"], summary["updated"], summary["removed"], summary["unchanged"]) == (1, 1, 2, 2)
    assert summary["version"] == 2
    now = {i.external_id: i.input for i in client.list_items(dataset.id).items}
    assert now == {"e0": {"n": "changed"}, "e1": {"n": 1}, "e2": {"n": 2}, "new": 9}
    versions = client.list_versions(dataset.id).versions[0]
    assert (versions.version, versions.added, versions.updated, versions.removed) == (2, 1, 1, 2)
    appended = import_file(client, dataset.id, json.dumps([{"externalId": "e1", "input": 1}]), "x.json")
    assert appended.status_code == 409


def test_malformed_files_are_refused_and_write_nothing(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("malformed")
    cases = [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "x.csv", "binary"),
        ("input\ncaf\xe9\n".encode("latin-1"), "x.csv", "UTF-8"),
        (b'{"input": 1}', "x.json", "array"),
        (b"[1, 2", "x.json", "not valid JSON"),
        (b"input,expectedOutput\na,b,c\n", "x.csv", "has 3 cells"),
        (b"whatever", "x.txt", "format"),
    ]
    for content, filename, words in cases:
        response = import_file(client, dataset.id, content, filename)
        assert 400 <= response.status_code < 500, (filename, response.text)
        assert words in response.text, (words, response.text)
    # A 2 GB upload is refused from its headers, before any of it is read.
    with socket.create_connection(("127.0.0.1", int(service.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(f"POST /api/datasets/{dataset.id}/items/import?filename=x.csv HTTP/1.1\r\n"
                     f"Host: test\r\nContent-Type: text/csv\r\nContent-Length: {2 * 1024**3}\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
    assert client.get_dataset(dataset.id).version == 0


def test_csv_export_reimports_to_identical_items_and_bytes(service: Service) -> None:
    client = service.client
    source = client.create_dataset("source")
    client.add_items(source.id, [
        {"input": {"question": f"q{i}", "context": "c, with \"quotes\"\nand a newline"},
         "expectedOutput": {"answer": f"a{i}"}, "metadata": {"i": i, "split": "test" if i % 5 == 0 else "train"},
         "externalId": f"x{i}" if i % 2 else None}
        for i in range(30)
    ] + [{"input": "plain text", "expectedOutput": "text answer"}])
    client.add_item(source.id, input="later")  # version 2: export version 1
    exported = client.http.get(f"/api/datasets/{source.id}/items/export", params={"format": "csv", "version": 1})
    assert exported.status_code == 200 and exported.headers["x-dataset-version"] == "1"
    target = client.create_dataset("target")
    imported = import_file(client, target.id, exported.content, "export.csv")
    assert imported.status_code == 201 and imported.json()["added"] == 31
    again = client.http.get(f"/api/datasets/{target.id}/items/export", params={"format": "csv"})
    assert again.content == exported.content

    def contents(dataset_id: Any, version: int | None) -> list[tuple[Any, ...]]:
        return [(i.input, i.expected_output, i.metadata, i.external_id)
                for i in client.iter_items(dataset_id, version=version)]

    assert contents(target.id, None) == contents(source.id, 1)
    jsonl = client.http.get(f"/api/datasets/{source.id}/items/export", params={"format": "jsonl"}).text
    assert len(jsonl.splitlines()) == 32
    as_json = client.http.get(f"/api/datasets/{source.id}/items/export", params={"format": "json"}).json()
    assert len(as_json) == 32 and as_json[-1]["input"] == "later"


def test_duplicates_and_copies_are_one_version_and_record_their_origin(service: Service) -> None:
    client = service.client
    source = client.create_dataset("origin", metadata={"team": "qa"})
    added = client.add_items(source.id, [{"input": i, "externalId": f"e{i}"} for i in range(4)])
    ids = [i.id for i in added.items]

    copy = client.request("POST", f"/api/datasets/{source.id}/duplicate", json={"name": "copy"})
    assert copy["version"] == 1 and copy["itemCount"] == 4 and copy["metadata"]["team"] == "qa"
    [first] = [i for i in client.list_items(copy["id"]).items if i.external_id == "e0"]
    assert first.source["kind"] == "duplicate" and first.source["itemId"] == str(ids[0])

    one = client.request("POST", f"/api/datasets/{source.id}/items/{ids[1]}/duplicate")
    assert one["version"] == 2 and client.get_dataset(source.id).item_count == 5

    target = client.create_dataset("target")
    copied = client.request("POST", f"/api/datasets/{source.id}/items/copy",
                            json={"targetDatasetId": str(target.id), "itemIds": [str(i) for i in ids[:2]]})
    assert copied["version"] == 1 and copied["count"] == 2
    fresh = client.request("POST", "/api/datasets/from-items",
                           json={"name": "picked", "sourceDatasetId": str(source.id), "itemIds": [str(ids[3])]})
    assert fresh["itemCount"] == 1 and fresh["version"] == 1
    missing = client.http.post(f"/api/datasets/{source.id}/items/copy",
                               json={"targetDatasetId": str(target.id), "itemIds": [str(target.id)]})
    assert missing.status_code == 422 and client.get_dataset(target.id).version == 1


def test_the_import_and_export_commands(service: Service, tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    dataset = service.client.create_dataset("cli")
    source = tmp_path / "cases.csv"
    source.write_text("question,answer\nq1,a1\nq2,a2\n")

    def evalledger(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "evalledger.cli", *args, "--url", service.url],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "120"})

    done = evalledger("import", str(dataset.id), str(source), "--map", "question=input", "--map",
                      "answer=expectedOutput")
    assert done.returncode == 0 and "version 1: 2 added" in done.stderr, done.stderr
    out = tmp_path / "out.jsonl"
    exported = evalledger("export", str(dataset.id), "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line)["input"] for line in out.read_text().splitlines()] == ["q1", "q2"]
    bad = tmp_path / "bad.csv"
    bad.write_text("question\nq\n")
    refused = evalledger("import", str(dataset.id), str(bad))
    assert refused.returncode == 1 and "input" in refused.stderr


def test_run_results_export_as_csv_and_jsonl(service: Service) -> None:
    import csv
    import io

    client = service.client
    dataset = client.create_dataset("results")
    added = client.add_items(dataset.id, [{"input": {"q": i}, "expectedOutput": i} for i in range(3)])
    run = client.create_run(dataset.id)
    client.submit_results(run.id, [{"itemId": str(item.id), "output": {"a": k}, "latencyMs": 1.5,
                                    "scores": [{"scorerId": "s", "score": 0.5}]}
                                   for k, item in enumerate(added.items)])
    client.finalize_run(run.id)
    lines = client.http.get(f"/api/datasets/runs/{run.id}/results/export").text.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["output"] for r in rows] == [{"a": 0}, {"a": 1}, {"a": 2}]
    assert rows[0]["input"] == {"q": 0} and rows[0]["scores"][0]["score"] == 0.5
    table = list(csv.DictReader(io.StringIO(
        client.http.get(f"/api/datasets/runs/{run.id}/results/export", params={"format": "csv"}).text)))
    assert [r["output"] for r in table] == ['{"a":0}', '{"a":1}', '{"a":2}'] and table[0]["latencyMs"] == "1.5"
    assert client.http.get("/api/datasets/runs/5d1f0c8e-0000-4000-8000-000000000000/results/export").status_code == 404
