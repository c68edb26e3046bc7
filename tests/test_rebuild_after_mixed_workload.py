"""Rebuilding every read model from scratch after a mixed workload changes no answer.

The story: through the real service over HTTP, several datasets go through single and
batch adds, updates (externalIds changed, set and kept), deletes, detail changes, CSV /
JSON / JSONL imports in append, upsert and replace modes (invalid rows skipped), a
duplicate, a copy, a dataset made from items, and a dataset deletion; runs are made on
them (a registered target run in this process, caller-driven runs with resubmitted
results, a cancelled one) and compared. Then a broad set of answers is read: every page,
every version, every item at every version, histories, diffs, asOf reads, event streams,
the global feed, run results, analytics, comparisons and exports.

Then both read models are rebuilt from the log — first through the HTTP route while the
service runs, then with `evalledger projections rebuild` in another process — and every
answer must be what it was: JSON-equal, exports byte-equal. Finally a fresh service on the
same schema (no caches from before) must give the same answers again.
"""

from __future__ import annotations

import difflib
import json
import pprint
from collections import Counter
from datetime import datetime, timedelta
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cli_runner import database_env, evalledger
from conftest import Service, running_service
from waiting import wait_finished, wait_until

from evalledger.execution.registry import registry

# -- a target registered in this process (name prefixed to stay out of other tests' way) --------


@registry.target(name="mixed-rebuild-answerer", kind="agent")
def answerer(input: Any, context: Any) -> Any:
    """Right for even `n`, wrong for odd `n`, an error for n == 3 (not retried)."""
    n = int(input.get("n", 0)) if isinstance(input, dict) else 0
    if n == 3:
        raise ValueError("cannot answer item 3")
    return context.expected_output if n % 2 == 0 else {"answer": "wrong"}


# -- writing ----------------------------------------------------------------------------


