"""The DESIGN.md benchmark workloads, against a real service process over HTTP.

    .venv/bin/python benchmarks/workloads.py --n 1000 10000 [--keep] [--skip-edits-log | --edits-log-only]

Starts `evalledger serve` on a fresh schema (DATABASE_URL if set, else the embedded
PostgreSQL), then per N:
  W1 ingest   create a dataset, add N items in batches of 1,000; items/s until listable
  W2 edits    200 distinct items updated one at a time: median / p95 over HTTP, and the
              in-process command (write acknowledged and visible to reads) on a dataset of N
              items, measured first, before the service process starts
  W3 travel   list every item as of the version right after W1, pages of 100: total,
              median, p95 and last-page latency; one item as of that version; one history
  W4 run      run all N items against the W4 target (in-process, registered), exact-match
              on `answer`, concurrency 16: items/s until completed and all results readable
  W4c submit  caller-driven run: 16 clients in flight, one result per request; results/s
              acknowledged (each acknowledged only once durable and readable)
  IO          a CSV of W1's N items imported into a new dataset (one version) and the
              dataset exported again as CSV: seconds each, and the service's RSS growth
  W5 compare  a second W4 run with even/odd flipped; compare the two runs (and time the
              analytics of one): latency
  W7 pages    the web UI's dataset page (first, middle, last page, a search) at that
              version, and a run's page, results and analytics (medians of 5)
  W6 replay   right after W4, in this process, on the log so far: every projection rebuilt
              through the function `evalledger projections rebuild` runs (the service keeps
              serving and switches over), events/s and rows/s; then every dataset and run
              checked as `evalledger audit verify` does (replay and compare with the read
              models), its replay alone (events read, decoded and applied), and the same
              replay through the application repository (best of three): events/s
plus the service's peak RSS and the database size afterwards. Once per invocation, W6 also
runs on a log of single edits in a schema of its own (the edits log: ten 1,000-item
batches, then 5,000 single-item edits of distinct items, and a caller-driven run whose
1,000 results come one per event; `--edits` and `--results` make it longer), where the cost
per event dominates. Results go to
stdout and to benchmarks/results/<timestamp>.json (the edits log's to <timestamp>-edits.json).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import psycopg
from psycopg.sql import SQL, Identifier

ROOT = Path(__file__).resolve().parent
CONTEXT = "c" * 200
# The benchmark's service takes this instance admin key, and every request sends it. Its rate
# limit is off: the workloads send far more than the default 100 requests/s of one key.
ADMIN_KEY = "benchmark-admin-key-" + "0123456789abcdef" * 2
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def item(i: int) -> dict[str, Any]:
    return {
        "input": {"question": f"q{i}", "context": CONTEXT},
        "expectedOutput": {"answer": f"a{i}"},
        "metadata": {"i": i, "split": "test" if i % 5 == 0 else "train"},
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Service:
    """`evalledger serve` in a child process, with its peak RSS sampled."""

    def __init__(self, env: dict[str, str]) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        command = [sys.executable, "-m", "evalledger.cli", "serve", "--port", str(self.port), "--log-level", "warning",
                   "--app", "benchmarks.w4_target"]
        self.process = subprocess.Popen(command, env=env, cwd=ROOT.parent)
        self.url = f"http://127.0.0.1:{self.port}"
        self.peak_rss = 0
        self._sampling = True
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the service did not start")
            time.sleep(0.1)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        proc = psutil.Process(self.process.pid)
        while self._sampling:
            try:
                self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self._sampling = False
        self.process.terminate()
        self.process.wait(timeout=30)


def w1_ingest(http: httpx.Client, n: int) -> tuple[str, dict[str, Any]]:
    started = time.perf_counter()
    dataset = http.post("/api/datasets", json={"name": f"bench-{n}"}).json()
    batches = []
    for first in range(0, n, 1000):
        body = orjson.dumps({"items": [item(i) for i in range(first, min(n, first + 1000))]})
        t = time.perf_counter()
        response = http.post(f"/api/datasets/{dataset['id']}/items/batch", content=body,
                             headers={"Content-Type": "application/json"})
        response.raise_for_status()
        batches.append(time.perf_counter() - t)
    listed = http.get(f"/api/datasets/{dataset['id']}/items", params={"perPage": 1}).json()
    elapsed = time.perf_counter() - started
    assert listed["pagination"]["total"] == n, listed["pagination"]
    return dataset["id"], {"items": n, "seconds": round(elapsed, 3), "itemsPerSecond": round(n / elapsed),
                           "batchMedianMs": ms(statistics.median(batches))}


def all_item_ids(http: httpx.Client, dataset_id: str, version: int, count: int) -> list[str]:
    ids: list[str] = []
    for page in range(0, (count + 999) // 1000):
        listing = http.get(f"/api/datasets/{dataset_id}/items",
                           params={"version": version, "page": page, "perPage": 1000}).json()
        ids += [i["id"] for i in listing["items"]]
    return ids


def w2_edits(http: httpx.Client, dataset_id: str, item_ids: list[str]) -> dict[str, Any]:
    latencies = []
    for k, item_id in enumerate(item_ids[:200]):
        body = orjson.dumps({"input": {"question": f"edited {k}", "context": CONTEXT}})
        t = time.perf_counter()
        response = http.patch(f"/api/datasets/{dataset_id}/items/{item_id}", content=body,
                              headers={"Content-Type": "application/json"})
        latencies.append(time.perf_counter() - t)
        response.raise_for_status()
    return {"edits": len(latencies), "medianMs": ms(statistics.median(latencies)),
            "p95Ms": ms(percentile(latencies, 0.95))}


def w2_in_process(settings_env: dict[str, str], n: int) -> dict[str, Any]:
    """The command in this process: write acknowledged and visible to reads."""
    os.environ.update(settings_env)
    from evalledger.bootstrap import build_ledger
    from evalledger.domain.content import ItemContent
    from evalledger.domain.datasets import ItemChange, NewItem
    from evalledger.settings import Settings

    ledger = build_ledger(Settings.from_env())
    try:
        written = ledger.datasets.create_dataset(name=f"in-process-{n}")
        ledger.read_your_writes(written)
        dataset_id = written.aggregate_id
        ids: list[str] = []
        for first in range(0, n, 1000):
            batch = [NewItem(content=ItemContent(x["input"], x["expectedOutput"], x["metadata"]))
                     for x in (item(i) for i in range(first, min(n, first + 1000)))]
            written = ledger.datasets.add_items(dataset_id, batch)
            ledger.read_your_writes(written)
            ids += [i.id for i in written.items]
        latencies = []
        for k, item_id in enumerate(ids[:200]):
            change = ItemChange(item_id=item_id, input={"question": f"edited {k}", "context": CONTEXT},
                                fields=frozenset({"input"}))
            t = time.perf_counter()
            written = ledger.datasets.update_items(dataset_id, [change])
            ledger.read_your_writes(written)
            latencies.append(time.perf_counter() - t)
        visible = ledger.dataset_queries.get_item(dataset_id, uuid.UUID(ids[199]), written.dataset_version)
        assert visible.input["question"] == "edited 199"
        return {"edits": len(latencies), "medianMs": ms(statistics.median(latencies)),
                "p95Ms": ms(percentile(latencies, 0.95))}
    finally:
        ledger.close()


# A version bound makes the repository replay an aggregate from its events (no cache).
EVERY_VERSION = 2**63 - 1


def w6_rebuild_replay(settings_env: dict[str, str]) -> dict[str, Any]:
    """W6 on the log in `settings_env`'s schema: rebuild, audit, replay."""
    os.environ.update(settings_env)
    from evalledger.audit import all_dataset_ids, all_run_ids, verify_dataset, verify_run
    from evalledger.bootstrap import build_ledger
    from evalledger.projections.follower import gc_paused
    from evalledger.projections.rebuild import rebuild
    from evalledger.settings import Settings

    settings = Settings.from_env()
    ledger = build_ledger(settings)
    try:
        rows = {"datasets": "dataset_items", "runs": "run_results"}
        rebuilt = {}
        for follower in ledger.followers:  # three times each: the best, and all three
            reports = [rebuild(follower, ledger.connection) for _ in range(3)]
            best = min(reports, key=lambda report: report.seconds)
            written = table_rows(ledger.connection.conninfo, settings.schema, rows[follower.name])
            rebuilt[follower.name] = {
                "events": best.events, "seconds": best.seconds, "eventsPerSecond": best.events_per_second,
                "allSeconds": [report.seconds for report in reports],
                rows[follower.name]: written, "rowsPerSecond": round(written / best.seconds),
            }
        datasets, runs = all_dataset_ids(ledger), all_run_ids(ledger)
        started = time.perf_counter()
        findings = [f for d in datasets for f in verify_dataset(ledger, d)]
        findings += [f for r in runs for f in verify_run(ledger, r)]
        audit_seconds = time.perf_counter() - started
        assert not findings, [str(f) for f in findings[:5]]
        aggregates = [(ledger.datasets, d) for d in datasets] + [(ledger.runs, r) for r in runs]

        def replay() -> int:  # the audit's replay alone: read, decode and apply each aggregate's events
            events = 0
            with gc_paused():
                for app, aggregate_id in aggregates:
                    aggregate = None
                    for event in app.events.get(aggregate_id):
                        aggregate = event.mutate(aggregate)
                        events += 1
            return events

        def repository_replay() -> int:  # the same through the library's repository (its projector)
            with gc_paused():
                return sum(app.repository.get(aggregate_id, version=EVERY_VERSION).version
                           for app, aggregate_id in aggregates)

        events, replay_seconds = best_of_three(replay)
        replayed, repository_seconds = best_of_three(repository_replay)
        assert replayed == events, (replayed, events)
        return {
            "rebuild": rebuilt,
            "audit": {"datasets": len(datasets), "runs": len(runs), "events": events,
                      "seconds": round(audit_seconds, 3), "eventsPerSecond": round(events / audit_seconds)},
            "replay": {"events": events, "seconds": round(replay_seconds, 3),
                       "eventsPerSecond": round(events / replay_seconds)},
            "repositoryReplay": {"events": events, "seconds": round(repository_seconds, 3),
                                 "eventsPerSecond": round(events / repository_seconds)},
        }
    finally:
        ledger.close()


