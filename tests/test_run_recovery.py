"""A run survives the death of the service: after a SIGKILL mid-run and a restart, the
run completes, every (item, repetition) has exactly one result, and nothing recorded
before the crash is executed again."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import httpx
import service_process
from service_process import ServiceProcess
from waiting import wait_finished, wait_until

from evalledger.bootstrap import build_ledger
from evalledger.settings import Settings
from conftest import AUTH


def serve(settings: Settings, log: Path) -> ServiceProcess:
    return service_process.start(settings, "crash_app", env={"CRASH_APP_LOG": str(log)})


def recorded_keys(settings: Settings, run_id: str) -> set[str]:
    """What the event store says was recorded (the truth, whatever the read model holds)."""
    ledger = build_ledger(settings)
    try:
        return set(ledger.runs.get_run(UUID(run_id)).outcomes)
    finally:
        ledger.close()


def calls_by(log: Path, pid: int) -> list[str]:
    return [line.split()[1] for line in log.read_text().splitlines() if line.split()[0] == str(pid)]


def test_a_killed_run_resumes_without_repeating_recorded_items(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    log.touch()
    first = serve(settings, log)
    try:
        with httpx.Client(headers=AUTH, base_url=first.url, timeout=30) as http:
            dataset = http.post("/api/datasets", json={"name": "crash"}).json()
            for start in range(0, 2000, 1000):
                http.post(f"/api/datasets/{dataset['id']}/items/batch",
                          json={"items": [{"input": {"n": i}} for i in range(start, start + 1000)]}).raise_for_status()
            run = http.post(f"/api/datasets/{dataset['id']}/runs", json={
                "target": {"type": "registered", "name": "crash-noted-echo"},
                "scorers": ["exact-match"], "repetitions": 2, "maxConcurrency": 4,
            }).json()
            wait_until(lambda: http.get(f"/api/datasets/runs/{run['id']}").json()["progress"]["done"] >= 800,
                       "800 results recorded")
    finally:
        first.sigkill()

    before = recorded_keys(settings, run["id"])
    assert 0 < len(before) < 4000

    second = serve(settings, log)
    try:
        with httpx.Client(headers=AUTH, base_url=second.url, timeout=30) as http:
            state = wait_finished(http, run["id"], timeout=60)
            assert state["status"] == "completed"
            assert (state["succeededCount"], state["failedCount"]) == (4000, 0)
            keys = []
            for page in range(4):
                listing = http.get(f"/api/datasets/runs/{run['id']}/results",
                                   params={"page": page, "perPage": 1000}).json()
                keys += [f"{r['itemId']}#{r['repetition']}" for r in listing["results"]]
    finally:
        second.stop(timeout=30)

    assert len(keys) == len(set(keys)) == 4000
    repeated = before.intersection(calls_by(log, second.pid))
    assert not repeated, f"{len(repeated)} recorded results were executed again after the restart"
    assert len(calls_by(log, second.pid)) >= 4000 - len(before)
