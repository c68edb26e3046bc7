"""Many clients writing to one dataset at once: every acknowledged write gets a version of its
own, the versions run 1..N without gaps or repeats, nothing acknowledged is lost, and what a
write acknowledges is visible to the very next read by anyone."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from conftest import acting_for, Service

from evalledger import Client
from evalledger.client import ApiError

T = TypeVar("T")
WRITERS = 20


def at_once(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run `work(k)` for k in 0..count-1 in threads released together; each result or error."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(k: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[k] = work(k)
        except BaseException as error:  # noqa: BLE001 - returned to the caller
            results[k] = error

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a writer did not finish"
    return results


def by_own_clients(service: Service, work: Callable[[Client, int], T],
                   actor: Callable[[int], str] | None = None) -> list[T | BaseException]:
    """`work(client, k)` for WRITERS writers at once, each with a client of its own (acting
    for `actor(k)` if given)."""
    def run(k: int) -> T:
        with service.new_client(**({"actor": actor(k)} if actor else {})) as client:
            return work(client, k)

    return at_once(WRITERS, run)


def split(results: list[T | BaseException]) -> tuple[list[T], list[BaseException]]:
    """The results that succeeded, and the errors."""
    return ([r for r in results if not isinstance(r, BaseException)],  # type: ignore[misc]
            [r for r in results if isinstance(r, BaseException)])


def all_succeeded(results: list[T | BaseException]) -> list[T]:
    succeeded, errors = split(results)
    assert not errors, f"{len(errors)} writer(s) failed: {errors[:3]}"
    return succeeded


def every_item(client: Client, dataset_id: UUID, version: int | None = None) -> list[Any]:
    return list(client.iter_items(dataset_id, version=version, per_page=7))


def check_version_rows(client: Client, dataset_id: UUID, last: int) -> list[Any]:
    """The versions list is exactly last..0, and each row's count follows from the previous."""
    versions = client.list_versions(dataset_id, per_page=1000).versions
    assert [v.version for v in versions] == list(range(last, -1, -1))
    oldest_first = list(reversed(versions))
    for previous, row in zip(oldest_first, oldest_first[1:], strict=False):
        assert row.item_count == previous.item_count + row.added - row.removed, row
    return oldest_first


def test_twenty_clients_adding_one_item_each_at_once_get_versions_one_to_twenty(service: Service) -> None:
    dataset = service.client.create_dataset("crowd")

    def add(client: Client, k: int) -> Any:
        return client.add_item(dataset.id, input={"writer": k}, expected_output=f"answer {k}", external_id=f"w{k}")

    written = all_succeeded(by_own_clients(service, add, actor=lambda k: f"writer-{k}"))
    versions = [w.version for w in written]
    assert len(set(versions)) == WRITERS, f"repeated versions: {sorted(versions)}"
    assert sorted(versions) == list(range(1, WRITERS + 1))
    for k, w in enumerate(written):
        assert w.changed and w.item.input == {"writer": k} and w.item.valid_from == w.version

    client = service.client
    dataset_now = client.get_dataset(dataset.id)
    assert (dataset_now.version, dataset_now.item_count) == (WRITERS, WRITERS)
    listed = every_item(client, dataset.id)
    assert len(listed) == WRITERS
    assert {item.id for item in listed} == {w.item.id for w in written}
    # creation order is version order
    assert [item.id for item in listed] == [w.item.id for w in sorted(written, key=lambda w: w.version)]

    rows = check_version_rows(client, dataset.id, WRITERS)
    assert all((row.added, row.updated, row.removed) == (1, 0, 0) for row in rows[1:])
    actors = {row.version: row.actor for row in rows[1:]}
    assert {actors[w.version] for w in written} == {acting_for(f"writer-{k}") for k in range(WRITERS)}
    assert all(actors[w.version] == acting_for(f"writer-{k}") for k, w in enumerate(written))

    # each acknowledged version reads back as exactly the items acknowledged up to it
    by_version = sorted(written, key=lambda w: w.version)
    for w in (by_version[0], by_version[9], by_version[-1]):
        expected = {x.item.id for x in by_version if x.version <= w.version}
        assert {item.id for item in every_item(client, dataset.id, version=w.version)} == expected
    events = client.list_events(dataset.id, per_page=100).events
    assert [e.version for e in events] == list(range(0, WRITERS + 1))


