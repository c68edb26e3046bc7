"""Read models with several API processes on one database: each read model is applied in
the background by one process (its leader, holding an advisory lock), the others apply
only the writes they answer; a write answered by one process reads back at once through
another; when the leader is SIGKILLed another process takes over within seconds and
applies what was written meanwhile. (A process takes seconds to start on a busy machine:
each test starts its two together.)"""

from __future__ import annotations

import subprocess
import time
from uuid import uuid4

import httpx
import psycopg
from conftest import free_port
from service_process import COMMAND
from waiting import wait_until
from worker_process import Process, environment, running

from evalledger import Client
from evalledger.client import ApiError
from evalledger.adapters import database
from evalledger.bootstrap import build_ledger
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import NewItem
from evalledger.settings import Settings

READ_MODELS = ("datasets", "runs")


def leads(process: Process) -> set[str]:
    """The read models the process says (on /health, without a key) it leads."""
    health = httpx.get(f"{process.url}/health", timeout=10).json()
    return {p["name"] for p in health["projections"] if p["leader"]}


def lock_holders(database_url: str, settings: Settings) -> dict[str, list[str]]:
    """Per read model, the application_name of every session holding its leadership lock
    (what PostgreSQL says, whatever the processes say)."""
    ledger = build_ledger(settings, create_tables=False)
    try:
        keys = {follower.name: follower.view.leader_key for follower in ledger.followers}
    finally:
        ledger.close()
    with psycopg.connect(database.parse_database_url(database_url).conninfo) as conn:
        rows = conn.execute(
            "SELECT ((l.classid::bigint << 32) | l.objid::bigint) AS key, a.application_name FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.objsubid = 1").fetchall()
    return {name: sorted(app for k, app in rows if k == key) for name, key in keys.items()}


def start_apis(settings: Settings, names: list[str]) -> list[Process]:
    """An API process (--no-worker) per name (its PGAPPNAME), all started at once (each
    creates the tables, one at a time); once every one answers /health."""
    processes = []
    try:
        for name in names:
            port = free_port()
            command = [*COMMAND, "serve", "--no-worker", "--port", str(port), "--log-level", "warning"]
            processes.append(Process(subprocess.Popen(command, env=environment(settings, {"PGAPPNAME": name})),
                                     f"http://127.0.0.1:{port}"))
        for process in processes:
            wait_until(lambda: answers(process), "the API processes to answer /health", 60, 0.1)
    except BaseException:
        for process in processes:
            process.stop()
        raise
    return processes


def answers(process: Process) -> bool:
    assert process.process.poll() is None, f"the service exited with {process.process.returncode}"
    try:
        return httpx.get(f"{process.url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def one_leader_each(processes: list[Process]) -> list[set[str]] | None:
    """What each process leads, once each read model has exactly one leader among them."""
    led = [leads(p) for p in processes]
    return led if sorted(m for models in led for m in models) == sorted(READ_MODELS) else None


def written_then_read(writer: Client, reader: Client, n: int) -> None:
    """Each write through `writer` is read through `reader` right after its answer, no waiting."""
    dataset = writer.create_dataset(f"across {n}")
    assert reader.get_dataset(dataset.id).name == f"across {n}"
    writer.add_items(dataset.id, [{"input": {"n": n, "i": i}, "expectedOutput": i} for i in range(3)])
    seen = reader.get_dataset(dataset.id)
    assert (seen.item_count, seen.version) == (3, 1)
    run = writer.create_run(dataset.id, scorers=["quality"])
    assert reader.get_run(run.id).status == "pending"
    items = reader.list_items(dataset.id).items
    writer.submit_results(run.id, [{"itemId": str(items[0].id), "output": 0,
                                    "scores": [{"scorerId": "quality", "score": 1}]}])
    assert reader.get_run(run.id).progress.done == 1


def test_one_process_leads_each_read_model_and_writes_read_back_across_processes(
        database_url: str, settings: Settings) -> None:
    names = [f"lead-{uuid4().hex[:8]}" for _ in range(2)]
    with running(*start_apis(settings, names)) as processes:
        led = wait_until(lambda: one_leader_each(list(processes)), "each read model to have one leader")
        holders = lock_holders(database_url, settings)
        for model in READ_MODELS:
            leader = next(n for n, models in zip(names, led, strict=True) if model in models)
            assert holders[model] == [leader], (model, holders)

        a, b = (p.client() for p in processes)
        for n in range(15):
            written_then_read(a, b, 2 * n)
            written_then_read(b, a, 2 * n + 1)
        assert [leads(p) for p in processes] == led  # leadership does not move while both live


def test_when_the_leader_is_killed_another_process_takes_over_within_seconds(
        database_url: str, settings: Settings) -> None:
    names = [f"lead-{uuid4().hex[:8]}" for _ in range(2)]
    with running(*start_apis(settings, names)) as processes:
        led = wait_until(lambda: one_leader_each(list(processes)), "each read model to have one leader")
        # The leader of the datasets read model dies (if the other process leads the runs
        # read model, it goes on leading it).
        first, second = processes if "datasets" in led[0] else processes[::-1]
        survivor_name = names[processes.index(second)]
        ledger = build_ledger(settings, create_tables=False)
        try:
            first.sigkill()
            killed = time.monotonic()
            # Written while no process follows the log, and applied by no one (the command's
            # own catch-up is left out): only a new leader brings it into the read model.
            dataset_id = ledger.datasets.create_dataset(name="while no one followed").aggregate_id
            ledger.datasets.add_items(dataset_id, [NewItem(ItemContent({"i": i}, None, {})) for i in range(4)])
        finally:
            ledger.close()

        wait_until(lambda: leads(second) == set(READ_MODELS), "the second process to take over", 15)
        took = time.monotonic() - killed
        survivor = second.client()

        def applied() -> bool:
            try:
                return survivor.get_dataset(dataset_id).item_count == 4
            except ApiError as error:
                assert error.status == 404, error
                return False

        wait_until(applied, "the new leader to apply what was written meanwhile", 10)
        assert survivor.get_dataset(dataset_id).name == "while no one followed"
        assert lock_holders(database_url, settings) == {model: [survivor_name] for model in READ_MODELS}

    print(f"took over {took:.1f} s after the leader was killed")