def best_of_three(measured: Any) -> tuple[Any, float]:
    """`measured()`'s answer and its shortest time of three runs."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        answer = measured()
        times.append(time.perf_counter() - started)
    return answer, min(times)


def edits_log(settings_env: dict[str, str], *, items: int = 10_000, edits: int = 5_000,
              results: int = 1_000) -> dict[str, Any]:
    """Write the edits log in this process (ten 1,000-item batches, then `edits` single-item
    edits of distinct items; a caller-driven run recording `results` results one per
    event), then run W6 on it."""
    os.environ.update(settings_env)
    from evalledger.bootstrap import build_ledger
    from evalledger.domain.content import ItemContent
    from evalledger.domain.datasets import ItemChange, NewItem
    from evalledger.domain.runs import RunSettings
    from evalledger.settings import Settings

    ledger = build_ledger(Settings.from_env())  # not started: the projections see the log at W6
    try:
        started = time.perf_counter()
        dataset_id = ledger.datasets.create_dataset(name="edits-log").aggregate_id
        ids: list[str] = []
        for first in range(0, items, 1000):
            batch = [NewItem(content=ItemContent(x["input"], x["expectedOutput"], x["metadata"]))
                     for x in (item(i) for i in range(first, min(items, first + 1000)))]
            ids += [i.id for i in ledger.datasets.add_items(dataset_id, batch).items]
        for k in range(edits):
            change = ItemChange(item_id=ids[k % len(ids)], input={"question": f"edited {k}", "context": CONTEXT},
                                fields=frozenset({"input"}))
            ledger.datasets.update_items(dataset_id, [change])
        run_id = uuid.uuid4()
        ledger.runs.create_run(run_id=run_id, dataset_id=dataset_id, dataset_version=items // 1000, target=None,
                               scorers=[], settings=RunSettings(), name="edits-log", metadata={}, total_items=items)
        for k in range(results):
            ledger.runs.record_results(run_id, [{"itemId": ids[k], "output": {"answer": f"a{k}"},
                                                 "scores": [{"scorerId": "exact", "score": float(k % 2)}]}],
                                       upsert=True, actor="caller")
        ledger.runs.finish_run(run_id)
        written = round(time.perf_counter() - started, 1)
    finally:
        ledger.close()
    return {"log": {"items": items, "edits": edits, "results": results, "writeSeconds": written},
            **w6_rebuild_replay(settings_env)}


def table_rows(conninfo: str, schema: str, table: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(SQL("SELECT count(*) FROM {}.{}").format(Identifier(schema), Identifier(table))).fetchone()
        return int(row[0]) if row else 0


def w3_time_travel(http: httpx.Client, dataset_id: str, version: int, n: int, item_id: str) -> dict[str, Any]:
    pages = (n + 99) // 100
    latencies = []
    seen = 0
    started = time.perf_counter()
    for page in range(pages):
        t = time.perf_counter()
        listing = http.get(f"/api/datasets/{dataset_id}/items",
                           params={"version": version, "page": page, "perPage": 100}).json()
        latencies.append(time.perf_counter() - t)
        seen += len(listing["items"])
    total = time.perf_counter() - started
    assert seen == n, (seen, n)
    t = time.perf_counter()
    one = http.get(f"/api/datasets/{dataset_id}/items/{item_id}", params={"version": version})
    one_ms = ms(time.perf_counter() - t)
    one.raise_for_status()
    t = time.perf_counter()
    history = http.get(f"/api/datasets/{dataset_id}/items/{item_id}/history")
    history_ms = ms(time.perf_counter() - t)
    history.raise_for_status()
    return {"pages": pages, "totalSeconds": round(total, 3), "firstPageMs": ms(latencies[0]),
            "medianPageMs": ms(statistics.median(latencies)), "p95PageMs": ms(percentile(latencies, 0.95)),
            "lastPagesMedianMs": ms(statistics.median(latencies[-10:])), "oneItemMs": one_ms,
            "historyMs": history_ms}


def w4_run(http: httpx.Client, dataset_id: str, n: int, target: str = "w4-target") -> dict[str, Any]:
    started = time.perf_counter()
    run = http.post(f"/api/datasets/{dataset_id}/runs", json={
        "target": {"type": "registered", "name": target},
        "scorers": [{"name": "exact-match", "options": {"field": "answer"}}],
        "maxConcurrency": 16, "version": n // 1000,
    }).json()
    while True:
        state = http.get(f"/api/datasets/runs/{run['id']}").json()
        if state["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.02)
    readable = 0
    page = 0
    while True:
        listing = http.get(f"/api/datasets/runs/{run['id']}/results", params={"page": page, "perPage": 1000}).json()
        readable += sum(1 for r in listing["results"] if r["scores"])
        if not listing["pagination"]["hasMore"]:
            break
        page += 1
    elapsed = time.perf_counter() - started
    assert state["status"] == "completed" and readable == n, (state["status"], readable)
    return {"items": n, "seconds": round(elapsed, 3), "itemsPerSecond": round(n / elapsed),
            "succeeded": state["succeededCount"], "runId": run["id"]}


def w5_compare(http: httpx.Client, dataset_id: str, n: int, baseline: str) -> dict[str, Any]:
    candidate = w4_run(http, dataset_id, n, target="w5-target")["runId"]
    compare, analytics = [], []
    for _ in range(5):
        t = time.perf_counter()
        result = http.post("/api/datasets/compare", json={"runIdA": baseline, "runIdB": candidate})
        compare.append(time.perf_counter() - t)
        result.raise_for_status()
        t = time.perf_counter()
        http.get(f"/api/datasets/runs/{baseline}/analytics").raise_for_status()
        analytics.append(time.perf_counter() - t)
    block = result.json()["scorers"]["exact-match"]
    assert result.json()["pairedItems"] == n and block["regressed"] == n // 2 and block["improved"] == n // 2
    return {"compareMedianMs": ms(statistics.median(compare)), "compareMaxMs": ms(max(compare)),
            "analyticsMedianMs": ms(statistics.median(analytics)), "analyticsMaxMs": ms(max(analytics)),
            "verdict": block["verdict"], "pValue": block["pValue"]}


def w4_caller_driven(url: str, dataset_id: str, item_ids: list[str], clients: int = 16) -> dict[str, Any]:
    """16 requests in flight, one result per request, each answered only once durable.
    The load comes from wrk (C, no GIL: the numbers are the service's) when it is installed,
    else from one asyncio httpx client in this process (which competes for the CPU)."""
    with httpx.Client(base_url=url, headers=AUTH) as http:
        run = http.post(f"/api/datasets/{dataset_id}/runs", json={"version": len(item_ids) // 1000}).json()
    target = f"{url}/api/datasets/runs/{run['id']}/results"
    if shutil.which("wrk"):
        report = _submit_with_wrk(target, item_ids, clients)
    else:
        report = _submit_with_httpx(target, item_ids, clients)
    with httpx.Client(base_url=url, headers=AUTH) as http:
        final = http.post(f"/api/datasets/runs/{run['id']}/finalize").json()
    # Every acknowledged result is recorded (plus those in flight when the load stopped).
    acknowledged = min(report["results"], len(item_ids))
    assert acknowledged <= final["succeededCount"] <= acknowledged + clients, (final, report)
    return {**report, "clients": clients}


def _submit_with_wrk(target: str, item_ids: list[str], clients: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as ids:
        ids.write("\n".join(item_ids))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", "-d5s", "-H", f"Authorization: Bearer {ADMIN_KEY}",
         "-s", str(ROOT / "submit.lua"), target],
        env={**os.environ, "ITEM_IDS": ids.name}, capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(ids.name)
    _, requests, bad_status, socket_errors, micros, median, p95 = next(
        line for line in out.splitlines() if line.startswith("WRK ")
    ).split()
    assert int(bad_status) == 0 and int(socket_errors) == 0, out
    seconds = int(micros) / 1e6
    return {"loadGenerator": "wrk", "results": int(requests), "seconds": round(seconds, 3),
            "resultsPerSecond": round(int(requests) / seconds), "medianMs": float(median), "p95Ms": float(p95)}


def _submit_with_httpx(target: str, item_ids: list[str], clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []

    async def submit_all() -> None:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=60, limits=limits, headers=AUTH) as http:
            async def submit(chunk: list[str]) -> None:
                for item_id in chunk:
                    body = orjson.dumps({"results": [{"itemId": item_id, "output": {"answer": "x"},
                                                      "scores": [{"scorerId": "exact", "score": 1.0}]}]})
                    t = time.perf_counter()
                    response = await http.post(target, content=body, headers={"Content-Type": "application/json"})
                    latencies.append(time.perf_counter() - t)
                    if response.status_code != 200:
                        failures.append(response.text)

            await asyncio.gather(*(submit(item_ids[k::clients]) for k in range(clients)))

    started = time.perf_counter()
    asyncio.run(submit_all())
    elapsed = time.perf_counter() - started
    assert not failures, failures[:3]
    return {"loadGenerator": "httpx (in the benchmark process)", "results": len(item_ids),
            "seconds": round(elapsed, 3), "resultsPerSecond": round(len(item_ids) / elapsed),
            "medianMs": ms(statistics.median(latencies)), "p95Ms": ms(percentile(latencies, 0.95))}


def io_import_export(http: httpx.Client, service: Service, n: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "context", "expectedOutput", "metadata"])
        for i in range(n):
            x = item(i)
            writer.writerow([x["input"]["question"], x["input"]["context"], orjson.dumps(x["expectedOutput"]).decode(),
                             orjson.dumps(x["metadata"]).decode()])
        path = Path(handle.name)
    try:
        dataset = http.post("/api/datasets", json={"name": f"import-{n}"}).json()
        rss_before = psutil.Process(service.process.pid).memory_info().rss
        service.peak_rss = rss_before
        started = time.perf_counter()
        with path.open("rb") as body:
            response = http.post(f"/api/datasets/{dataset['id']}/items/import", content=body,
                                 params={"filename": "w1.csv", "map": ["question=input", "context=input"]},
                                 headers={"Content-Type": "text/csv"})
        imported = time.perf_counter() - started
        assert response.status_code == 201 and response.json()["added"] == n, response.text[:300]
        peak = service.peak_rss
        started = time.perf_counter()
        size = 0
        with http.stream("GET", f"/api/datasets/{dataset['id']}/items/export", params={"format": "csv"}) as out:
            for chunk in out.iter_bytes():
                size += len(chunk)
        exported = time.perf_counter() - started
        return {"rows": n, "fileMB": round(path.stat().st_size / 2**20, 1), "importSeconds": round(imported, 3),
                "exportSeconds": round(exported, 3), "exportMB": round(size / 2**20, 1),
                "serviceRssGrowthMB": round((peak - rss_before) / 2**20, 1)}
    finally:
        path.unlink()


def w7_pages(http: httpx.Client, dataset_id: str, version: int, n: int, run_id: str | None) -> dict[str, Any]:
    """The web UI's heaviest pages, as a browser asks for them (HTML over HTTP): the dataset
    page at the version right after W1 (first, middle and last page of items, and a search),
    and a run's page with its results and its analytics fragment. Medians of 5."""

    def timed(path: str, **params: Any) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            response = http.get(path, params=params)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return ms(statistics.median(times))

    per_page = 25
    last = max(0, (n - 1) // per_page)
    report: dict[str, Any] = {
        "datasetFirstPageMs": timed(f"/datasets/{dataset_id}", version=version),
        "datasetMiddlePageMs": timed(f"/datasets/{dataset_id}", version=version, page=last // 2),
        "datasetLastPageMs": timed(f"/datasets/{dataset_id}", version=version, page=last),
        "datasetSearchMs": timed(f"/datasets/{dataset_id}", version=version, search="q7"),
    }
    if run_id is not None:
        report["runPageMs"] = timed(f"/runs/{run_id}")
        report["runAnalyticsMs"] = timed(f"/runs/{run_id}/analytics")
        report["runResultsLastPageMs"] = timed(f"/runs/{run_id}", page=max(0, (n - 1) // 50))
        report["runSortedByScoreMs"] = timed(f"/runs/{run_id}", sort="-score")
    return report


def database_size(conninfo: str, schema: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchone()
        return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--keep", action="store_true", help="keep the benchmark schema")
    parser.add_argument("--skip-run", action="store_true", help="skip W4")
    parser.add_argument("--skip-edits-log", action="store_true", help="skip W6 on the edits log")
    parser.add_argument("--edits-log-only", action="store_true", help="only W6 on the edits log (no service)")
    parser.add_argument("--edits", type=int, default=5_000,
                        help="single-item edits in the edits log (of distinct items up to 10,000)")
    parser.add_argument("--results", type=int, default=1_000,
                        help="results, one per event, in the edits log's run (at most 10,000)")
    args = parser.parse_args()
    log_size = {"edits": args.edits, "results": min(args.results, 10_000)}

    sys.path.insert(0, str(ROOT.parent))
    from evalledger.adapters import database

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    url = os.environ.get("DATABASE_URL")
    params = database.resolve(url, Path(os.environ.get("EVALLEDGER_DATA_DIR", ".evalledger/pg")))
    env = {**os.environ, "DATABASE_URL": params.url, "EVALLEDGER_SCHEMA": schema,
           "EVALLEDGER_ADMIN_KEY": ADMIN_KEY, "EVALLEDGER_RATE_LIMIT": "off",
           "PYTHONPATH": str(ROOT.parent)}
    if args.edits_log_only:
        run_edits_log(params, schema, keep=args.keep, **log_size)
        return
    # The in-process command first, on a quiet machine: no service process beside it.
    in_process = {n: w2_in_process({"DATABASE_URL": params.url, "EVALLEDGER_SCHEMA": schema}, n) for n in args.n}
    service = Service(env)
    report: dict[str, Any] = {"date": datetime.now(UTC).isoformat(), "database": params.describe(),
                              "cpus": os.cpu_count(), "results": {}}
    try:
        with httpx.Client(base_url=service.url, timeout=600, headers=AUTH) as http:
            for n in args.n:
                dataset_id, w1 = w1_ingest(http, n)
                version = n // 1000
                ids = all_item_ids(http, dataset_id, version, n)
                w2 = w2_edits(http, dataset_id, ids)
                w3 = w3_time_travel(http, dataset_id, version, n, ids[0])
                w4 = None if args.skip_run else w4_run(http, dataset_id, n)
                w6 = w6_rebuild_replay({"DATABASE_URL": params.url, "EVALLEDGER_SCHEMA": schema})
                w5 = None if args.skip_run else w5_compare(http, dataset_id, n, w4["runId"])
                w7 = w7_pages(http, dataset_id, version, n, None if w4 is None else w4["runId"])
                io = io_import_export(http, service, n)
                w4c = None if args.skip_run else w4_caller_driven(service.url, dataset_id, ids[: min(n, 10_000)])
                w2_local = in_process[n]
                report["results"][n] = {"W1": w1, "W2": w2, "W2inProcess": w2_local, "W3": w3, "W4": w4,
                                         "W4callerDriven": w4c, "W5": w5, "IO": io, "W6": w6, "W7": w7}
                print(json.dumps({str(n): report["results"][n]}, indent=2), flush=True)
        report["servicePeakRssMB"] = round(service.peak_rss / 2**20, 1)
        report["databaseSizeMB"] = round(database_size(params.conninfo, schema) / 2**20, 1)
    finally:
        service.stop()
        if not args.keep:
            with psycopg.connect(params.conninfo, autocommit=True) as conn:
                conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))
    print(f"service peak RSS {report['servicePeakRssMB']} MB, database {report['databaseSizeMB']} MB")
    write_report(report)
    if not args.skip_edits_log:
        run_edits_log(params, schema, keep=args.keep, **log_size)


def run_edits_log(params: Any, schema: str, *, keep: bool, edits: int = 5_000, results: int = 1_000) -> None:
    """W6 on the edits log, in a schema of its own (dropped afterwards unless `keep`)."""
    edits_schema = f"{schema}_edits"
    report: dict[str, Any] = {"date": datetime.now(UTC).isoformat(), "database": params.describe(),
                              "cpus": os.cpu_count()}
    try:
        report["editsLog"] = edits_log({"DATABASE_URL": params.url, "EVALLEDGER_SCHEMA": edits_schema},
                                       edits=edits, results=results)
        print(json.dumps({"editsLog": report["editsLog"]}, indent=2), flush=True)
    finally:
        if not keep:
            with psycopg.connect(params.conninfo, autocommit=True) as conn:
                conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(edits_schema)))
    write_report(report, suffix="-edits")


def write_report(report: dict[str, Any], suffix: str = "") -> None:
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}{suffix}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
