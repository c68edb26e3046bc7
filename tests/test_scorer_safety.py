"""No scorer or target stalls the service: regexes run in linear time (RE2), scorers have
a timeout of their own, users' slow or CPU-bound sync code runs off the event loop, and
the costly built-ins take bounded input. Writes to other datasets over HTTP meanwhile
answer promptly."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
from conftest import AUTH, Service
from waiting import wait_finished

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.registry import OFF_LOOP, registry
from evalledger.execution.scorers import ScoreInput, build_scorer

# Python's re needs about 2**n steps for `(a+)+b` on n a's without a b: 26 a's took
# seconds, 28 took 34 s, all the while holding the GIL.
PATHOLOGICAL = "(a+)+b"
A_RUN = "a" * 26
BURN_SECONDS = 3.0


def burn(seconds: float) -> int:
    """Pure-Python CPU work that ignores every timeout."""
    deadline = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    return spins


@registry.target(name="safety-a-run", kind="agent")
def a_run(input: Any, context: Any) -> Any:
    return A_RUN


@registry.target(name="safety-cpu-burn", kind="agent")
def cpu_burn_target(input: Any, context: Any) -> Any:
    burn(BURN_SECONDS)
    return "finally"


@registry.scorer(name="safety-cpu-burn")
def cpu_burn_scorer(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
    burn(BURN_SECONDS)
    return 1.0


def test_a_pathological_regex_and_cpu_bound_user_code_do_not_stall_writes(service: Service) -> None:
    client = service.client
    runs_dataset = client.create_dataset("safety-runs")
    client.add_items(runs_dataset.id, [{"input": {"n": n}} for n in range(2)])
    burning_dataset = client.create_dataset("safety-burning")
    client.add_item(burning_dataset.id, input={"n": 0})
    other = client.create_dataset("safety-other")

    scored = client.request("POST", f"/api/datasets/{runs_dataset.id}/runs", json={
        "target": {"type": "registered", "name": "safety-a-run"},
        "scorers": [{"name": "regex", "options": {"pattern": PATHOLOGICAL}},
                    {"name": "safety-cpu-burn", "timeoutMs": 300}],
        "maxConcurrency": 2, "itemTimeoutMs": 20_000,
    })
    burning = client.request("POST", f"/api/datasets/{burning_dataset.id}/runs", json={
        "target": {"type": "registered", "name": "safety-cpu-burn"},
        "maxConcurrency": 1, "itemTimeoutMs": 500, "maxRetries": 0,
    })

    # Writes to another dataset while both runs execute (the burning threads go on for
    # BURN_SECONDS after their timeouts): each must answer promptly.
    slowest = 0.0
    writes = 0
    with httpx.Client(headers=AUTH, base_url=service.url, timeout=60) as http:
        started = time.monotonic()
        while time.monotonic() - started < BURN_SECONDS + 1:
            before = time.monotonic()
            http.post(f"/api/datasets/{other.id}/items", json={"input": {"write": writes}}).raise_for_status()
            slowest = max(slowest, time.monotonic() - before)
            writes += 1
            time.sleep(0.05)
    print(f"{writes} writes meanwhile, the slowest took {slowest:.3f} s")
    assert slowest < 2.0, f"a write to another dataset took {slowest:.2f} s"

    scored_run = wait_finished(service.client.http, scored["id"])
    burning_run = wait_finished(service.client.http, burning["id"])
    assert scored_run["status"] == "completed"
    results = client.request("GET", f"/api/datasets/runs/{scored['id']}/results")["results"]
    assert len(results) == 2
    for result in results:
        scores = {s["scorerId"]: s for s in result["scores"]}
        # RE2 answers at once, and correctly: there is no b.
        assert scores["regex"]["score"] == 0.0 and scores["regex"]["error"] is None
        assert scores["safety-cpu-burn"]["score"] is None
        assert "timed out after 300 ms" in scores["safety-cpu-burn"]["error"]
    assert burning_run["failedCount"] == 1
    for result in client.request("GET", f"/api/datasets/runs/{burning['id']}/results")["results"]:
        assert "timed out after 500 ms" in result["error"]


def test_patterns_re2_cannot_run_are_refused_at_run_creation(service: Service) -> None:
    dataset = service.client.create_dataset("safety-bad-regex")
    service.client.add_item(dataset.id, input=1)
    for pattern in (r"(a)\1", r"foo(?=bar)", r"(?<!x)y"):
        response = httpx.post(headers=AUTH, url=f"{service.url}/api/datasets/{dataset.id}/runs", json={
            "target": {"type": "registered", "name": "safety-a-run"},
            "scorers": [{"name": "regex", "options": {"pattern": pattern}}]})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "RE2" in response.json()["detail"]
    assert service.client.list_runs(dataset.id).pagination.total == 0


def score(spec: Any, output: Any, expected: Any = None) -> Any:
    scorer = build_scorer(spec, None)
    return asyncio.run(scorer.score(ScoreInput(input=None, output=output, expected_output=expected, metadata={})))


def test_regex_matching_takes_linear_time_with_flags_still_working() -> None:
    started = time.perf_counter()
    assert score({"name": "regex", "options": {"pattern": PATHOLOGICAL}}, "a" * 100_000).score == 0.0
    assert score({"name": "regex", "options": {"pattern": PATHOLOGICAL}}, "a" * 100_000 + "b").score == 1.0
    assert time.perf_counter() - started < 1.0
    assert score({"name": "regex", "options": {"pattern": "^PARIS$", "flags": "im"}}, "x\nParis\ny").score == 1.0
    assert score({"name": "regex", "options": {"pattern": "a.b", "flags": "s"}}, "a\nb").score == 1.0
    assert score({"name": "regex", "options": {"pattern": "a.b"}}, "a\nb").score == 0.0


def test_similarity_refuses_texts_too_long_to_compare_quickly() -> None:
    long_text = "word " * 5_000  # 25,000 characters
    with pytest.raises(ValueError, match="at most 20,000"):
        score("similarity", long_text, long_text)
    with pytest.raises(ValueError, match="partial-ratio"):
        score({"name": "similarity", "options": {"method": "partial-ratio"}}, "x" * 1_000, "y" * 2_000)
    assert score({"name": "similarity", "options": {"method": "partial-ratio"}}, "the cat", "a cat sat").score > 0.5


def test_a_scorer_timeout_must_be_a_positive_whole_number_of_milliseconds() -> None:
    for bad in (0, -1, 1.5, "100", True, 3_600_001):
        with pytest.raises(InvalidRequestError, match="'timeoutMs'"):
            build_scorer({"name": "exact-match", "timeoutMs": bad}, None)
    assert build_scorer({"name": "exact-match", "timeoutMs": 250}, None).timeout_ms == 250
    assert build_scorer("exact-match", None).timeout_ms is None


def test_large_values_are_judged_off_the_event_loop() -> None:
    """While a built-in judges a large value, the loop that drives the run goes on."""
    huge = "a" * 20_000_000
    scorer = build_scorer({"name": "regex", "options": {"pattern": "(a|aa)*c"}}, None)

    async def run() -> tuple[float, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.create_task(tick())
        answer = await scorer.score(ScoreInput(input=None, output=huge, expected_output=None, metadata={}))
        ticker.cancel()
        return answer.score, ticks

    value, ticks = asyncio.run(run())
    assert value == 0.0 and ticks > 0


def test_off_loop_threads_are_daemons_and_a_stuck_call_does_not_hold_the_next() -> None:
    release = threading.Event()

    async def run() -> Any:
        stuck = asyncio.ensure_future(OFF_LOOP.run(release.wait))
        done, _ = await asyncio.wait({stuck}, timeout=0.1)
        assert not done  # the stuck call still runs ...
        answer = await asyncio.wait_for(OFF_LOOP.run(lambda: threading.current_thread().daemon), 2)
        release.set()
        await stuck
        return answer

    assert asyncio.run(run()) is True  # ... and the next call ran in another (daemon) thread
