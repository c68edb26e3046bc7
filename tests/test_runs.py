"""Runs: a pinned dataset version, sent item by item to a target, scored, recorded."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
from conftest import AUTH, Service
from waiting import wait_finished

from evalledger import ApiError
from evalledger.execution.registry import registry
from evalledger.execution.targets import TransientError

# -- targets and scorers the tests register (names prefixed to stay out of others' way) --


@registry.target(name="runs-echo", kind="agent")
def echo(input: Any, context: Any) -> Any:
    return input


_failed_once: set[str] = set()
_failed_once_lock = threading.Lock()


@registry.target(name="runs-fails-first-call", kind="agent")
def fails_first_call(input: Any, context: Any) -> Any:
    with _failed_once_lock:
        first = not _failed_once
        _failed_once.add(context.item_id)
    if first:
        raise RuntimeError("the first call breaks")
    return input


@registry.target(name="runs-always-fails", kind="agent")
def always_fails(input: Any, context: Any) -> Any:
    raise RuntimeError(f"cannot answer {input!r}")


@registry.target(name="runs-hangs", kind="agent")
async def hangs(input: Any, context: Any) -> Any:
    while True:  # ignores cancellation on purpose
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            continue


_calls: dict[str, int] = {}


@registry.target(name="runs-429-twice", kind="agent")
def rate_limited_twice(input: Any, context: Any) -> Any:
    key = f"{context.run_id}/{context.item_id}"
    _calls[key] = _calls.get(key, 0) + 1
    if _calls[key] <= 2:
        raise TransientError("HTTP 429 Too Many Requests")
    return input


@registry.target(name="runs-value-error", kind="agent")
def value_error(input: Any, context: Any) -> Any:
    key = f"{context.run_id}/{context.item_id}"
    _calls[key] = _calls.get(key, 0) + 1
    raise ValueError("bad input")


@registry.scorer(name="runs-slow-1")
async def slow_1(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
    await asyncio.sleep(0.1)
    return 1.0


@registry.scorer(name="runs-slow-2")
async def slow_2(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
    await asyncio.sleep(0.1)
    return 0.5


@registry.scorer(name="runs-slow-3")
async def slow_3(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
    await asyncio.sleep(0.1)
    return 0.0


@registry.scorer(name="runs-broken")
def broken(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
    raise RuntimeError("scorer bug")


def registered(name: str) -> dict[str, str]:
    return {"type": "registered", "name": name}


def start_run(service: Service, dataset_id: Any, **body: Any) -> dict[str, Any]:
    return service.client.request("POST", f"/api/datasets/{dataset_id}/runs", json=body)


def results(service: Service, run_id: str, **params: Any) -> list[dict[str, Any]]:
    answer = service.client.request("GET", f"/api/datasets/runs/{run_id}/results",
                                    params={"perPage": 1000, **params})
    return answer["results"]


def dataset_with(service: Service, *inputs: Any) -> Any:
    dataset = service.client.create_dataset("runs")
    service.client.add_items(dataset.id, [{"input": value, "expectedOutput": value} for value in inputs])
    return dataset


def test_an_echo_run_completes_with_every_item_succeeded(service: Service) -> None:
    dataset = dataset_with(service, {"q": "a"}, {"q": "b"})
    run = start_run(service, dataset.id, target=registered("runs-echo"),
                    scorers=[{"name": "exact-match"}], name="echo")
    assert run["status"] in ("pending", "running", "completed")
    assert run["datasetVersion"] == 1 and run["totalItems"] == 2
    done = wait_finished(service.client.http, run["id"])
    assert done["status"] == "completed"
    assert (done["succeededCount"], done["failedCount"], done["pendingCount"]) == (2, 0, 0)
    rows = results(service, run["id"])
    assert [r["output"] for r in rows] == [{"q": "a"}, {"q": "b"}]
    assert [r["input"] for r in rows] == [{"q": "a"}, {"q": "b"}]
    assert all(r["scores"][0]["score"] == 1.0 and r["latencyMs"] >= 0 for r in rows)


def test_a_failing_first_call_is_recorded_and_the_run_still_completes(service: Service) -> None:
    _failed_once.clear()
    dataset = dataset_with(service, "x", "y")
    run = start_run(service, dataset.id, target=registered("runs-fails-first-call"), maxConcurrency=1,
                    maxRetries=0)
    done = wait_finished(service.client.http, run["id"])
    assert done["status"] == "completed"
    assert (done["succeededCount"], done["failedCount"]) == (1, 1)
    failed = results(service, run["id"], status="failed")
    assert len(failed) == 1 and "the first call breaks" in failed[0]["error"]


def test_a_run_where_every_item_fails_is_failed(service: Service) -> None:
    dataset = dataset_with(service, "x", "y")
    run = start_run(service, dataset.id, target=registered("runs-always-fails"))
    done = wait_finished(service.client.http, run["id"])
    assert done["status"] == "failed" and done["failedCount"] == 2


def test_a_hanging_target_times_out_on_every_item_and_the_run_ends_promptly(service: Service) -> None:
    dataset = dataset_with(service, 1, 2, 3)
    started = time.monotonic()
    run = start_run(service, dataset.id, target=registered("runs-hangs"), itemTimeoutMs=100, maxRetries=0)
    done = wait_finished(service.client.http, run["id"], timeout=10)
    assert time.monotonic() - started < 3
    assert done["status"] == "failed" and done["failedCount"] == 3
    assert all("timed out after 100 ms" in r["error"] for r in results(service, run["id"]))


def test_transient_errors_are_retried_and_others_are_not(service: Service) -> None:
    dataset = dataset_with(service, "only")
    run = start_run(service, dataset.id, target=registered("runs-429-twice"), maxRetries=3)
    done = wait_finished(service.client.http, run["id"])
    assert done["status"] == "completed"
    [row] = results(service, run["id"])
    assert row["attempt"] == 3 and len(row["retryErrors"]) == 2 and "429" in row["retryErrors"][0]

    run = start_run(service, dataset.id, target=registered("runs-value-error"), maxRetries=3)
    done = wait_finished(service.client.http, run["id"])
    [row] = results(service, run["id"])
    assert done["status"] == "failed" and row["attempt"] == 1 and "ValueError: bad input" in row["error"]


def test_scorers_run_concurrently_and_a_broken_one_affects_only_itself(service: Service) -> None:
    dataset = dataset_with(service, 1, 2, 3, 4, 5)
    started = time.monotonic()
    run = start_run(service, dataset.id, target=registered("runs-echo"), maxConcurrency=5,
                    scorers=["runs-slow-1", "runs-slow-2", "runs-slow-3", "runs-broken"])
    done = wait_finished(service.client.http, run["id"])
    assert time.monotonic() - started < 1.5
    assert done["status"] == "completed"
    for row in results(service, run["id"]):
        scores = {s["scorerId"]: s for s in row["scores"]}
        assert [scores[f"runs-slow-{n}"]["score"] for n in (1, 2, 3)] == [1.0, 0.5, 0.0]
        assert scores["runs-broken"]["score"] is None and "scorer bug" in scores["runs-broken"]["error"]


def test_a_run_executes_exactly_its_pinned_version(service: Service) -> None:
    dataset = dataset_with(service, "v1-a", "v1-b")
    items = service.client.list_items(dataset.id).items
    service.client.update_item(dataset.id, items[0].id, input="changed")
    service.client.add_item(dataset.id, input="added later")
    run = start_run(service, dataset.id, target=registered("runs-echo"), version=1)
    done = wait_finished(service.client.http, run["id"])
    assert done["datasetVersion"] == 1 and done["totalItems"] == 2
    assert sorted(r["output"] for r in results(service, run["id"])) == ["v1-a", "v1-b"]


def test_repetitions_give_one_result_per_item_and_repetition(service: Service) -> None:
    dataset = dataset_with(service, "a", "b")
    run = start_run(service, dataset.id, target=registered("runs-echo"), repetitions=3)
    done = wait_finished(service.client.http, run["id"])
    assert done["expectedResults"] == 6 and done["succeededCount"] == 6
    keys = sorted((r["itemId"], r["repetition"]) for r in results(service, run["id"]))
    assert len(set(keys)) == 6 and {k[1] for k in keys} == {0, 1, 2}


def test_cancel_stops_new_work_and_keeps_what_finished(service: Service) -> None:
    dataset = dataset_with(service, *range(50))
    run = start_run(service, dataset.id, target=registered("runs-hangs"), itemTimeoutMs=200, maxRetries=0,
                    maxConcurrency=2)
    time.sleep(0.5)
    cancelled = service.client.request("POST", f"/api/datasets/runs/{run['id']}/cancel")
    assert cancelled["status"] == "cancelled"
    recorded = len(results(service, run["id"]))
    assert 0 < recorded < 50
    time.sleep(0.5)
    assert len(results(service, run["id"])) == recorded
    with pytest.raises(ApiError) as refused:
        service.client.request("POST", f"/api/datasets/runs/{run['id']}/cancel")
    assert refused.value.status == 409


def test_bad_run_requests_get_problems_and_create_nothing(service: Service) -> None:
    dataset = dataset_with(service, "a")
    empty = service.client.create_dataset("empty")
    cases = [
        (dataset.id, {"target": registered("no-such-target")}, 422),
        (dataset.id, {"target": registered("runs-echo"), "scorers": ["no-such-scorer"]}, 422),
        (dataset.id, {"target": registered("runs-echo"), "maxConcurrency": -1}, 422),
        (dataset.id, {"target": registered("runs-echo"), "itemTimeoutMs": 0}, 422),
        (dataset.id, {"target": registered("runs-echo"), "version": 7}, 404),
        ("3f8f5b52-0000-4000-8000-000000000000", {"target": registered("runs-echo")}, 404),
        (empty.id, {"target": registered("runs-echo")}, 422),
    ]
    for dataset_id, body, status in cases:
        response = service.client.http.post(f"/api/datasets/{dataset_id}/runs", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    listing = service.client.request("GET", f"/api/datasets/{dataset.id}/runs")
    assert listing["pagination"]["total"] == 0


def test_caller_driven_runs_take_upserts_and_finalize(service: Service) -> None:
    dataset = dataset_with(service, "a", "b", "c")
    item_ids = [str(i.id) for i in service.client.list_items(dataset.id).items]
    run_id = "0d9b1c7e-5a4b-4c3d-9e8f-7a6b5c4d3e2f"
    run = start_run(service, dataset.id, runId=run_id, name="mine")
    assert run["callerDriven"] and run["id"] == run_id
    assert start_run(service, dataset.id, runId=run_id, name="mine")["id"] == run_id  # idempotent
    with pytest.raises(ApiError) as conflict:
        start_run(service, dataset.id, runId=run_id, name="different")
    assert conflict.value.status == 409

    submit = f"/api/datasets/runs/{run_id}/results"
    service.client.request("POST", submit, json={"results": [
        {"itemId": item_ids[0], "output": "x", "error": "boom", "scores": []},
        {"itemId": item_ids[1], "output": "b", "scores": [{"scorerId": "mine", "score": 0.5}]},
    ]})
    service.client.request("POST", submit, json={"results": [{"itemId": item_ids[0], "output": "a"}]})  # upsert
    with pytest.raises(ApiError) as unknown:
        service.client.request("POST", submit, json={"results": [{"itemId": dataset.id, "output": "?"}]})
    assert unknown.value.status == 422

    final = service.client.request("POST", f"/api/datasets/runs/{run_id}/finalize")
    assert final["status"] == "completed"
    assert (final["succeededCount"], final["failedCount"], final["skippedCount"]) == (2, 0, 1)
    rows = {r["itemId"]: r for r in results(service, run_id)}
    assert rows[item_ids[0]]["output"] == "a" and rows[item_ids[0]]["error"] is None
    with pytest.raises(ApiError) as after:
        service.client.request("POST", submit, json={"results": [{"itemId": item_ids[2], "output": "c"}]})
    assert after.value.status == 409

    targeted = start_run(service, dataset.id, target=registered("runs-echo"))
    with pytest.raises(ApiError) as has_target:
        service.client.request("POST", f"/api/datasets/runs/{targeted['id']}/results",
                               json={"results": [{"itemId": item_ids[0], "output": "x"}]})
    assert has_target.value.status == 400


def test_concurrent_submissions_are_all_recorded(service: Service) -> None:
    dataset = service.client.create_dataset("many")
    service.client.add_items(dataset.id, [{"input": i} for i in range(64)])
    item_ids = [str(i.id) for i in service.client.list_items(dataset.id, per_page=100).items]
    run = start_run(service, dataset.id)
    errors: list[BaseException] = []

    def submit(chunk: list[str]) -> None:
        with httpx.Client(headers=AUTH, base_url=service.url) as http:
            for item_id in chunk:
                response = http.post(f"/api/datasets/runs/{run['id']}/results",
                                     json={"results": [{"itemId": item_id, "output": item_id}]})
                if response.status_code != 200:
                    errors.append(AssertionError(response.text))

    threads = [threading.Thread(target=submit, args=(item_ids[k::16],)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    final = service.client.request("POST", f"/api/datasets/runs/{run['id']}/finalize")
    assert final["succeededCount"] == 64 and final["skippedCount"] == 0
    assert sorted(r["output"] for r in results(service, run["id"])) == sorted(item_ids)


def test_progress_streams_as_server_sent_events(service: Service) -> None:
    dataset = dataset_with(service, "a", "b")
    run = start_run(service, dataset.id, target=registered("runs-echo"))
    wait_finished(service.client.http, run["id"])
    with httpx.Client(headers=AUTH, base_url=service.url) as http, http.stream("GET", f"/api/datasets/runs/{run['id']}/stream") as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        text = "".join(s.iter_text())
    assert "event: finished" in text and '"status":"completed"' in text


def test_targets_and_scorers_are_listed(service: Service) -> None:
    targets = service.client.request("GET", "/api/targets")
    assert any(t["name"] == "runs-echo" for t in targets["registered"])
    assert {"http", "openai"} <= {t.get("type", t.get("name")) for t in targets["builtin"]}
    scorers = service.client.request("GET", "/api/scorers")
    assert "exact-match" in {s["name"] for s in scorers["builtin"]}
    assert any(s["name"] == "runs-slow-1" for s in scorers["registered"])
