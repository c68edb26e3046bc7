"""Crash recovery, with the real `evalledger serve` as a child process.

Kill it with SIGKILL in the middle of a stream of writes: after a restart every write it
acknowledged is there, versions have no gaps, and the read model agrees with the log.
Events it never saw (written while it was down, or by another process while it runs)
reach its read model by themselves."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from listing import every_page
from service_process import running, start

from evalledger.bootstrap import Ledger
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import ItemChange, NewItem
from evalledger.settings import Settings
from conftest import AUTH, built_ledger

CATCH_UP_DEADLINE = 10.0


# -- another writer, and waiting (the service process itself: service_process.py) -----------


def other_writer(settings: Settings) -> AbstractContextManager[Ledger]:
    """The write side of another process: commands only, no projections, no read-your-writes."""
    return built_ledger(settings)


def poll(condition: Callable[[], bool], what: str, timeout: float = CATCH_UP_DEADLINE) -> float:
    """Wait until `condition()` holds; returns how long that took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.01)
    return time.monotonic() - started


def content(input_: Any, expected_output: Any = None, metadata: dict[str, Any] | None = None) -> ItemContent:
    return ItemContent(input=input_, expected_output=expected_output, metadata=metadata or {})


# -- reading the service back ---------------------------------------------------------------


def all_items(http: httpx.Client, dataset_id: str, version: int | None = None) -> dict[str, dict[str, Any]]:
    if version is None:  # every page of one version, though writes go on meanwhile
        version = http.get(f"/api/datasets/{dataset_id}/items", params={"perPage": 1}).json()["version"]
    return {item["id"]: item for listing in every_page(http, f"/api/datasets/{dataset_id}/items", version=version)
            for item in listing["items"]}


def all_version_numbers(http: httpx.Client, dataset_id: str) -> list[int]:
    return [v["version"] for listing in every_page(http, f"/api/datasets/{dataset_id}/versions")
            for v in listing["versions"]]


def fields(item: dict[str, Any]) -> tuple[Any, Any, Any]:
    return item["input"], item["expectedOutput"], item["metadata"]


def projection_lag(http: httpx.Client) -> int:
    return sum(p["lag"] for p in http.get("/health").json()["projections"])


# -- the writer that gets cut off ----------------------------------------------------------


@dataclass
class Acknowledged:
    item_id: str
    version: int
    fields: tuple[Any, Any, Any]  # input, expectedOutput, metadata, as acknowledged


class StreamingWriter(threading.Thread):
    """Adds items one at a time, and every fourth write updates an item added before, until
    the service stops answering. Keeps every acknowledged (2xx) write, in order."""

    def __init__(self, url: str, dataset_id: str) -> None:
        super().__init__(name="streaming-writer", daemon=True)
        self.url = url
        self.dataset_id = dataset_id
        self.acknowledged: list[Acknowledged] = []
        self.in_flight: tuple[str, str | None] | None = None  # ("add" | "update", item id) when cut off
        self.refused: list[str] = []  # non-2xx answers: there should be none
        self.stop_writing = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers=AUTH, base_url=self.url, timeout=10) as http:
            n = 0
            while not self.stop_writing.is_set():
                n += 1
                items = [a.item_id for a in self.acknowledged]
                if n % 4 == 0 and items:
                    item_id = items[(n * 7) % len(items)]
                    body: dict[str, Any] = {"input": {"k": n, "edited": True}, "metadata": {"rev": n}}
                    self.in_flight = ("update", item_id)
                    request = ("PATCH", f"/api/datasets/{self.dataset_id}/items/{item_id}")
                else:
                    body = {"input": {"k": n}, "expectedOutput": {"answer": f"a{n}"}, "metadata": {"n": n}}
                    self.in_flight = ("add", None)
                    request = ("POST", f"/api/datasets/{self.dataset_id}/items")
                try:
                    response = http.request(*request, json=body)
                except httpx.HTTPError:
                    return  # cut off: this write was not acknowledged
                if response.status_code >= 300:
                    self.refused.append(f"{request} -> {response.status_code} {response.text}")
                    continue
                self.in_flight = None
                answer = response.json()
                self.acknowledged.append(Acknowledged(answer["item"]["id"], answer["version"], fields(answer["item"])))


