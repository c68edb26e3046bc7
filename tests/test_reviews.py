"""Human review of run results (issue 18, item 1) and output diffs (item 3), over HTTP on
real PostgreSQL: a review overrides a score, analytics and comparison use it and say so,
the score history names who gave each score, a rebuild of the read models answers the
same, and bad reviews are refused with a problem, recording nothing."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from conftest import acting_for, Service
from test_bad_input import assert_problem


def finished_run(service: Service, outputs: list[Any], expected: list[Any], scores: list[float],
                 name: str = "reviewed") -> tuple[str, list[str]]:
    """A finished caller-driven run with one result per item, scored by `exact-match`."""
    client = service.client
    dataset_id = client.create_dataset(name).id
    added = client.add_items(dataset_id, [{"input": f"q{i}", "expectedOutput": e} for i, e in enumerate(expected)])
    item_ids = [str(item.id) for item in added.items]
    run = client.create_run(dataset_id, scorers=["exact-match"])
    client.submit_results(run.id, [
        {"itemId": item_id, "output": output, "scores": [{"scorerId": "exact-match", "score": score}]}
        for item_id, output, score in zip(item_ids, outputs, scores, strict=True)])
    client.finalize_run(run.id)
    return str(run.id), item_ids


def review(service: Service, run_id: str, item_id: str, actor: str = "alice", **body: Any) -> Any:
    return service.client.http.post(f"/api/datasets/runs/{run_id}/results/{item_id}/review", json=body,
                                    headers={"X-Actor": actor, "X-Change-Reason": "checked by hand"})


def test_a_review_overrides_a_score_everywhere_and_says_so(service: Service) -> None:
    http = service.client.http
    run_a, items = finished_run(service, ["Paris", "Lyon", "Rome", "Bern"], ["Paris", "Paris", "Rome", "Berne"],
                                [1.0, 0.0, 1.0, 0.0])
    before = http.get(f"/api/datasets/runs/{run_a}/analytics").json()["scorers"]["exact-match"]
    assert before["mean"] == 0.5 and before["reviewedCount"] == 0

    answer = review(service, run_a, items[3], scores={"exact-match": 1.0}, verdict="pass",
                    comment="Bern is the same city")
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    assert detail["scores"] == [{"scorerId": "exact-match", "score": 1.0, "reason": None, "error": None,
                                 "automaticScore": 0.0, "reviewed": True}]
    assert detail["review"]["verdict"] == "pass" and detail["review"]["actor"] == acting_for("alice")
    assert detail["review"]["comment"] == "Bern is the same city"

    after = http.get(f"/api/datasets/runs/{run_a}/analytics").json()["scorers"]["exact-match"]
    assert after["mean"] == 0.75 and after["reviewedCount"] == 1
    summary = http.get(f"/api/datasets/runs/{run_a}").json()["scoreSummary"]["exact-match"]
    assert summary["mean"] == 0.75 and summary["reviewedCount"] == 1

    # Compared with another run over the same items and the same automatic scores, the review
    # is the one improvement, and the comparison says the candidate's score was reviewed.
    dataset_id = http.get(f"/api/datasets/runs/{run_a}").json()["datasetId"]
    other = service.client.create_run(dataset_id, scorers=["exact-match"])
    service.client.submit_results(other.id, [
        {"itemId": item_id, "output": "x", "scores": [{"scorerId": "exact-match", "score": s}]}
        for item_id, s in zip(items, [1.0, 0.0, 1.0, 0.0], strict=True)])
    service.client.finalize_run(other.id)
    compared = http.post("/api/datasets/compare", json={"runIdA": str(other.id), "runIdB": run_a}).json()
    scorer = compared["scorers"]["exact-match"]
    assert scorer["meanA"] == 0.5 and scorer["meanB"] == 0.75 and scorer["improved"] == 1
    assert scorer["reviewedA"] == 0 and scorer["reviewedB"] == 1

    # A later review by someone else supersedes the score; the history keeps every one.
    second = review(service, run_a, items[3], actor="bob", scores={"exact-match": 0.5}, flagged=True).json()
    assert second["scores"][0]["score"] == 0.5
    assert second["review"]["verdict"] == "pass"  # not given: kept
    assert second["review"]["flagged"] is True and second["flagged"] is True
    history = [(h["source"], h["score"], h["actor"]) for h in second["scoreHistory"]]
    assert history == [("automatic", 0.0, "caller"), ("review", 1.0, acting_for("alice")), ("review", 0.5, acting_for("bob"))]
    assert [r["actor"] for r in second["reviews"]] == [acting_for("alice"), acting_for("bob")]
    assert all(r["reason"] == "checked by hand" for r in second["reviews"])
    assert http.get(f"/api/datasets/runs/{run_a}/analytics").json()["scorers"]["exact-match"]["mean"] == 0.625

    # A criterion of the reviewer's own shows as a scorer of its own in analytics.
    review(service, run_a, items[0], criteria={"tone": 0.8})
    tone = http.get(f"/api/datasets/runs/{run_a}/analytics").json()["scorers"]["tone"]
    assert tone["count"] == 1 and tone["mean"] == 0.8 and tone["reviewedCount"] == 1

    # The review queue lists what was flagged.
    queue = http.get(f"/api/datasets/runs/{run_a}/review-queue").json()
    assert [r["itemId"] for r in queue["results"]] == [items[3]] and queue["pagination"]["total"] == 1
    review(service, run_a, items[3], flagged=False)
    assert http.get(f"/api/datasets/runs/{run_a}/review-queue").json()["results"] == []

    # null takes an override back: the automatic score counts again.
    back = review(service, run_a, items[3], scores={"exact-match": None}).json()
    assert back["scores"] == [{"scorerId": "exact-match", "score": 0.0, "reason": None, "error": None}]
    assert http.get(f"/api/datasets/runs/{run_a}/analytics").json()["scorers"]["exact-match"]["mean"] == 0.5


def test_a_rebuild_of_the_read_models_gives_the_same_answers(service: Service) -> None:
    http = service.client.http
    run_id, items = finished_run(service, ["a", "b", "c"], ["a", "x", "c"], [1.0, 0.0, 1.0])
    review(service, run_id, items[1], scores={"exact-match": 0.9}, verdict="pass", flagged=True, comment="close")
    review(service, run_id, items[1], actor="bob", scores={"exact-match": 0.7}, criteria={"tone": 0.2})
    review(service, run_id, items[2], verdict="fail")

    def answers() -> list[Any]:
        paths = [f"/api/datasets/runs/{run_id}/analytics", f"/api/datasets/runs/{run_id}/results",
                 f"/api/datasets/runs/{run_id}/review-queue", f"/api/datasets/runs/{run_id}",
                 *(f"/api/datasets/runs/{run_id}/results/{item}" for item in items)]
        return [http.get(path).json() for path in paths]

    before = answers()
    assert before[0]["scorers"]["exact-match"]["reviewedCount"] == 1
    report = service.client.request("POST", "/api/projections/runs/rebuild")
    assert report["events"] > 0
    assert answers() == before


def test_output_diffs_of_strings_nested_json_and_missing_outputs(service: Service) -> None:
    http = service.client.http
    expected = ["The capital is Paris.", {"a": {"b": 1, "c": [1, 2]}, "keep": True}, "anything", None]
    outputs = ["The capital is Lyon.", {"a": {"b": 2, "c": [1, 2]}, "keep": True, "extra": "x"}, None, "free"]
    run_id, items = finished_run(service, outputs, expected, [0.0, 0.0, 0.0, 0.0])

    def diff(k: int) -> Any:
        response = http.get(f"/api/datasets/runs/{run_id}/results/{items[k]}")
        assert response.status_code == 200, response.text
        return response.json()["outputDiff"]

    assert diff(0) == {"kind": "text", "equal": False, "segments": [
        {"op": "equal", "text": "The capital is "}, {"op": "del", "text": "Paris."}, {"op": "add", "text": "Lyon."}]}
    assert diff(1) == {"kind": "json", "equal": False, "changes": [
        {"field": "output.a.b", "before": 1, "after": 2},
        {"field": "output.extra", "before": None, "after": "x", "kind": "added"}]}
    assert diff(2) == {"kind": "missingOutput", "equal": False}
    assert diff(3) == {"kind": "noExpectedOutput", "equal": False}


@pytest.mark.parametrize(("body", "status", "kind"), [
    ({"scores": {"exact-match": 1.5}}, 422, None),
    ({"scores": {"exact-match": -0.1}}, 422, None),
    ({"scores": {"no-such-scorer": 0.5}}, 422, "invalid-request"),
    ({"criteria": {"exact-match": 0.5}}, 422, "invalid-request"),
    ({"verdict": "maybe"}, 422, None),
    ({}, 422, "invalid-request"),
    ({"comment": "nul \u0000 inside"}, 422, None),
    ({"verdict": "pass", "repetition": 1}, 404, "result-not-found"),
])
def test_a_bad_review_is_refused_and_records_nothing(service: Service, body: dict[str, Any], status: int,
                                                     kind: str | None) -> None:
    http = service.client.http
    run_id, items = finished_run(service, ["a"], ["a"], [1.0])
    assert_problem(review(service, run_id, items[0], **body), status, kind)
    detail = http.get(f"/api/datasets/runs/{run_id}/results/{items[0]}").json()
    assert detail["reviews"] == [] and detail["review"] is None
    events = http.get(f"/api/datasets/runs/{run_id}/events").json()["events"]
    assert not [e for e in events if e["type"] == "ResultReviewed"]


def test_unknown_results_and_unfinished_runs_are_refused(service: Service) -> None:
    client = service.client
    run_id, items = finished_run(service, ["a"], ["a"], [1.0])
    assert_problem(review(service, run_id, str(uuid4()), verdict="pass"), 404, "result-not-found")
    assert_problem(review(service, str(uuid4()), items[0], verdict="pass"), 404, "run-not-found")
    assert_problem(client.http.get(f"/api/datasets/runs/{run_id}/results/{uuid4()}"), 404, "result-not-found")
    unknown = assert_problem(review(service, run_id, items[0], scores={"no-such-scorer": 0.5}), 422, "invalid-request")
    assert unknown["unknownScorerIds"] == ["no-such-scorer"]  # the problem's extras in the wire's names
    dataset_id = client.get_run(run_id).dataset_id
    open_run = client.create_run(dataset_id, scorers=["exact-match"])
    client.submit_results(open_run.id, [{"itemId": items[0], "output": "a",
                                         "scores": [{"scorerId": "exact-match", "score": 1.0}]}])
    assert_problem(review(service, str(open_run.id), items[0], verdict="pass"), 409, "run-not-finished")


def test_a_comparison_shows_how_each_items_output_changed(service: Service) -> None:
    client = service.client
    run_a, items = finished_run(service, ["The answer is 4", {"a": {"b": 1}}, "same", None],
                                ["x", "x", "x", "x"], [0.0, 0.0, 1.0, 0.0])
    dataset_id = client.get_run(run_a).dataset_id
    run_b = client.create_run(dataset_id, scorers=["exact-match"])
    client.submit_results(run_b.id, [
        {"itemId": item_id, "output": output, "scores": [{"scorerId": "exact-match", "score": 0.0}]}
        for item_id, output in zip(items, ["The answer is 5", {"a": {"b": 2}}, "same", "now"], strict=True)])
    client.finalize_run(run_b.id)
    compared = client.http.post("/api/datasets/compare", json={"runIdA": run_a, "runIdB": str(run_b.id)}).json()
    diffs = {item["itemId"]: item["outputDiff"] for item in compared["items"]}
    assert diffs[items[0]]["segments"] == [{"op": "equal", "text": "The answer is "}, {"op": "del", "text": "4"},
                                           {"op": "add", "text": "5"}]
    assert diffs[items[1]]["changes"] == [{"field": "output.a.b", "before": 1, "after": 2}]
    assert diffs[items[2]] == {"kind": "text", "equal": True, "segments": [{"op": "equal", "text": "same"}]}
    assert diffs[items[3]] == {"kind": "missingOutput", "equal": False, "missing": ["A"]}


def test_audit_verify_replays_reviews_and_finds_nothing_amiss(service: Service) -> None:
    from test_audit import verify

    run_id, items = finished_run(service, ["a", "b"], ["a", "x"], [1.0, 0.0])
    review(service, run_id, items[1], scores={"exact-match": 0.9}, criteria={"tone": 0.4})
    healthy = verify(service)
    assert healthy.returncode == 0, healthy.stderr
    assert "match the log" in healthy.stderr
