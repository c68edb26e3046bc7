"""Many writers at once lose nothing, and what a write acknowledges is there to be read."""

from __future__ import annotations

import threading
from typing import Any

from conftest import Service


def in_parallel(count: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(k: int) -> None:
        barrier.wait()
        try:
            results[k] = work(k)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_twenty_clients_adding_at_once_get_versions_one_to_twenty(service: Service) -> None:
    dataset = service.client.create_dataset("crowd")

    def add(k: int) -> Any:
        with service.new_client() as client:
            return client.add_item(dataset.id, input={"writer": k})

    written = in_parallel(20, add)
    assert sorted(w.version for w in written) == list(range(1, 21))
    listed = service.client.list_items(dataset.id, per_page=100)
    assert {i.id for i in listed.items} == {w.item.id for w in written}
    assert listed.version == 20 and listed.pagination.total == 20
    versions = service.client.list_versions(dataset.id, per_page=100).versions
    assert [v.version for v in versions] == list(range(20, -1, -1))


def test_concurrent_batches_are_one_version_each(service: Service) -> None:
    dataset = service.client.create_dataset("batches")

    def add(k: int) -> Any:
        with service.new_client() as client:
            return client.add_items(dataset.id, [{"input": [k, j]} for j in range(50)])

    written = in_parallel(8, add)
    assert sorted(w.version for w in written) == list(range(1, 9))
    assert service.client.get_dataset(dataset.id).item_count == 400


def test_every_acknowledged_write_is_visible_to_the_next_read_from_another_client(service: Service) -> None:
    dataset = service.client.create_dataset("visible")
    with service.new_client() as writer, service.new_client() as reader:
        for k in range(50):
            written = writer.add_item(dataset.id, input=k)
            assert reader.get_item(dataset.id, written.item.id).input == k
            assert reader.get_dataset(dataset.id).version == written.version
