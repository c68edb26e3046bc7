"""Kill the service mid-stream: every acknowledged write survives, and the read model
catches up by itself with writes it never saw."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import httpx
import service_process

from evalledger.bootstrap import build_ledger
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import NewItem
from evalledger.settings import Settings


def poll(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sigkill_mid_stream_loses_no_acknowledged_write(settings: Settings) -> None:
    process, url = service_process.serve(settings)
    acknowledged: list[dict[str, Any]] = []
    stop = threading.Event()
    with httpx.Client(base_url=url) as http:
        dataset = http.post("/api/datasets", json={"name": "crash"}).json()

    def write() -> None:
        with httpx.Client(base_url=url, timeout=5) as http:
            k = 0
            while not stop.is_set():
                try:
                    response = http.post(f"/api/datasets/{dataset['id']}/items", json={"input": {"k": k}})
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    acknowledged.append(response.json())
                k += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        poll(lambda: len(acknowledged) >= 30)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stop.set()
        writer.join()

    process, url = service_process.serve(settings)
    try:
        with httpx.Client(base_url=url) as http:
            current = http.get(f"/api/datasets/{dataset['id']}").json()
            assert current["version"] >= max(a["version"] for a in acknowledged)
            listed = http.get(f"/api/datasets/{dataset['id']}/items", params={"perPage": 1000}).json()["items"]
            by_id = {item["id"]: item for item in listed}
            for ack in acknowledged:
                assert by_id[ack["item"]["id"]]["input"] == ack["item"]["input"]
            versions = http.get(f"/api/datasets/{dataset['id']}/versions", params={"perPage": 1000}).json()
            assert [v["version"] for v in versions["versions"]] == list(range(current["version"], -1, -1))
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_read_model_catches_up_with_writes_it_never_saw(settings: Settings) -> None:
    writer = build_ledger(settings)  # another process's write side: no projections run here
    try:
        dataset_id = writer.datasets.create_dataset(name="offline").aggregate_id
        writer.datasets.add_items(dataset_id, [NewItem(ItemContent(input=i, expected_output=None, metadata={}))
                                               for i in range(5)])
        process, url = service_process.serve(settings)
        try:
            with httpx.Client(base_url=url) as http:
                def listed() -> int:
                    response = http.get(f"/api/datasets/{dataset_id}/items")
                    return response.json()["pagination"]["total"] if response.status_code == 200 else -1

                poll(lambda: listed() == 5)
                # While it runs, a write from elsewhere arrives through LISTEN/NOTIFY.
                writer.datasets.add_items(dataset_id, [NewItem(ItemContent(input="late", expected_output=None,
                                                                           metadata={}))])
                poll(lambda: listed() == 6)
                assert http.get("/health").json()["projections"][0]["lag"] == 0
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        writer.close()