def test_sigkill_in_the_middle_of_a_stream_of_writes_loses_no_acknowledged_write(settings: Settings) -> None:
    service = start(settings)
    writer: StreamingWriter | None = None
    try:
        with httpx.Client(headers=AUTH, base_url=service.url) as http:
            created = http.post("/api/datasets", json={"name": "crash-test"})
            assert created.status_code == 201
            dataset_id = created.json()["id"]
        writer = StreamingWriter(service.url, dataset_id)
        writer.start()
        started = time.monotonic()
        poll(lambda: time.monotonic() - started >= 1.0 and len(writer.acknowledged) >= 20,
             "a second of acknowledged writes", timeout=30)
        service.sigkill()
    finally:
        service.stop()
        if writer is not None:
            writer.stop_writing.set()
            writer.join(timeout=15)
    assert writer is not None and not writer.is_alive()
    assert writer.refused == []
    acknowledged = writer.acknowledged
    adds = {a.item_id for a in acknowledged}
    assert len(acknowledged) > len(adds), "the stream held updates as well as adds"

    with running(settings) as service, httpx.Client(headers=AUTH, base_url=service.url) as http:
        dataset = http.get(f"/api/datasets/{dataset_id}").json()
        highest = max(a.version for a in acknowledged)
        assert dataset["version"] >= highest
        # The write in flight at the kill may or may not have been saved; nothing else new is there.
        assert dataset["version"] <= highest + 1

        assert all_version_numbers(http, dataset_id) == list(range(dataset["version"], -1, -1))

        # Every acknowledged write reads back at the version it was acknowledged with ...
        for ack in acknowledged:
            response = http.get(f"/api/datasets/{dataset_id}/items/{ack.item_id}", params={"version": ack.version})
            assert response.status_code == 200, (ack, response.text)
            assert fields(response.json()) == ack.fields, ack

        # ... and now each item holds its last acknowledged content (or the in-flight update's).
        current = all_items(http, dataset_id)
        last: dict[str, Acknowledged] = {}
        for ack in acknowledged:
            last[ack.item_id] = ack
        for item_id, ack in last.items():
            assert item_id in current, f"acknowledged item {item_id} is missing"
            if writer.in_flight != ("update", item_id):
                assert fields(current[item_id]) == ack.fields, item_id
        extra = set(current) - adds
        assert len(extra) <= (1 if writer.in_flight == ("add", None) else 0), extra
        assert dataset["itemCount"] == len(current)

        # The read model after the crash agrees with the log, and has nothing left to do.
        poll(lambda: projection_lag(http) == 0, "the projections to reach the log head")
        with other_writer(settings) as ledger:
            replayed = ledger.datasets.get_dataset(UUID(dataset_id))
        assert replayed.dataset_version == dataset["version"]
        assert {item_id: (i.content.input, i.content.expected_output, i.content.metadata)
                for item_id, i in replayed.items.items()} == {
            item_id: fields(item) for item_id, item in current.items()
        }


def test_events_written_while_the_service_is_down_reach_its_read_model_when_it_starts(
    settings: Settings,
) -> None:
    with running(settings) as service, httpx.Client(headers=AUTH, base_url=service.url) as http:
        dataset_id = http.post("/api/datasets", json={"name": "offline"}).json()["id"]
        first = http.post(f"/api/datasets/{dataset_id}/items", json={"input": "before", "externalId": "b"})
        assert first.status_code == 201
        first_id = first.json()["item"]["id"]
        service.sigkill()

    # While it is down, another process writes to the same log.
    with other_writer(settings) as ledger:
        added = ledger.datasets.add_items(
            UUID(dataset_id),
            [NewItem(content(f"offline {i}", {"answer": i}, {"i": i})) for i in range(5)],
            actor="batch-job",
        )
        ledger.datasets.update_items(
            UUID(dataset_id), [ItemChange(item_id=first_id, input="edited offline", fields=frozenset({"input"}))]
        )
        ledger.datasets.change_details(UUID(dataset_id), {"name": "renamed offline"})
        other = ledger.datasets.create_dataset(name="made offline")
        ledger.datasets.add_items(other.aggregate_id, [NewItem(content("x"))])
    offline_ids = {item.id for item in added.items}
    assert added.dataset_version == 2

    with running(settings) as service, httpx.Client(headers=AUTH, base_url=service.url) as http:
        def caught_up() -> bool:
            response = http.get(f"/api/datasets/{dataset_id}")
            return response.status_code == 200 and response.json()["version"] == 3

        poll(caught_up, "the offline writes to show")
        items = all_items(http, dataset_id)
        assert set(items) == offline_ids | {first_id}
        for item in items.values():
            if item["id"] != first_id:
                i = int(item["input"].removeprefix("offline "))
                assert fields(item) == (f"offline {i}", {"answer": i}, {"i": i})
        assert items[first_id]["input"] == "edited offline" and items[first_id]["externalId"] == "b"
        assert http.get(f"/api/datasets/{dataset_id}").json()["name"] == "renamed offline"
        assert all_version_numbers(http, dataset_id) == [3, 2, 1, 0]
        assert all_items(http, dataset_id, version=1) .keys() == {first_id}
        made = http.get(f"/api/datasets/{other.aggregate_id}")
        assert made.status_code == 200 and made.json()["itemCount"] == 1
        poll(lambda: projection_lag(http) == 0, "the projections to reach the log head")


def test_a_write_from_another_process_shows_in_the_running_service_by_itself(settings: Settings) -> None:
    with running(settings) as service, httpx.Client(headers=AUTH, base_url=service.url) as http, \
            other_writer(settings) as ledger:
        dataset_id = http.post("/api/datasets", json={"name": "shared"}).json()["id"]

        def listed(version: int) -> Callable[[], bool]:
            def check() -> bool:
                response = http.get(f"/api/datasets/{dataset_id}")
                return response.status_code == 200 and response.json()["version"] == version
            return check

        latencies = []
        for n in range(1, 6):
            written = ledger.datasets.add_items(UUID(dataset_id), [NewItem(content({"from": "elsewhere", "n": n}))])
            assert written.dataset_version == n
            latencies.append(poll(listed(n), f"the other process's write {n} to show"))
            item = http.get(f"/api/datasets/{dataset_id}/items/{written.items[0].id}").json()
            assert item["input"] == {"from": "elsewhere", "n": n} and item["version"] == n

        # The service's own writes carry on from there.
        own = http.post(f"/api/datasets/{dataset_id}/items", json={"input": "mine"})
        assert own.status_code == 201 and own.json()["version"] == 6
        assert len(all_items(http, dataset_id)) == 6

        # LISTEN/NOTIFY wakes the follower at once: far sooner than its once-a-second fallback poll.
        assert statistics.median(latencies) < 0.3, latencies
