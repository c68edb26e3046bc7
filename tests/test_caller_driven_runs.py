"""Caller-driven runs (no target): scorer names are declared when the run is created,
resubmitting the same result and finalizing twice record nothing and answer the same."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Service

from evalledger import ApiError
from evalledger.execution.registry import registry


@registry.target(name="caller-driven-echo")
def echo(input: Any, context: Any) -> Any:
    return input


def run_events(service: Service, run_id: str) -> list[dict[str, Any]]:
    return service.client.request("GET", f"/api/datasets/runs/{run_id}/events", params={"perPage": 1000})["events"]


def caller_driven(service: Service, **body: Any) -> tuple[str, list[str]]:
    dataset = service.client.create_dataset("caller")
    service.client.add_items(dataset.id, [{"input": i} for i in range(3)])
    item_ids = [str(i.id) for i in service.client.list_items(dataset.id).items]
    run = service.client.request("POST", f"/api/datasets/{dataset.id}/runs", json=body)
    return run["id"], item_ids


def test_declared_scorers_are_listed_by_analytics_before_any_result(service: Service) -> None:
    run_id, item_ids = caller_driven(service, scorers=["quality", "helpfulness"])
    assert service.client.get_run(run_id).scorers == ["quality", "helpfulness"]
    analytics = service.client.request("GET", f"/api/datasets/runs/{run_id}/analytics")
    assert list(analytics["scorers"]) == ["quality", "helpfulness"]
    assert analytics["scorers"]["quality"]["count"] == 0 and analytics["scorers"]["quality"]["mean"] is None

    service.client.submit_results(run_id, [{"itemId": item_ids[0], "output": "x",
                                            "scores": [{"scorerId": "quality", "score": 0.5}]}])
    analytics = service.client.request("GET", f"/api/datasets/runs/{run_id}/analytics")
    assert analytics["scorers"]["quality"]["count"] == 1 and analytics["scorers"]["quality"]["mean"] == 0.5
    assert analytics["scorers"]["helpfulness"]["count"] == 0

    # A score for a scorer the run did not declare is refused (a typo shows at once), and changes nothing.
    before = len(run_events(service, run_id))
    with pytest.raises(ApiError) as typo:
        service.client.submit_results(run_id, [{"itemId": item_ids[1], "scores": [{"scorerId": "qualty", "score": 1}]}])
    assert typo.value.status == 422 and "qualty" in typo.value.detail
    assert typo.value.problem["undeclaredScorerIds"] == ["qualty"]
    stranger = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(ApiError) as unknown:
        service.client.submit_results(run_id, [{"itemId": stranger, "output": "x"}])
    assert unknown.value.status == 422 and unknown.value.problem["unknownItemIds"] == [stranger]
    assert len(run_events(service, run_id)) == before


@pytest.mark.parametrize("name", ["", " padded", "tab\there", "x" * 201])
def test_a_declared_scorer_name_is_checked_as_a_name(service: Service, name: str) -> None:
    with pytest.raises(ApiError) as refused:
        caller_driven(service, scorers=[name])
    assert refused.value.status == 422
    assert refused.value.problem["type"].endswith("invalid-request")


def test_a_run_with_a_target_still_needs_scorers_it_can_run(service: Service) -> None:
    dataset = service.client.create_dataset("targeted")
    service.client.add_item(dataset.id, input=1)
    with pytest.raises(ApiError) as refused:
        service.client.create_run(dataset.id, target={"type": "registered", "name": "caller-driven-echo"},
                                  scorers=["quality"])
    assert refused.value.status == 422 and "unknown scorer" in refused.value.detail


def test_an_identical_resubmission_records_nothing_and_answers_the_same(service: Service) -> None:
    run_id, item_ids = caller_driven(service, scorers=["quality"])
    result = {"itemId": item_ids[0], "output": {"a": 1, "b": [1, 2]}, "latencyMs": 12.5,
              "scores": [{"scorerId": "quality", "score": 1.0, "reason": "fine"}]}
    first = service.client.request("POST", f"/api/datasets/runs/{run_id}/results", json={"results": [result]})
    events = len(run_events(service, run_id))
    again = service.client.request("POST", f"/api/datasets/runs/{run_id}/results", json={"results": [result]})
    assert again == first
    assert len(run_events(service, run_id)) == events

    # Key order does not matter; a changed result is an upsert (one more event).
    reordered = {"scores": result["scores"], "output": {"b": [1, 2], "a": 1}, "latencyMs": 12.5, "itemId": item_ids[0]}
    service.client.request("POST", f"/api/datasets/runs/{run_id}/results", json={"results": [reordered]})
    assert len(run_events(service, run_id)) == events
    changed = {**result, "output": "different"}
    service.client.request("POST", f"/api/datasets/runs/{run_id}/results", json={"results": [changed]})
    assert len(run_events(service, run_id)) == events + 1
    # A batch where only one result is new records just that one.
    service.client.request("POST", f"/api/datasets/runs/{run_id}/results",
                           json={"results": [changed, {"itemId": item_ids[1], "output": "y"}]})
    recorded = run_events(service, run_id)
    assert len(recorded) == events + 2
    assert [r["itemId"] for r in recorded[-1]["payload"]["results"]] == [item_ids[1]]


def test_a_second_finalize_answers_the_same_and_records_nothing(service: Service) -> None:
    run_id, item_ids = caller_driven(service)
    service.client.submit_results(run_id, [{"itemId": item_ids[0], "output": "x"}])
    first = service.client.request("POST", f"/api/datasets/runs/{run_id}/finalize")
    events = len(run_events(service, run_id))
    again = service.client.request("POST", f"/api/datasets/runs/{run_id}/finalize")
    assert again == first and again["status"] == "completed"
    assert len(run_events(service, run_id)) == events
    # Still finished: results are refused, and a cancelled run is not "finalized" by a retry.
    with pytest.raises(ApiError) as closed:
        service.client.submit_results(run_id, [{"itemId": item_ids[1], "output": "y"}])
    assert closed.value.status == 409

    cancelled, _ = caller_driven(service)
    service.client.cancel_run(cancelled)
    with pytest.raises(ApiError) as refused:
        service.client.finalize_run(cancelled)
    assert refused.value.status == 409
