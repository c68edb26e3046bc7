"""Writers in two service processes on one database, all writing to one dataset: a write
that loses the optimistic-concurrency race to the other process is retried (backoff with
jitter, within a deadline) or refused with 503 and `Retry-After`; never a 500, nothing
acknowledged is lost and nothing refused is recorded. And an unexpected error is a 500
problem that leaves the keep-alive connection usable."""

from __future__ import annotations

import http.client
import threading
import time
from typing import Any

import httpx
from conftest import AUTH, Service, ServerThread
from fastapi import FastAPI
from service_process import running

from evalledger.api.app import create_app
from evalledger.settings import Settings

WRITERS = 20
WRITES_EACH = 25


def write_until_acknowledged(http: httpx.Client, path: str, body: dict[str, Any],
                             statuses: list[int], refusals: list[str],
                             seconds: list[float]) -> dict[str, Any] | None:
    """POST until it is acknowledged; a 503 with Retry-After is waited out and retried (it
    changed nothing), anything else that is not a 2xx is noted in `refusals`."""
    while True:
        started = time.monotonic()
        response = http.post(path, json=body)
        seconds.append(time.monotonic() - started)
        statuses.append(response.status_code)
        if response.status_code < 300:
            return response.json()
        if response.status_code == 503 and response.headers.get("retry-after", "").isdigit():
            assert response.headers["content-type"].startswith("application/problem+json")
            time.sleep(min(float(response.headers["retry-after"]), 1.0))
            continue
        refusals.append(f"{response.status_code} {response.headers.get('retry-after')} {response.text[:300]}")
        return None


def test_writers_in_two_processes_on_one_dataset_never_get_a_500_and_lose_nothing(settings: Settings) -> None:
    with running(settings) as first, running(settings) as second:
        dataset = httpx.post(headers=AUTH, url=first.url + "/api/datasets", json={"name": "contended"}).json()
        path = f"/api/datasets/{dataset['id']}/items"
        acknowledged: list[dict[str, Any]] = []
        statuses: list[int] = []
        seconds: list[float] = []
        refusals: list[str] = []
        failures: list[BaseException] = []
        guard = threading.Lock()
        barrier = threading.Barrier(WRITERS)

        def writer(k: int) -> None:
            mine: list[int] = []
            try:
                # One keep-alive connection per writer, half of them to each process.
                with httpx.Client(headers=AUTH, base_url=(first, second)[k % 2].url, timeout=60) as http:
                    barrier.wait(timeout=30)
                    for n in range(WRITES_EACH):
                        written = write_until_acknowledged(http, path, {"input": {"writer": k, "n": n}},
                                                           mine, refusals, seconds)
                        if written is not None:
                            with guard:
                                acknowledged.append(written)
            except BaseException as error:  # noqa: BLE001 - reported below
                failures.append(error)
            with guard:
                statuses.extend(mine)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(WRITERS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        elapsed = time.monotonic() - started
        assert not any(thread.is_alive() for thread in threads), "a writer did not finish"
        assert not failures, failures[:3]  # no transport error: no connection was dropped
        assert not refusals, f"{len(refusals)} write(s) refused: {refusals[:3]}"
        assert all(status < 500 or status == 503 for status in statuses), sorted(set(statuses))
        assert len(acknowledged) == WRITERS * WRITES_EACH

        # Every acknowledged write is there, once, at the version it was acknowledged with.
        versions = sorted(written["version"] for written in acknowledged)
        assert versions == list(range(1, WRITERS * WRITES_EACH + 1))
        for service in (first, second):
            items: list[dict[str, Any]] = []
            page = 0
            while True:
                answer = httpx.get(headers=AUTH, url=service.url + path, params={"page": page, "perPage": 1000}).json()
                items += answer["items"]
                if len(items) >= answer["pagination"]["total"]:
                    break
                page += 1
            assert sorted((i["input"]["writer"], i["input"]["n"]) for i in items) == sorted(
                (k, n) for k in range(WRITERS) for n in range(WRITES_EACH))
            assert {i["id"] for i in items} == {w["item"]["id"] for w in acknowledged}
        seconds.sort()
        print(f"{len(acknowledged)} writes in {elapsed:.1f} s, {statuses.count(503)} answered 503 and retried; "
              f"p50 {seconds[len(seconds) // 2]:.3f} s, p99 {seconds[len(seconds) * 99 // 100]:.3f} s, "
              f"max {seconds[-1]:.3f} s")


def test_an_unexpected_error_is_a_500_problem_and_the_connection_stays_usable(service: Service) -> None:
    app: FastAPI = create_app(service.ledger)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    server = ServerThread(app)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/boom", headers=AUTH)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 500
        assert response.getheader("content-type", "").startswith("application/problem+json")
        assert b"internal-error" in body and b"a bug" not in body  # no internals leak
        time.sleep(0.2)  # a server that drops the connection has done so by now
        conn.request("GET", "/health")  # the same connection
        again = conn.getresponse()
        again.read()
        assert again.status == 200
        conn.close()
    finally:
        server.stop()
