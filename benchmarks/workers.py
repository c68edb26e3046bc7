"""Worker scaling (issue 16): items/s of server-side runs against an I/O-bound target (it
waits 50 ms, benchmarks/sleep_target.py) with 1, 2 and 4 `evalledger worker` processes.

    DATABASE_URL=postgresql://... .venv/bin/python benchmarks/workers.py [--workers 1 2 4]
        [--runs 16] [--items 250] [--max-concurrency 4] [--repeat 1]

For each worker count, on a fresh schema (dropped afterwards): one API process
(`evalledger serve --no-worker`) and that many workers (`evalledger worker`, 4 chunk jobs
at once each); a dataset of `--items` items; then `--runs` runs started at once (each with
`maxConcurrency` `--max-concurrency`, one chunk each at the default chunk size), timed from
the first request until every run is completed: items/s = runs x items / seconds.

A worker holds at most 4 chunks at once, each executing up to its run's maxConcurrency
items, so with 16 runs of maxConcurrency 4 one worker has 16 calls in flight (at most
320 items/s with this target), four workers 64; the runs' limits hold across workers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from psycopg.sql import SQL, Identifier

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from workloads import ADMIN_KEY, AUTH, item  # noqa: E402

COMMAND = [sys.executable, "-m", "evalledger.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the API process did not start")
        time.sleep(0.1)


def wait_registered(env: dict[str, str], workers: int) -> None:
    """Until every worker has started and registered with the queue (on a loaded machine a
    worker can take several seconds to start: timing before would measure that)."""
    deadline = time.monotonic() + 120
    table = SQL("{}.procrastinate_workers").format(Identifier(env["EVALLEDGER_SCHEMA"]))
    while True:
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            row = conn.execute(SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        if row and row[0] >= workers:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {row[0] if row else 0} of {workers} workers registered")
        time.sleep(0.2)


def measure(env: dict[str, str], workers: int, runs: int, items: int, max_concurrency: int) -> dict[str, float]:
    port = free_port()
    api = subprocess.Popen([*COMMAND, "serve", "--no-worker", "--port", str(port), "--log-level", "warning",
                            "--app", "benchmarks.sleep_target"], env=env, cwd=ROOT.parent)
    processes = [api]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, api)
        # The tables exist (`migrate`): the workers start together, as a deployment's do.
        worker_env = {**env, "EVALLEDGER_CREATE_TABLES": "n"}
        for _ in range(workers):
            processes.append(subprocess.Popen([*COMMAND, "worker", "--log-level", "warning",
                                               "--app", "benchmarks.sleep_target"], env=worker_env, cwd=ROOT.parent))
        wait_registered(env, workers)
        with httpx.Client(base_url=url, timeout=600, headers=AUTH) as http:
            dataset = http.post("/api/datasets", json={"name": "workers-bench"}).json()
            http.post(f"/api/datasets/{dataset['id']}/items/batch",
                      json={"items": [item(i) for i in range(items)]}).raise_for_status()
            started = time.perf_counter()
            run_ids = []
            for _ in range(runs):
                response = http.post(f"/api/datasets/{dataset['id']}/runs", json={
                    "target": {"type": "registered", "name": "sleep-50ms"},
                    "scorers": [{"name": "exact-match", "options": {"field": "answer"}}],
                    "maxConcurrency": max_concurrency, "version": 1})
                response.raise_for_status()
                run_ids.append(response.json()["id"])
            pending = set(run_ids)
            while pending:
                for run_id in list(pending):
                    state = http.get(f"/api/datasets/runs/{run_id}").json()
                    if state["status"] in ("completed", "failed", "cancelled"):
                        assert state["status"] == "completed" and state["succeededCount"] == items, state
                        pending.discard(run_id)
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
        return {"workers": workers, "seconds": round(elapsed, 3), "itemsPerSecond": round(runs * items / elapsed)}
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--items", type=int, default=250)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="measurements per worker count (the median is kept)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT.parent))
    from evalledger.adapters import database

    data_dir = Path(os.environ.get("EVALLEDGER_DATA_DIR", ".evalledger/pg"))
    params = database.resolve(os.environ.get("DATABASE_URL"), data_dir)
    results = []
    for workers in args.workers:
        figures = []
        for _ in range(args.repeat):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            env = {**os.environ, "DATABASE_URL": params.url, "EVALLEDGER_SCHEMA": schema,
                   "EVALLEDGER_ADMIN_KEY": ADMIN_KEY, "EVALLEDGER_RATE_LIMIT": "off", "PYTHONPATH": str(ROOT.parent)}
            try:
                subprocess.run([*COMMAND, "migrate"], env=env, cwd=ROOT.parent, check=True, capture_output=True)
                figure = measure(env, workers, args.runs, args.items, args.max_concurrency)
            finally:
                with psycopg.connect(params.conninfo, autocommit=True) as conn:
                    conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))
            print(json.dumps(figure), flush=True)
            figures.append(figure["itemsPerSecond"])
        results.append({"workers": workers, "itemsPerSecond": statistics.median(figures), "each": figures})
    base = results[0]["itemsPerSecond"]
    for result in results:
        result["speedup"] = round(result["itemsPerSecond"] / base, 2)
    print(json.dumps({"runs": args.runs, "items": args.items, "maxConcurrency": args.max_concurrency,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