def test_twenty_clients_adding_batches_at_once_get_one_version_per_batch(service: Service) -> None:
    dataset = service.client.create_dataset("batches")
    per_batch = 25

    def add(client: Client, k: int) -> Any:
        return client.add_items(dataset.id, [{"input": {"writer": k, "n": j}} for j in range(per_batch)])

    written = all_succeeded(by_own_clients(service, add))
    assert sorted(w.version for w in written) == list(range(1, WRITERS + 1))
    assert all(w.count == per_batch for w in written)

    client = service.client
    assert client.get_dataset(dataset.id).item_count == WRITERS * per_batch
    listed = every_item(client, dataset.id)
    assert len(listed) == WRITERS * per_batch
    assert len({item.id for item in listed}) == WRITERS * per_batch
    assert {item.id for item in listed} == {ref.id for w in written for ref in w.items}
    # a batch is one version, in one piece: its items sit together, in its own order
    expected_order = [ref.id for w in sorted(written, key=lambda w: w.version) for ref in w.items]
    assert [item.id for item in listed] == expected_order
    for w in written:
        own = [item for item in listed if item.valid_from == w.version]
        assert [item.id for item in own] == [ref.id for ref in w.items]

    rows = check_version_rows(client, dataset.id, WRITERS)
    assert all(row.added == per_batch for row in rows[1:])