class Writer:
    """Writes over HTTP as `actor`, checking each answer's status."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def __call__(self, method: str, path: str, *, status: int | tuple[int, ...] = (200, 201, 202),
                 json_body: Any = None, content: str | None = None, params: dict[str, Any] | None = None,
                 actor: str | None = None, reason: str | None = None) -> Any:
        headers = {}
        if actor:
            headers["X-Actor"] = actor
        if reason:
            headers["X-Change-Reason"] = reason
        response = self.http.request(method, path, json=json_body,
                                     content=content.encode() if content is not None else None,
                                     params=params, headers=headers)
        wanted = (status,) if isinstance(status, int) else status
        assert response.status_code in wanted, f"{method} {path} -> {response.status_code} {response.text}"
        return response.json()

    def import_file(self, dataset_id: str, text: str, filename: str, *, status: int | tuple[int, ...] = 201,
                    **params: Any) -> dict[str, Any]:
        return self("POST", f"/api/datasets/{dataset_id}/items/import", content=text, status=status,
                    params={"filename": filename, **params}, actor="importer", reason=f"import {filename}")


def jsonl(rows: list[Any]) -> str:
    return "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n"


@dataclass
class Workload:
    """What the workload made, for the reads that follow."""

    datasets: dict[str, str] = field(default_factory=dict)  # label -> id
    deleted: dict[str, str] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    comparisons: list[dict[str, Any]] = field(default_factory=list)


def build_workload(http: httpx.Client) -> Workload:
    write = Writer(http)
    made = Workload()

    # -- "qa": batch and single adds, edits (externalIds too), deletes, detail changes, an import
    qa = write("POST", "/api/datasets", actor="alice", reason="a new suite", json_body={
        "name": "qa", "description": "support questions", "metadata": {"team": "support"},
        "inputSchema": {"type": "object"},
    })["id"]
    made.datasets["qa"] = qa
    batch = write("POST", f"/api/datasets/{qa}/items/batch", actor="alice", json_body={"items": [
        {"input": {"question": f"q{i}", "n": i}, "expectedOutput": {"answer": f"a{i}"},
         "metadata": {"i": i, "split": "test" if i % 5 == 0 else "train"},
         **({"externalId": f"qa-{i}"} if i < 8 else {})}
        for i in range(12)
    ]})
    assert batch["version"] == 1
    ids = [item["id"] for item in batch["items"]]
    extra = write("POST", f"/api/datasets/{qa}/items", actor="bob", reason="one more", json_body={
        "input": {"question": "extra", "n": 100}, "expectedOutput": {"answer": "a100"}, "externalId": "qa-extra",
    })
    assert extra["version"] == 2
    ids.append(extra["item"]["id"])
    assert write("PATCH", f"/api/datasets/{qa}/items/{ids[0]}", actor="bob", reason="typo",
                 json_body={"input": {"question": "q0 (edited)", "n": 0}})["version"] == 3
    assert write("PATCH", f"/api/datasets/{qa}/items/{ids[1]}",
                 json_body={"externalId": "qa-one"})["version"] == 4  # an externalId changed
    assert write("PATCH", f"/api/datasets/{qa}/items/{ids[8]}", json_body={
        "externalId": "qa-8-late", "metadata": {"i": 8, "split": "test", "late": True},
    })["version"] == 5  # an externalId set, metadata changed
    assert write("PATCH", f"/api/datasets/{qa}/items/{ids[2]}",
                 json_body={"expectedOutput": None})["version"] == 6  # cleared
    unchanged = write("PATCH", f"/api/datasets/{qa}/items/{ids[9]}", json_body={"input": {"question": "q9", "n": 9}})
    assert unchanged["version"] == 6 and unchanged["changed"] is False
    write("PATCH", f"/api/datasets/{qa}", actor="carol", reason="rename", json_body={"name": "qa-renamed"})
    write("PUT", f"/api/datasets/{qa}", actor="carol", json_body={
        "name": "qa-suite", "description": "support questions, curated", "metadata": {"team": "support", "tier": 1},
        "inputSchema": {"type": "object", "required": ["question"]},
        "expectedOutputSchema": {"type": "object"},
    })
    assert write("DELETE", f"/api/datasets/{qa}/items/{ids[4]}", reason="duplicate")["version"] == 7
    assert write("DELETE", f"/api/datasets/{qa}/items/batch", json_body={"itemIds": [ids[5], ids[6]]})["version"] == 8
    csv_import = write.import_file(
        qa, "question,n,answer,split,id\nc-one?,21,\"{\"\"answer\"\": \"\"c1\"\"}\",train,qa-c1\n"
            "c-two?,22,\"{\"\"answer\"\": \"\"c2\"\"}\",test,qa-c2\nc-three?,23,,train,qa-c3\n",
        "more.csv", map=["question=input", "n=input", "answer=expectedOutput", "split=metadata", "id=externalId"],
    )
    assert (csv_import["version"], csv_import["added"]) == (9, 3), csv_import

    # -- runs on qa version 9: a registered target (with repetitions), and a caller-driven one
    run_target = write("POST", f"/api/datasets/{qa}/runs", status=202, actor="ci", json_body={
        "name": "target run", "target": {"type": "registered", "name": "mixed-rebuild-answerer"},
        "scorers": [{"name": "exact-match", "id": "answer-exact", "options": {"field": "answer"}}, "exact-match"],
        "repetitions": 2, "maxConcurrency": 4, "maxRetries": 0, "metadata": {"commit": "abc"},
    })["id"]
    made.runs["target"] = run_target
    assert wait_finished(http, run_target, timeout=20)["status"] == "completed"
    items_v9 = http.get(f"/api/datasets/{qa}/items", params={"perPage": 100}).json()["items"]
    assert len(items_v9) == 13
    run_driven = write("POST", f"/api/datasets/{qa}/runs", status=202, json_body={"name": "driven"})["id"]
    made.runs["driven"] = run_driven

    def result(k: int, item: dict[str, Any], score: float, **more: Any) -> dict[str, Any]:
        return {"itemId": item["id"], "output": {"answer": f"out{k}"}, "latencyMs": 3.5 + k * 1.25,
                "scores": [{"scorerId": "answer-exact", "score": score}, {"scorerId": "quality", "score": k / 16}],
                **more}

    write("POST", f"/api/datasets/runs/{run_driven}/results", json_body={"results": [
        result(k, item, 1.0 if k % 3 else 0.0) for k, item in enumerate(items_v9[:8])
    ]})
    write("POST", f"/api/datasets/runs/{run_driven}/results", json_body={"results": [
        result(k, item, 0.0, error="timed out" if k == 9 else None, traceId=f"trace-{k}")
        for k, item in enumerate(items_v9[8:], start=8)
    ]})
    write("POST", f"/api/datasets/runs/{run_driven}/results", json_body={"results": [  # resubmitted: upserts
        result(k, item, 1.0, attempt=2) for k, item in enumerate(items_v9[:3])
    ]})
    assert write("POST", f"/api/datasets/runs/{run_driven}/finalize")["status"] == "completed"

    # -- qa goes on: a JSONL upsert skipping invalid rows, and an item duplicated
    upsert = write.import_file(qa, jsonl([
        {"externalId": "qa-0", "input": {"question": "q0 (upserted)", "n": 0}, "expectedOutput": {"answer": "a0"}},
        {"externalId": "qa-7", "input": {"question": "q7", "n": 7}, "expectedOutput": {"answer": "a7"},
         "metadata": {"i": 7, "split": "train"}},
        {"externalId": "qa-j1", "input": {"question": "from jsonl", "n": 30}, "metadata": {"split": "test"}},
        "not json",
        {"externalId": "qa-j2", "input": None},
    ]), "upsert.jsonl", mode="upsert", skipInvalid="true")
    assert (upsert["version"], upsert["added"], upsert["updated"], upsert["skippedRows"]) == (10, 1, 1, [4, 5]), upsert
    assert write("POST", f"/api/datasets/{qa}/items/{ids[7]}/duplicate", status=201)["version"] == 11
    run_later = write("POST", f"/api/datasets/{qa}/runs", status=202, json_body={"name": "later"})["id"]
    made.runs["later"] = run_later
    items_v11 = http.get(f"/api/datasets/{qa}/items", params={"perPage": 100}).json()["items"]
    write("POST", f"/api/datasets/runs/{run_later}/results", json_body={"results": [
        result(k, item, 1.0 if k % 2 else 0.5) for k, item in enumerate(items_v11[:-3])  # three left: skipped
    ]})
    assert write("POST", f"/api/datasets/runs/{run_later}/finalize")["status"] == "completed"
    run_cancelled = write("POST", f"/api/datasets/{qa}/runs", status=202, json_body={"name": "abandoned"})["id"]
    made.runs["cancelled"] = run_cancelled
    write("POST", f"/api/datasets/runs/{run_cancelled}/results",
          json_body={"results": [result(k, item, 1.0) for k, item in enumerate(items_v11[:2])]})
    assert write("POST", f"/api/datasets/runs/{run_cancelled}/cancel", reason="not needed")["status"] == "cancelled"

    # -- "imports": CSV append, JSONL upsert (skipInvalid), an upsert with nothing new, JSON replace, a copy
    imports = write("POST", "/api/datasets", json_body={"name": "imports"})["id"]
    made.datasets["imports"] = imports
    write.import_file(imports, "input,expectedOutput,externalId\n" + "".join(
        f"in{i},out{i},im-{i}\n" for i in range(6)), "seed.csv")
    write.import_file(imports, jsonl([
        {"externalId": "im-1", "input": "in1 (changed)", "expectedOutput": "out1"},
        {"externalId": "im-6", "input": "in6", "metadata": {"late": True}},
        {"externalId": "im-bad"},
    ]), "more.jsonl", mode="upsert", skipInvalid="true")
    nothing_new = write.import_file(imports, jsonl([{"externalId": "im-6", "input": "in6", "metadata": {"late": True}}]),
                                    "again.jsonl", mode="upsert", status=200)
    assert nothing_new["newVersion"] is False
    replaced = write.import_file(imports, json.dumps([
        {"externalId": "im-0", "input": "in0 (replaced)", "expectedOutput": "out0"},
        {"externalId": "im-2", "input": "in2", "expectedOutput": "out2"},
        {"externalId": "im-3", "input": "in3", "expectedOutput": "out3"},
        {"externalId": "im-new", "input": "brand new"},
    ]), "whole.json", mode="replace")
    assert (replaced["version"], replaced["added"], replaced["updated"], replaced["removed"]) == (3, 1, 1, 4), replaced
    copied = write("POST", f"/api/datasets/{qa}/items/copy", status=201, json_body={
        "targetDatasetId": imports, "itemIds": [ids[2], ids[3], ids[9]], "version": 9,
    })
    assert copied["version"] == 4
    write.import_file(imports, jsonl([{"input": "appended"}, "{broken", {"input": {"x": [1, 2.5, None]}}]),
                      "tail.jsonl", skipInvalid="true")

    # -- a duplicate of qa at version 8, a dataset made from items, and two plain ones
    made.datasets["copy"] = write("POST", f"/api/datasets/{qa}/duplicate", status=201,
                                  json_body={"name": "qa at v8", "version": 8})["id"]
    made.datasets["picked"] = write("POST", "/api/datasets/from-items", status=201, json_body={
        "name": "picked", "sourceDatasetId": qa, "itemIds": [ids[0], ids[1], ids[12]],
    })["id"]
    for label in ("plain-1", "plain-2"):
        made.datasets[label] = write("POST", "/api/datasets", json_body={"name": label})["id"]
    write("POST", f"/api/datasets/{made.datasets['plain-2']}/items", json_body={"input": "only one"})

    # -- a dataset with a run, then deleted
    doomed = write("POST", "/api/datasets", json_body={"name": "doomed"})["id"]
    made.deleted["doomed"] = doomed
    doomed_items = write("POST", f"/api/datasets/{doomed}/items/batch",
                         json_body={"items": [{"input": {"n": i}} for i in range(3)]})["items"]
    run_doomed = write("POST", f"/api/datasets/{doomed}/runs", status=202, json_body={"name": "doomed"})["id"]
    made.runs["doomed"] = run_doomed
    write("POST", f"/api/datasets/runs/{run_doomed}/results", json_body={"results": [
        {"itemId": item["id"], "output": i, "latencyMs": 2.0 * i, "scores": [{"scorerId": "quality", "score": 0.5}]}
        for i, item in enumerate(doomed_items)
    ]})
    write("POST", f"/api/datasets/runs/{run_doomed}/finalize")
    write("DELETE", f"/api/datasets/{doomed}", actor="alice", reason="obsolete")

    # -- comparisons (read-only POSTs)
    made.comparisons = [
        {"runIdA": run_target, "runIdB": run_driven},
        {"runIdA": run_target, "runIdB": run_driven, "alpha": 0.2, "itemsPerPage": 4, "itemsPage": 1,
         "thresholds": {"answer-exact": {"value": 0.1, "direction": "higher-is-better"}}},
        {"runIdA": run_driven, "runIdB": run_later},  # different versions: content changes
        {"runIdA": run_driven, "runIdB": run_later, "itemStatus": "improved"},
        {"runIdA": run_target, "candidates": [run_driven, run_later, run_cancelled]},
        {"runIdA": run_driven, "runIdB": run_doomed},  # different datasets
        {"runIdA": run_driven, "runIdB": run_driven},  # refused
    ]
    return made


# -- reading --------------------------------------------------------------------------------


# status, content type, and the parsed JSON body, or for an export (body bytes, Content-Disposition,
# X-Dataset-Version)
Answer = tuple[int, str, Any]


class Reader:
    """Reads answers over HTTP and keeps them by request."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.answers: dict[str, Answer] = {}

    def __call__(self, path: str, method: str = "GET", **params: Any) -> Any:
        body = params.pop("json_body", None)
        response = self.http.request(method, path, params=params or None, json=body)
        assert response.status_code < 500, f"{method} {path} {params} -> {response.status_code} {response.text}"
        kind = response.headers.get("content-type", "").split(";")[0]
        if path.endswith("/export") and response.status_code == 200:  # byte for byte
            content: Any = (response.content, response.headers.get("content-disposition"),
                            response.headers.get("x-dataset-version"))
        else:
            assert kind in ("application/json", "application/problem+json"), (path, kind)
            content = response.json()
        if path == "/api/projections":  # each one's latest rebuild is what a rebuild changes, by design
            content = {"projections": [{k: v for k, v in p.items() if k != "rebuild"} for p in content["projections"]]}
        if path in ("/api/projections", "/health"):  # which process leads is the processes' state, not the data's
            content = {**content, "projections": [{k: v for k, v in p.items() if k != "leader"}
                                                  for p in content["projections"]]}
        key = f"{method} {path} {json.dumps(params, sort_keys=True)}" + (f" {json.dumps(body)}" if body else "")
        assert key not in self.answers or self.answers[key] == (response.status_code, kind, content), key
        self.answers[key] = (response.status_code, kind, content)
        return content if response.status_code < 400 else None

    def pages(self, path: str, key: str, per_page: int, **params: Any) -> list[Any]:
        """Every page of a paged listing (and the empty one after the last)."""
        found: list[Any] = []
        page = 0
        while True:
            listing = self(path, page=page, perPage=per_page, **params)
            found += listing[key]
            if not listing["pagination"]["hasMore"]:
                self(path, page=page + 1, perPage=per_page, **params)
                return found
            page += 1


