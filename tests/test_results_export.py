"""A run's results as CSV: each scorer has columns of its own (`<scorer>.score`,
`<scorer>.reason`, `<scorer>.error`), as spreadsheets expect."""

from __future__ import annotations

import csv
import io

from conftest import Service


def exported_csv(service: Service, run_id: object) -> tuple[list[str], list[dict[str, str]]]:
    response = service.client.http.get(f"/api/datasets/runs/{run_id}/results/export", params={"format": "csv"})
    assert response.status_code == 200, response.text
    reader = csv.DictReader(io.StringIO(response.text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_each_scorer_has_its_own_score_reason_and_error_columns(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("scored")
    items = client.add_items(dataset.id, [{"input": {"q": i}} for i in range(3)]).items
    run = client.create_run(dataset.id, scorers=["quality", "judge", "never"])
    client.submit_results(run.id, [
        {"itemId": str(items[0].id), "output": "a", "scores": [
            {"scorerId": "quality", "score": 1.0, "reason": "exact, with a comma"},
            {"scorerId": "judge", "error": "judge timed out"}]},
        {"itemId": str(items[1].id), "output": "b", "scores": [{"scorerId": "judge", "score": 0.25}]},
        {"itemId": str(items[2].id), "error": "target failed"},
    ])
    client.finalize_run(run.id)

    header, rows = exported_csv(service, run.id)
    assert "scores" not in header
    assert header[-9:] == ["quality.score", "quality.reason", "quality.error", "judge.score", "judge.reason",
                           "judge.error", "never.score", "never.reason", "never.error"]
    first, second, third = rows
    assert (first["quality.score"], first["quality.reason"], first["quality.error"]) == ("1.0", "exact, with a comma", "")
    assert (first["judge.score"], first["judge.error"]) == ("", "judge timed out")
    assert (second["quality.score"], second["judge.score"]) == ("", "0.25")
    assert third["error"] == "target failed" and all(third[c] == "" for c in header[-9:])


def test_scorers_a_run_did_not_declare_get_columns_too(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("undeclared")
    items = client.add_items(dataset.id, [{"input": i} for i in range(2)]).items
    run = client.create_run(dataset.id)
    client.submit_results(run.id, [
        {"itemId": str(items[0].id), "output": 0, "scores": [{"scorerId": "zeta", "score": 0.0}]},
        {"itemId": str(items[1].id), "output": 1, "scores": [{"scorerId": "alpha", "score": 1.0, "reason": "ok"}]},
    ])
    header, rows = exported_csv(service, run.id)
    assert header[-6:] == ["alpha.score", "alpha.reason", "alpha.error", "zeta.score", "zeta.reason", "zeta.error"]
    assert [(r["alpha.score"], r["zeta.score"]) for r in rows] == [("", "0.0"), ("1.0", "")]
