"""Lists page with ?page (0-based) and ?perPage, at any version, without gaps or repeats."""

from __future__ import annotations

from conftest import Service


def test_three_datasets_in_pages_of_two(service: Service) -> None:
    for name in ("a", "b", "c"):
        service.client.create_dataset(name)
    first = service.client.list_datasets(page=0, per_page=2)
    assert len(first.datasets) == 2
    assert (first.pagination.total, first.pagination.has_more) == (3, True)
    second = service.client.list_datasets(page=1, per_page=2)
    assert len(second.datasets) == 1 and second.pagination.has_more is False
    assert {d.name for d in first.datasets + second.datasets} == {"a", "b", "c"}


def test_item_pages_cover_a_version_exactly_in_creation_order(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("pages")
    added = client.add_items(dataset.id, [{"input": f"item {i}"} for i in range(25)])
    ids = [item.id for item in added.items]
    client.delete_items(dataset.id, ids[3:6])                 # version 2
    client.update_item(dataset.id, ids[10], input="changed")  # version 3
    client.add_item(dataset.id, input="late")                 # version 4

    def walk(version: int | None) -> list[str]:
        seen, page = [], 0
        while True:
            listing = client.list_items(dataset.id, page=page, per_page=10, version=version)
            seen += [item.input for item in listing.items]
            if not listing.pagination.has_more:
                assert listing.pagination.total == len(seen)
                return seen
            page += 1

    assert walk(1) == [f"item {i}" for i in range(25)]
    expected_now = [f"item {i}" for i in range(25) if i not in (3, 4, 5)]
    expected_now[expected_now.index("item 10")] = "changed"
    assert walk(None) == expected_now + ["late"]
    assert [len(client.list_items(dataset.id, page=p, per_page=10, version=1).items) for p in range(3)] == [10, 10, 5]


def test_search_is_a_literal_case_insensitive_substring(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("search")
    client.add_items(dataset.id, [
        {"input": {"q": "What is 100% of X?"}, "expectedOutput": "x"},
        {"input": {"q": "what is 100 of x"}, "expectedOutput": "snake_case"},
        {"input": {"q": "nothing"}, "expectedOutput": "WHAT"},
    ])
    assert client.list_items(dataset.id, search="100%").pagination.total == 1
    assert client.list_items(dataset.id, search="SNAKE_").pagination.total == 1
    assert client.list_items(dataset.id, search="_case").pagination.total == 1
    assert client.list_items(dataset.id, search="what", per_page=2).pagination.total == 3
    assert len(client.list_items(dataset.id, search="what", per_page=2, page=1).items) == 1


def test_versions_page_newest_first(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("versions")
    for i in range(5):
        client.add_item(dataset.id, input=i)
    first = client.list_versions(dataset.id, per_page=4)
    rest = client.list_versions(dataset.id, per_page=4, page=1)
    assert [v.version for v in first.versions] == [5, 4, 3, 2]
    assert [v.version for v in rest.versions] == [1, 0]
    assert first.pagination.total == 6 and first.pagination.has_more and not rest.pagination.has_more