def read_everything(http: httpx.Client, made: Workload) -> dict[str, Answer]:
    read = Reader(http)
    read("/health")
    read("/api/projections")
    listed = read.pages("/api/datasets", "datasets", 2)
    assert {d["id"] for d in listed} == set(made.datasets.values())
    read("/api/datasets", perPage=100)

    for dataset_id in made.datasets.values():
        read_dataset(read, dataset_id)
    for dataset_id in made.deleted.values():  # gone: 404 everywhere
        for path in ("", "/items", "/versions", "/events", "/runs", "/items/export"):
            read(f"/api/datasets/{dataset_id}{path}")

    for run_id in made.runs.values():
        read_run(read, run_id)
    for body in made.comparisons:
        read("/api/datasets/compare", "POST", json_body=body)

    feed = read("/api/events", limit=1000)
    assert feed["nextAfter"] is None and feed["events"][-1]["position"] == feed["head"]
    after = 0
    while after is not None:
        after = read("/api/events", after=after, limit=7)["nextAfter"]
    read("/api/events", type=["ItemsUpdated", "ResultsRecorded", "Cancelled"], limit=1000)
    read("/api/events", after=feed["head"] // 2, type="DetailsChanged")
    return read.answers


def read_dataset(read: Reader, dataset_id: str) -> None:
    base = f"/api/datasets/{dataset_id}"
    current = read(base)["version"]
    versions = read.pages(f"{base}/versions", "versions", 3)
    assert [v["version"] for v in versions] == list(range(current, -1, -1))
    read(f"{base}/versions", perPage=100)
    read(f"{base}/runs", perPage=100)
    read.pages(f"{base}/runs", "runs", 1)

    item_ids: set[str] = set()
    for v in range(current + 1):
        listing = read(f"{base}/items", version=v, perPage=100)
        item_ids |= {item["id"] for item in listing["items"]}
        read(f"{base}/items", version=v, perPage=3, page=1)
        for file_format in ("csv", "json", "jsonl"):
            read(f"{base}/items/export", format=file_format, version=v)
        read(f"{base}/items/export", format="jsonl", version=v, includeIds="true")
        if v:
            read(f"{base}/diff", **{"from": v - 1, "to": v})
    read(f"{base}/items", perPage=5)
    read(f"{base}/items", version=current + 1)  # no such version
    read(f"{base}/items", search="q1", perPage=100)
    read(f"{base}/items", search="IN", version=max(0, current - 1), perPage=100)
    read(f"{base}/items/export", format="csv", includeIds="true")
    read(f"{base}/diff", **{"from": 0})
    read(f"{base}/diff", **{"from": current, "to": min(1, current)})  # backwards
    read(f"{base}/diff", **{"from": 0, "to": current, "perPage": 2, "page": 1})

    # asOf: each version's own instant, a moment later, and before the dataset existed
    for entry in versions:
        moment = entry["createdAt"]
        read(f"{base}/items", asOf=moment, perPage=100)
        read(f"{base}/diff", fromAsOf=moment, toAsOf=versions[0]["createdAt"])
    read(f"{base}/items", asOf="2001-01-01T00:00:00Z")
    middle = datetime.fromisoformat(versions[len(versions) // 2]["createdAt"])
    read(f"{base}/items", asOf=(middle + timedelta(microseconds=1)).isoformat(), perPage=100)

    for item_id in sorted(item_ids):
        history = read(f"{base}/items/{item_id}/history")
        assert history["history"], item_id
        read(f"{base}/items/{item_id}")
        for v in range(current + 1):
            read(f"{base}/items/{item_id}", version=v)  # 404 where it did not exist
        read(f"{base}/items/{item_id}", asOf=versions[-1]["createdAt"])

    events = read.pages(f"{base}/events", "events", 4)
    assert len(events) == read(f"{base}/events", perPage=1000)["pagination"]["total"]
    read(f"{base}/events", after=2, perPage=3)
    read(f"{base}/events", type=["ItemsUpdated", "DetailsChanged"], perPage=1000)


def read_run(read: Reader, run_id: str) -> None:
    base = f"/api/datasets/runs/{run_id}"
    run = read(base)
    assert run["status"] in ("completed", "cancelled"), run
    read(f"{base}/results", perPage=1000)
    read.pages(f"{base}/results", "results", 4)
    for status in ("succeeded", "failed"):
        read(f"{base}/results", status=status, perPage=1000)
        read(f"{base}/results", status=status, perPage=2, page=1)
    read(f"{base}/analytics")
    read(f"{base}/analytics", threshold=0.9)
    read(f"{base}/analytics", groupBy="metadata.split", itemLimit=2)
    read(f"{base}/analytics", groupBy="metadata.i")
    read(f"{base}/events", perPage=1000)
    read(f"{base}/events", type="ResultsRecorded", perPage=1000)
    for file_format in ("csv", "jsonl"):
        read(f"{base}/results/export", format=file_format)


# -- comparing ------------------------------------------------------------------------------


def differences(before: dict[str, Answer], after: dict[str, Answer]) -> list[str]:
    """A readable account of every answer that differs (a unified diff of each)."""
    found = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        lines_a = pprint.pformat(a, width=120).splitlines()
        lines_b = pprint.pformat(b, width=120).splitlines()
        diff = "\n".join(difflib.unified_diff(lines_a, lines_b, "before", "after", n=2, lineterm=""))
        found.append(f"{key}\n{diff}")
    return found


def assert_same_answers(before: dict[str, Answer], after: dict[str, Answer], when: str) -> None:
    found = differences(before, after)
    assert not found, (f"{len(found)} of {len(before)} answers differ {when}:\n\n"
                       + "\n\n".join(found[:15]))


def rebuild_over_http(http: httpx.Client) -> None:
    for name in ("datasets", "runs"):
        response = http.post(f"/api/projections/{name}/rebuild")
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["projection"] == name and report["events"] > 0, report


def rebuild_with_the_cli(service: Service) -> None:
    done = evalledger("projections", "rebuild", env=database_env(service.settings), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebuilt datasets" in done.stderr and "rebuilt runs" in done.stderr, done.stderr


def caught_up(http: httpx.Client) -> Callable[[], bool]:
    def check() -> bool:
        return all(p["lag"] == 0 for p in http.get("/api/projections").json()["projections"])
    return check


def test_rebuilding_every_read_model_after_a_mixed_workload_changes_no_answer(service: Service) -> None:
    http = service.client.http
    made = build_workload(http)
    wait_until(caught_up(http), "the projections to reach the head of the log", timeout=10)
    before = read_everything(http, made)
    statuses = Counter(status for status, _, _ in before.values())
    assert statuses[200] > 700 and statuses[404] > 100 and max(statuses) < 500, statuses
    assert_same_answers(before, read_everything(http, made), "when read twice, without a rebuild")

    # 1. Rebuilt beside the live tables by the running service, then switched over.
    rebuild_over_http(http)
    assert_same_answers(before, read_everything(http, made), "after a rebuild through the HTTP route")

    # 2. Rebuilt by `evalledger projections rebuild` in another process, the service still up.
    rebuild_with_the_cli(service)
    wait_until(caught_up(http), "the service to see the rebuilt tables", timeout=10)
    assert_same_answers(before, read_everything(http, made), "after `evalledger projections rebuild`")

    # 3. A fresh service on the same schema, with nothing cached from before the rebuilds.
    with running_service(service.settings) as fresh:
        wait_until(caught_up(fresh.client.http), "the fresh service's projections", timeout=10)
        assert_same_answers(before, read_everything(fresh.client.http, made), "from a fresh service")
