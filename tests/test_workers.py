"""Runs spread over several worker processes on one database, behind several API processes.

- 2 API processes (--no-worker) and 3 workers; 5 runs of 500 items started through both
  APIs; a worker SIGKILLed in the middle and another started: every run completes with
  exactly one result per item, and no item recorded before the kill is executed again.
- A run's maxConcurrency holds across 3 workers: the calls in flight, counted across the
  processes, never exceed it.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from uuid import UUID

from waiting import wait_until
from worker_process import NOTED_ECHO, Process, running, start_deployment, start_echo_runs, start_worker
from workers_app import highest_in_flight

from evalledger.bootstrap import build_ledger
from evalledger.settings import Settings

def recorded_keys(settings: Settings, run_ids: list[str]) -> dict[str, set[str]]:
    """What the event store says is recorded (the truth, whatever a read model holds)."""
    ledger = build_ledger(settings)
    try:
        return {run_id: set(ledger.runs.get_run(UUID(run_id)).outcomes) for run_id in run_ids}
    finally:
        ledger.close()


def calls(log: Path) -> list[tuple[int, str]]:
    return [(int(pid), key) for pid, key in (line.split() for line in log.read_text().splitlines())]


def test_runs_spread_over_workers_and_survive_one_being_killed(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    log.touch()
    # Chunks of 50 items (the default is at least 250), so that 500 items spread over 3 workers.
    env = {"WORKERS_APP_LOG": str(log), "WORKERS_APP_SECONDS": "0.01", "EVALLEDGER_WORKER_STALLED_SECONDS": "5",
           "EVALLEDGER_CHUNK_ITEMS": "50"}
    apis, workers = start_deployment(settings, "workers_app", env, apis=2, workers=3, concurrency=2)
    late: list[Process] = []
    with running(*apis, *workers):
        clients = [api.client() for api in apis]
        run_ids = start_echo_runs(clients, runs=5, items=500, name="spread", max_concurrency=8)

        def done() -> int:
            return sum(clients[0].get_run(run_id).progress.done for run_id in run_ids)

        wait_until(lambda: done() >= 600, "600 results recorded", 60)
        victim = workers[1]
        victim.sigkill()
        killed_at = time.monotonic()
        before = recorded_keys(settings, run_ids)
        late.append(start_worker(settings, "workers_app", options=["--concurrency", "2"], env=env))
        try:
            for n, run_id in enumerate(run_ids):
                finished = wait_until(lambda: (r := clients[n % 2].get_run(run_id)).status == "completed" and r,
                                      f"run {run_id} to complete", 90)
                assert (finished.succeeded_count, finished.failed_count) == (500, 0)
            took = time.monotonic() - killed_at
            assert all(process.process.poll() is None for process in (*apis, *workers, *late) if process is not victim)
        finally:
            late[0].stop()

    after = recorded_keys(settings, run_ids)
    assert all(len(keys) == 500 for keys in after.values())
    made = calls(log)
    by_process = Counter(pid for pid, _ in made)
    assert len(by_process) >= 3, by_process  # the work was spread over the workers
    assert by_process[victim.pid] > 0
    executed = Counter(key for _, key in made)
    recorded_before = set().union(*before.values())
    assert 0 < len(recorded_before) < 2500
    again = [key for key in recorded_before if executed[key] > 1]
    assert not again, f"{len(again)} results recorded before the kill were executed again"
    assert set(executed) == set().union(*after.values())
    print(f"{len(recorded_before)} recorded at the kill; all completed {took:.1f} s after it; calls by process: "
          f"{dict(by_process)}")


def test_a_runs_max_concurrency_holds_across_three_workers(settings: Settings, tmp_path: Path) -> None:
    log, gauge = tmp_path / "calls.log", tmp_path / "gauge"
    log.touch()
    env = {"WORKERS_APP_LOG": str(log), "WORKERS_APP_GAUGE": str(gauge), "WORKERS_APP_SECONDS": "0.02",
           "EVALLEDGER_CHUNK_ITEMS": "25"}
    [api], workers = start_deployment(settings, "workers_app", env, apis=1, workers=3, concurrency=4)
    with running(api, *workers):
        client = api.client()
        dataset = client.create_dataset("capped")
        client.add_items(dataset.id, [{"input": {"n": i}} for i in range(300)])
        run = client.create_run(dataset.id, target=NOTED_ECHO, max_concurrency=3)
        finished = wait_until(lambda: (r := client.get_run(run.id)).status == "completed" and r, "the run", 60)
        assert finished.succeeded_count == 300
        assert all(worker.process.poll() is None for worker in workers)
    highest = highest_in_flight(str(gauge))
    pids = Counter(pid for pid, _ in calls(log))
    print(f"at most {highest} calls in flight; calls by process: {dict(pids)}")
    assert highest <= 3
    assert highest == 3  # the run used what it may
    assert len(pids) >= 2, pids
