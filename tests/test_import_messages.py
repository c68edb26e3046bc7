"""What an import answers about rows and columns it could not take: a repeated externalId
is an error of its own row (which skipInvalid skips), a CSV column mapped to nothing is
a warning, and a refusal carries its remedy apart from its message."""

from __future__ import annotations

from typing import Any

from conftest import Service


def import_file(service: Service, dataset_id: Any, name: str, text: str, **params: Any) -> Any:
    return service.client.http.post(f"/api/datasets/{dataset_id}/items/import", content=text.encode(),
                                     params={"filename": name, **params})


def test_a_repeated_external_id_is_reported_at_its_row_and_skipped_with_skip_invalid(service: Service) -> None:
    dataset = service.client.create_dataset("dupes")
    rows = "\n".join(['{"input": 1, "externalId": "a"}', '{"input": 2, "externalId": "b"}',
                      '{"input": 3, "externalId": "a"}']) + "\n"
    refused = import_file(service, dataset.id, "rows.jsonl", rows)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["rows"] == [{"row": 3, "field": "externalId",
                                "message": "externalId 'a' is already used by row 1 of the file"}]
    assert problem["remedy"] == {"parameter": "skipInvalid", "value": "true", "purpose": "to import the valid rows"}
    assert "skipInvalid=true" in problem["detail"] and "skipInvalid" not in problem["message"]
    assert service.client.get_dataset(dataset.id).version == 0

    done = import_file(service, dataset.id, "rows.jsonl", rows, skipInvalid="true")
    assert done.status_code == 201, done.text
    assert done.json()["added"] == 2 and done.json()["skippedRows"] == [3]
    assert sorted(i.input for i in service.client.list_items(dataset.id).items) == [1, 2]


def test_csv_columns_mapped_to_nothing_are_warned_about(service: Service) -> None:
    dataset = service.client.create_dataset("columns")
    text = "input,notes,source\nq1,n1,s1\n"
    answer = import_file(service, dataset.id, "cases.csv", text, map=["source=ignore"], dryRun="true").json()
    assert [(w["row"], w["field"]) for w in answer["warnings"]] == [(1, "notes")]  # asked-for ignores are quiet
    assert "not imported" in answer["warnings"][0]["message"]
    imported = import_file(service, dataset.id, "cases.csv", text).json()
    assert {w["field"] for w in imported["warnings"]} == {"notes", "source"}


def test_a_file_without_an_input_column_is_refused_with_a_remedy(service: Service) -> None:
    dataset = service.client.create_dataset("no-input")
    refused = import_file(service, dataset.id, "cases.csv", "question,answer\nq,a\n")
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["remedy"]["parameter"] == "map" and problem["remedy"]["value"] == "question=input"
    assert "map=question=input" in problem["detail"]
