"""Re-scoring a finished run's stored outputs (issue 18, item 2): a derived run whose target
reads the source run's outputs, so the model is not called again; one new score per result;
and the comparison of old and new scores finds a planted drift."""

from __future__ import annotations

import threading
from typing import Any

from cli_runner import evalledger
from conftest import AUTH, Service
from test_bad_input import assert_problem
from waiting import wait_finished, wait_until

from evalledger.execution.registry import registry

calls = {"n": 0}
lock = threading.Lock()


@registry.target(name="rescore-counted")
def counted(input: Any, context: Any) -> Any:
    with lock:
        calls["n"] += 1
    if input.get("fail"):
        raise ValueError("no answer")
    return input["answer"]


def test_a_rescore_calls_no_target_and_shows_the_drift(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("rescored")
    # A planted drift: a third of the answers differ from the expected output in case only,
    # which the case-insensitive new version of the scorer accepts.
    items = [{"input": {"answer": "PARIS" if i % 3 == 0 else "Paris", "fail": i == 7}, "expectedOutput": "Paris"}
             for i in range(1000)]
    client.add_items(dataset.id, items)
    source = client.create_run(dataset.id, target={"type": "registered", "name": "rescore-counted"},
                               scorers=[{"name": "exact-match", "id": "match"}])
    wait_finished(service.client.http, str(source.id), timeout=120)
    assert calls["n"] == 1000
    before = client.analytics(source.id).scorers["match"]

    answer = client.http.post(f"/api/datasets/runs/{source.id}/rescore", json={
        "scorers": [{"name": "exact-match", "id": "match", "options": {"caseSensitive": False}}],
        "maxConcurrency": 16}, headers={"X-Actor": "erin"})
    assert answer.status_code == 202, answer.text
    derived = answer.json()
    assert derived["metadata"] == {"rescoredFrom": str(source.id)}
    assert derived["target"] == {"type": "stored-output", "runId": str(source.id)}
    done = wait_finished(service.client.http, derived["id"], timeout=120)
    assert calls["n"] == 1000  # no target was called again
    assert (done["succeededCount"], done["failedCount"]) == (999, 1)

    results = [r for page in range(10) for r in client.list_results(derived["id"], page=page, per_page=100).results]
    assert len(results) == 1000
    assert all(len(r.scores) == 1 for r in results)  # one new score per result
    failed = [r for r in results if r.status == "failed"]
    assert len(failed) == 1 and "no answer" in (failed[0].error or "")

    after = client.analytics(derived["id"]).scorers["match"]
    drifted = sum(1 for i in range(1000) if i % 3 == 0 and i != 7)
    assert before.mean is not None and after.mean is not None
    assert round((after.mean - before.mean) * before.count) == drifted
    compared = client.compare(source.id, derived["id"]).scorers["match"]
    assert compared.improved == drifted and compared.regressed == 0 and compared.verdict == "improved"


def test_a_rescore_is_refused_for_runs_not_finished_and_bad_scorers(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("rescore refusals")
    added = client.add_items(dataset.id, [{"input": "a", "expectedOutput": "a"}])
    run = client.create_run(dataset.id, scorers=["exact-match"])
    rescore = f"/api/datasets/runs/{run.id}/rescore"
    assert_problem(client.http.post(rescore, json={"scorers": ["exact-match"]}), 409, "run-not-finished")
    client.submit_results(run.id, [{"itemId": str(added.items[0].id), "output": "a",
                                    "scores": [{"scorerId": "exact-match", "score": 1.0}]}])
    client.finalize_run(run.id)
    assert_problem(client.http.post(rescore, json={"scorers": ["no-such-scorer"]}), 422)
    assert_problem(client.http.post(rescore, json={"scorers": []}), 422)
    assert client.list_runs(dataset.id).pagination.total == 1  # nothing was created


def test_the_rescore_command_follows_the_derived_run(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("rescore cli")
    added = client.add_items(dataset.id, [{"input": "a", "expectedOutput": "A"}, {"input": "b", "expectedOutput": "b"}])
    run = client.create_run(dataset.id, scorers=["exact-match"])
    client.submit_results(run.id, [{"itemId": str(item.id), "output": output,
                                    "scores": [{"scorerId": "exact-match", "score": 0.0}]}
                                   for item, output in zip(added.items, ["a", "b"], strict=True)])
    client.finalize_run(run.id)
    done = evalledger("rescore", str(run.id), "--scorer", "exact-match", url=service.url)
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stderr
    derived = [r for r in client.list_runs(dataset.id).runs if r.id != run.id]
    assert len(derived) == 1 and derived[0].metadata == {"rescoredFrom": str(run.id)}
    assert client.analytics(derived[0].id).scorers["exact-match"].mean == 0.5


def test_a_rescore_killed_half_way_resumes_without_duplicates(settings: Any, tmp_path: Any) -> None:
    """SIGKILL the service in the middle of re-scoring 1,000 results: after a restart the
    derived run finishes with exactly one score per result, results already recorded are not
    scored again, and the target (which notes its calls) is never called by the re-score."""

    import httpx
    import service_process
    from test_run_recovery import calls_by, recorded_keys

    targets, scorers = tmp_path / "targets.log", tmp_path / "scorers.log"
    targets.touch()
    scorers.touch()
    env = {"CRASH_APP_LOG": str(targets), "RESCORE_APP_LOG": str(scorers)}

    def serve() -> Any:
        return service_process.start(settings, "crash_app", "rescore_app", env=env)

    first = serve()
    try:
        with httpx.Client(headers=AUTH, base_url=first.url, timeout=30) as http:
            dataset = http.post("/api/datasets", json={"name": "rescore crash"}).json()
            http.post(f"/api/datasets/{dataset['id']}/items/batch",
                      json={"items": [{"input": {"n": i}, "expectedOutput": {"n": i}} for i in range(1000)]}
                      ).raise_for_status()
            source = http.post(f"/api/datasets/{dataset['id']}/runs", json={
                "target": {"type": "registered", "name": "crash-noted-echo"}, "scorers": ["exact-match"],
                "maxConcurrency": 16}).json()
            assert wait_finished(http, source["id"], timeout=60)["status"] == "completed"
            target_calls = len(targets.read_text().splitlines())
            assert target_calls == 1000
            derived = http.post(f"/api/datasets/runs/{source['id']}/rescore",
                                json={"scorers": ["rescore-noted"], "maxConcurrency": 4}).json()
            wait_until(lambda: http.get(f"/api/datasets/runs/{derived['id']}").json()["progress"]["done"] >= 300,
                       "300 items rescored", timeout=60)
    finally:
        first.sigkill()

    before = recorded_keys(settings, derived["id"])
    assert 0 < len(before) < 1000
    second = serve()
    try:
        with httpx.Client(headers=AUTH, base_url=second.url, timeout=30) as http:
            state = wait_finished(http, derived["id"], timeout=90)
            assert state["status"] == "completed", state
            assert (state["succeededCount"], state["failedCount"]) == (1000, 0)
            listing = http.get(f"/api/datasets/runs/{derived['id']}/results", params={"perPage": 1000}).json()
            compared = http.post("/api/datasets/compare", json={"runIdA": source["id"], "runIdB": derived["id"]}
                                 ).json()
    finally:
        second.stop(timeout=30)

    keys = [f"{r['itemId']}#{r['repetition']}" for r in listing["results"]]
    assert len(keys) == len(set(keys)) == 1000
    assert all([s["scorerId"] for s in r["scores"]] == ["rescore-noted"] for r in listing["results"])
    assert len(targets.read_text().splitlines()) == target_calls  # the re-score called no target
    rescored_again = [n for n in calls_by(scorers, second.pid)]
    assert len(rescored_again) == 1000 - len(before)  # only what was not recorded before the kill
    assert compared["pairedItems"] == 1000
