"""Cancel reaches every worker within a second: a run's chunks execute on 3 workers at
once; once the cancel is answered, no worker starts another item of it more than a second
later. And a run with no worker alive says so, and goes on when one starts."""

from __future__ import annotations

import time
from pathlib import Path

from waiting import wait_until
from worker_process import running, start_serve, start_worker

from evalledger.settings import Settings

TARGET = {"type": "registered", "name": "cancel-slow-echo"}


def starts(log: Path) -> list[tuple[int, float]]:
    """(process id, wall-clock time) of every call started so far."""
    return [(int(pid), float(at)) for pid, _, at in (line.split() for line in log.read_text().splitlines())]


def test_cancel_reaches_every_worker_within_a_second(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "starts.log"
    log.touch()
    # Chunks of 20 items, so that 600 spread over the 3 workers (2 chunks at once each).
    env = {"CANCEL_APP_LOG": str(log), "EVALLEDGER_CHUNK_ITEMS": "20"}
    api = start_serve(settings, "cancel_app", options=["--no-worker"], env=env)
    env["EVALLEDGER_CREATE_TABLES"] = "n"
    workers = [start_worker(settings, "cancel_app", options=["--concurrency", "2"], env=env) for _ in range(3)]
    with running(api, *workers):
        client = api.client()
        dataset = client.create_dataset("cancelled across workers")
        client.add_items(dataset.id, [{"input": {"n": i}} for i in range(600)])
        run = client.create_run(dataset.id, target=TARGET, max_concurrency=6)
        pids = {worker.pid for worker in workers}
        wait_until(lambda: {pid for pid, _ in starts(log)} == pids, "every worker to execute items of the run", 60)

        cancelled = client.cancel_run(run.id, reason="enough")
        answered = time.time()
        assert cancelled.status == "cancelled"
        # Every worker was busy with the run right before the cancel...
        busy = {pid for pid, at in starts(log) if at > answered - 2}
        assert busy == pids, (busy, pids)
        # ...and none starts an item of it more than a second after (looked at for 3 s).
        time.sleep(3)
        late = sorted(round(at - answered, 2) for _, at in starts(log) if at > answered + 1.0)
        assert not late, f"items started this many seconds after the cancel: {late}"
        after = [round(at - answered, 2) for _, at in starts(log) if at > answered]
        final = client.get_run(run.id)
        assert final.status == "cancelled" and final.progress.done < 600
        assert all(worker.process.poll() is None for worker in workers)
    print(f"{len(after)} item(s) started after the cancel's answer, the last {max(after, default=0):.2f} s after")


def test_a_run_without_a_worker_says_why_and_goes_on_when_one_starts(settings: Settings, tmp_path: Path) -> None:
    """An API-only deployment with no worker alive: the run stays pending with a
    `statusReason` that says no worker runs and what to start; a worker that starts later
    takes it, and it completes."""
    log = tmp_path / "starts.log"
    log.touch()
    env = {"CANCEL_APP_LOG": str(log)}
    api = start_serve(settings, "cancel_app", options=["--no-worker"], env=env)
    with running(api):
        client = api.client()
        dataset = client.create_dataset("waiting for a worker")
        client.add_items(dataset.id, [{"input": {"n": i}} for i in range(5)])
        run = client.create_run(dataset.id, target=TARGET)
        waiting = client.request("GET", f"/api/datasets/runs/{run.id}")
        assert waiting["status"] == "pending", waiting
        assert "no worker is running" in waiting["statusReason"]["reason"], waiting
        assert "evalledger worker" in waiting["statusReason"]["reason"]
        time.sleep(1)
        assert log.read_text() == "", "nothing executes the run without a worker"

        env["EVALLEDGER_CREATE_TABLES"] = "n"
        with running(start_worker(settings, "cancel_app", env=env)):
            done = wait_until(lambda: (r := client.get_run(run.id)).status == "completed" and r, "the run to complete",
                              60)
            assert done.progress.done == 5
            assert "statusReason" not in client.request("GET", f"/api/datasets/runs/{run.id}")