def test_concurrent_adds_updates_and_deletes_each_get_their_own_version(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("mixed")
    seed = client.add_items(dataset.id, [{"input": f"seed {i}"} for i in range(WRITERS)]).items  # version 1

    def write(own: Client, k: int) -> Any:
        if k % 3 == 0:
            return own.add_item(dataset.id, input=f"new {k}")
        if k % 3 == 1:
            return own.update_item(dataset.id, seed[k].id, input=f"edited {k}")
        return own.delete_item(dataset.id, seed[k].id)

    written = all_succeeded(by_own_clients(service, write))
    assert sorted(w.version for w in written) == list(range(2, WRITERS + 2))
    adds = [k for k in range(WRITERS) if k % 3 == 0]
    deletes = [k for k in range(WRITERS) if k % 3 == 2]
    edits = [k for k in range(WRITERS) if k % 3 == 1]

    now = client.get_dataset(dataset.id)
    assert now.version == WRITERS + 1
    assert now.item_count == WRITERS + len(adds) - len(deletes)
    listed = {item.id: item.input for item in every_item(client, dataset.id)}
    assert len(listed) == now.item_count
    for k in edits:
        assert listed[seed[k].id] == f"edited {k}"
    for k in deletes:
        assert seed[k].id not in listed
    assert {f"new {k}" for k in adds} <= set(listed.values())
    check_version_rows(client, dataset.id, WRITERS + 1)


def test_one_external_id_claimed_by_twenty_clients_at_once_goes_to_exactly_one(service: Service) -> None:
    dataset = service.client.create_dataset("race")

    results = by_own_clients(service, lambda client, k: client.add_item(dataset.id, input={"writer": k},
                                                                        external_id="the-one"))
    winners, losers = split(results)
    assert len(winners) == 1, results
    assert all(isinstance(r, ApiError) and r.status == 409 and r.type == "external-id-taken" for r in losers), losers
    client = service.client
    assert (client.get_dataset(dataset.id).version, client.get_dataset(dataset.id).item_count) == (1, 1)
    assert client.list_items(dataset.id).items[0].id == winners[0].item.id
    assert client.list_events(dataset.id).pagination.total == 2


def test_one_item_deleted_by_twenty_clients_at_once_is_deleted_once(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("delete race")
    item = client.add_item(dataset.id, input="target").item

    results = by_own_clients(service, lambda own, _: own.delete_item(dataset.id, item.id))
    successes, errors = split(results)
    assert len(successes) == 1, results
    assert all(isinstance(r, ApiError) and r.status == 404 for r in errors)
    assert successes[0].version == 2
    assert client.get_dataset(dataset.id).version == 2
    assert client.list_versions(dataset.id).pagination.total == 3


def test_twenty_clients_editing_one_item_at_once_leave_twenty_revisions(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("edit race")
    item = client.add_item(dataset.id, input="original").item

    written = all_succeeded(by_own_clients(service, lambda own, k: own.update_item(dataset.id, item.id,
                                                                                    input=f"edit {k}")))
    assert sorted(w.version for w in written) == list(range(2, WRITERS + 2))
    for k, w in enumerate(written):
        assert w.item.input == f"edit {k}" and w.item.valid_from == w.version  # what that write made
        assert client.get_item(dataset.id, item.id, version=w.version).input == f"edit {k}"
    history = client.item_history(dataset.id, item.id).history
    assert [h.version for h in history] == list(range(WRITERS + 1, 0, -1))
    last = max(written, key=lambda w: w.version)
    assert client.get_item(dataset.id, item.id).input == last.item.input


def test_twenty_clients_writing_their_own_datasets_at_once_do_not_mix(service: Service) -> None:
    def own_dataset(client: Client, k: int) -> tuple[UUID, list[UUID]]:
        dataset = client.create_dataset(f"own {k}")
        ids = [client.add_item(dataset.id, input={"owner": k, "n": n}).item.id for n in range(5)]
        return dataset.id, ids

    owned = all_succeeded(by_own_clients(service, own_dataset))
    client = service.client
    assert client.list_datasets(per_page=100).pagination.total == WRITERS
    for k, (dataset_id, ids) in enumerate(owned):
        dataset = client.get_dataset(dataset_id)
        assert (dataset.version, dataset.item_count) == (5, 5)
        items = every_item(client, dataset_id)
        assert [item.id for item in items] == ids
        assert all(item.input["owner"] == k for item in items)


def test_an_acknowledged_write_is_visible_to_the_next_read_from_another_client(service: Service) -> None:
    dataset = service.client.create_dataset("visible")
    with service.new_client(actor="writer") as writer, service.new_client(actor="reader") as reader:
        live: list[UUID] = []
        for k in range(50):
            kind = k % 5
            if kind in (0, 1, 2) or not live:
                written = writer.add_item(dataset.id, input={"k": k})
                live.append(written.item.id)
                assert reader.get_item(dataset.id, written.item.id).input == {"k": k}
            elif kind == 3:
                written = writer.update_item(dataset.id, live[0], input={"edited": k})
                assert reader.get_item(dataset.id, live[0]).input == {"edited": k}
            else:
                gone = live.pop()
                written = writer.delete_item(dataset.id, gone)
                try:
                    reader.get_item(dataset.id, gone)
                    raise AssertionError(f"deleted item {gone} still readable after version {written.version}")
                except ApiError as error:
                    assert error.status == 404
            assert reader.get_dataset(dataset.id).version == written.version
            assert reader.list_items(dataset.id, per_page=1).version == written.version
            assert reader.list_versions(dataset.id, per_page=1).versions[0].version == written.version
            assert reader.list_items(dataset.id, per_page=1).pagination.total == len(live)


def test_read_your_writes_holds_while_others_write_at_the_same_time(service: Service) -> None:
    dataset = service.client.create_dataset("busy")
    other = service.client.create_dataset("busy elsewhere")
    stop = threading.Event()
    background_errors: list[BaseException] = []

    def keep_writing(target: UUID) -> None:
        with service.new_client() as client:
            n = 0
            while not stop.is_set():
                try:
                    client.add_item(target, input={"background": n})
                except BaseException as error:  # noqa: BLE001 - reported below
                    background_errors.append(error)
                    return
                n += 1

    threads = [threading.Thread(target=keep_writing, args=(target,)) for target in (dataset.id, other.id) * 2]
    for thread in threads:
        thread.start()
    try:
        with service.new_client() as writer, service.new_client() as reader:
            for k in range(50):
                written = writer.add_item(dataset.id, input={"foreground": k})
                assert reader.get_item(dataset.id, written.item.id).input == {"foreground": k}
                assert reader.get_item(dataset.id, written.item.id, version=written.version).input == {
                    "foreground": k
                }
                assert reader.get_dataset(dataset.id).version >= written.version
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not background_errors, background_errors
    final = service.client.get_dataset(dataset.id)
    check_version_rows(service.client, dataset.id, final.version)
    assert final.item_count == final.version
