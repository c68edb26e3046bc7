"""Live progress of an executing run: the rate counts only the results this process
recorded since it (re)started the run, and `fraction` always agrees with done / total."""

from __future__ import annotations

from typing import Any

import httpx
import service_process
from progress_app import ITEM_SECONDS
from waiting import wait_until

from evalledger.execution.progress import Progress
from evalledger.settings import Settings
from conftest import AUTH


def test_the_rate_counts_only_results_since_the_resume_and_fraction_matches_done() -> None:
    progress = Progress()
    progress.resume(done=900, failed=10)
    progress.started -= 2.0  # two seconds since the resume ...
    progress.done += 20  # ... and 20 results in them
    live = progress.snapshot(total=1000)
    assert live.done == 920 and live.failed == 10 and live.total == 1000
    assert 9.5 <= live.items_per_second <= 10.0
    assert live.fraction == 0.92
    assert 7.5 <= live.eta_seconds <= 8.5
    assert Progress().snapshot(total=0).fraction == 1.0


def test_a_resumed_run_shows_its_own_rate_and_a_consistent_fraction(settings: Settings) -> None:
    first = service_process.start(settings, "progress_app")
    try:
        with httpx.Client(headers=AUTH, base_url=first.url, timeout=30) as http:
            dataset = http.post("/api/datasets", json={"name": "progress"}).json()
            http.post(f"/api/datasets/{dataset['id']}/items/batch",
                      json={"items": [{"input": {"n": n}} for n in range(400)]}).raise_for_status()
            run = http.post(f"/api/datasets/{dataset['id']}/runs", json={
                "target": {"type": "registered", "name": "progress-slow-echo"}, "maxConcurrency": 1}).json()
            wait_until(lambda: http.get(f"/api/datasets/runs/{run['id']}").json()["progress"]["done"] >= 40,
                       "40 items done")
    finally:
        first.sigkill()

    second = service_process.start(settings, "progress_app")
    seen: list[dict[str, Any]] = []
    try:
        with httpx.Client(headers=AUTH, base_url=second.url, timeout=30) as http:

            def sample() -> bool:
                progress = http.get(f"/api/datasets/runs/{run['id']}").json()["progress"]
                if progress.get("live"):
                    seen.append(progress)
                return len(seen) >= 10

            wait_until(sample, "10 live progress readings", interval=0.1)
            http.post(f"/api/datasets/runs/{run['id']}/cancel")
    finally:
        second.stop(timeout=30)
    assert seen[-1]["done"] >= 40
    for progress in seen:
        assert progress["fraction"] == progress["done"] / progress["total"], progress
        # One item at a time, ITEM_SECONDS each: never faster than that (with slack for timing).
        assert progress["itemsPerSecond"] <= 1.5 / ITEM_SECONDS, progress
