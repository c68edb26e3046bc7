"""Lists page with `?page` (0-based) and `?perPage` and answer
`{"<things>": [...], "pagination": {"total", "page", "perPage", "hasMore"}}`. Walking the pages
of a list gives every row exactly once, in the list's order, at any version."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from conftest import Service

from evalledger import Client


def walk_items(client: Client, dataset_id: UUID, *, per_page: int, version: int | None = None,
               search: str | None = None) -> list[list[Any]]:
    """Every page of a listing, checking each page's pagination block on the way."""
    pages: list[list[Any]] = []
    page = 0
    while True:
        listing = client.list_items(dataset_id, page=page, per_page=per_page, version=version, search=search)
        p = listing.pagination
        assert (p.page, p.per_page) == (page, per_page)
        assert p.has_more == ((page + 1) * per_page < p.total)
        if version is not None:
            assert listing.version == version
        pages.append(listing.items)
        if not p.has_more:
            assert sum(len(items) for items in pages) == p.total
            return pages
        page += 1


def flat(pages: list[list[Any]]) -> list[Any]:
    return [item for items in pages for item in items]


def test_three_datasets_in_pages_of_two(service: Service) -> None:
    client = service.client
    for name in ("first", "second", "third"):
        client.create_dataset(name)

    page0 = client.list_datasets(page=0, per_page=2)
    assert len(page0.datasets) == 2
    assert page0.pagination.model_dump() == {"total": 3, "page": 0, "per_page": 2, "has_more": True}
    page1 = client.list_datasets(page=1, per_page=2)
    assert len(page1.datasets) == 1
    assert page1.pagination.model_dump() == {"total": 3, "page": 1, "per_page": 2, "has_more": False}
    # newest first, each once
    assert [d.name for d in page0.datasets + page1.datasets] == ["third", "second", "first"]

    raw = client.http.get("/api/datasets", params={"page": 0, "perPage": 2}).json()
    assert raw["pagination"] == {"total": 3, "page": 0, "perPage": 2, "hasMore": True}
    assert set(raw) == {"datasets", "pagination"}


def test_a_page_past_the_end_is_empty_with_the_true_total(service: Service) -> None:
    client = service.client
    for name in ("a", "b", "c"):
        client.create_dataset(name)
    beyond = client.list_datasets(page=5, per_page=2)
    assert beyond.datasets == [] and beyond.pagination.total == 3 and not beyond.pagination.has_more
    exact = client.list_datasets(page=0, per_page=3)
    assert len(exact.datasets) == 3 and not exact.pagination.has_more


def test_deleted_datasets_are_not_counted(service: Service) -> None:
    client = service.client
    kept = [client.create_dataset(f"kept {i}") for i in range(3)]
    doomed = client.create_dataset("doomed")
    client.delete_dataset(doomed.id)
    page0 = client.list_datasets(page=0, per_page=2)
    assert page0.pagination.total == 3 and page0.pagination.has_more
    page1 = client.list_datasets(page=1, per_page=2)
    assert len(page1.datasets) == 1 and not page1.pagination.has_more
    assert {d.id for d in page0.datasets + page1.datasets} == {d.id for d in kept}


def test_an_empty_list_has_a_total_of_zero(service: Service) -> None:
    client = service.client
    none = client.list_datasets()
    assert none.datasets == [] and none.pagination.total == 0 and not none.pagination.has_more
    dataset = client.create_dataset("empty")
    items = client.list_items(dataset.id)
    assert items.items == [] and items.pagination.total == 0 and not items.pagination.has_more
    assert items.version == 0


def test_twenty_five_items_come_in_pages_of_ten_ten_and_five_in_creation_order(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("twenty-five")
    batch = client.add_items(dataset.id, [{"input": {"n": i}, "expectedOutput": f"a{i}"} for i in range(20)])
    singles = [client.add_item(dataset.id, input={"n": i}, expected_output=f"a{i}").item.id for i in range(20, 25)]
    created = [ref.id for ref in batch.items] + singles
    assert client.get_dataset(dataset.id).version == 6

    pages = walk_items(client, dataset.id, per_page=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    items = flat(pages)
    assert [item.id for item in items] == created  # creation order, no duplicates, no gaps
    assert [item.input for item in items] == [{"n": i} for i in range(25)]
    assert len({item.id for item in items}) == 25
    assert client.list_items(dataset.id, page=3, per_page=10).items == []


def test_pages_of_an_older_version_still_hold_exactly_what_it_held(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("edited")
    added = client.add_items(dataset.id, [{"input": f"item {i}", "expectedOutput": i} for i in range(25)])
    ids = [ref.id for ref in added.items]                                         # version 1: 25 items
    client.delete_items(dataset.id, [ids[0], ids[12], ids[24]])                   # version 2: 22
    client.update_item(dataset.id, ids[5], input="item 5 (edited)")               # version 3
    client.update_item(dataset.id, ids[13], expected_output="thirteen")           # version 4
    late = [client.add_item(dataset.id, input=f"late {i}").item.id for i in range(3)]  # versions 5-7: 25
    assert client.get_dataset(dataset.id).version == 7

    at_1 = walk_items(client, dataset.id, per_page=10, version=1)
    assert [len(page) for page in at_1] == [10, 10, 5]
    assert [item.id for item in flat(at_1)] == ids
    assert [item.input for item in flat(at_1)] == [f"item {i}" for i in range(25)]
    assert all(item.valid_from == 1 for item in flat(at_1))

    at_2 = walk_items(client, dataset.id, per_page=10, version=2)
    assert [len(page) for page in at_2] == [10, 10, 2]
    assert [item.id for item in flat(at_2)] == [ids[i] for i in range(25) if i not in (0, 12, 24)]

    now = walk_items(client, dataset.id, per_page=10)
    assert [len(page) for page in now] == [10, 10, 5]
    current = flat(now)
    survivors = [i for i in range(25) if i not in (0, 12, 24)]
    assert [item.id for item in current] == [ids[i] for i in survivors] + late  # an edit keeps its place
    by_id = {item.id: item for item in current}
    assert by_id[ids[5]].input == "item 5 (edited)" and by_id[ids[5]].valid_from == 3
    assert by_id[ids[13]].expected_output == "thirteen" and by_id[ids[13]].valid_from == 4
    assert len(by_id) == 25

    at_3 = flat(walk_items(client, dataset.id, per_page=10, version=3))
    assert {item.id: item.expected_output for item in at_3}[ids[13]] == 13  # not yet edited at 3
    assert {item.id: item.input for item in at_3}[ids[5]] == "item 5 (edited)"

    # a version read after more writes reads the same as before them
    client.add_item(dataset.id, input="later still")
    assert [item.id for item in flat(walk_items(client, dataset.id, per_page=10, version=1))] == ids
    assert [item.id for item in flat(walk_items(client, dataset.id, per_page=10, version=7))] == [
        item.id for item in current
    ]


def test_page_sizes_that_do_not_divide_the_total_still_cover_it_exactly(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("sizes")
    created = [ref.id for ref in client.add_items(dataset.id, [{"input": i} for i in range(25)]).items]
    for per_page in (1, 2, 3, 7, 24, 25, 26, 1000):
        pages = walk_items(client, dataset.id, per_page=per_page)
        assert [item.id for item in flat(pages)] == created, per_page
        assert len(pages) == max(1, -(-25 // per_page))
    twenty = client.list_items(dataset.id, page=1, per_page=10)
    assert twenty.pagination.has_more
    exact = client.list_items(dataset.id, page=4, per_page=5)
    assert len(exact.items) == 5 and not exact.pagination.has_more


def test_search_pages_through_matches_in_creation_order(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("search")
    rows = []
    for i in range(25):
        if i % 2 == 0:
            rows.append({"input": {"question": f"How do I RESET item {i}?"}, "expectedOutput": {"answer": f"a{i}"}})
        elif i % 3 == 0:
            rows.append({"input": {"question": f"other {i}"}, "expectedOutput": {"answer": f"Reset it ({i})"}})
        else:
            rows.append({"input": {"question": f"unrelated {i}"}, "expectedOutput": {"answer": "no"}})
    ids = [ref.id for ref in client.add_items(dataset.id, rows).items]
    matching = [ids[i] for i in range(25) if i % 2 == 0 or i % 3 == 0]  # 13 + 4 = 17

    for term in ("reset", "RESET", "ReSeT"):
        pages = walk_items(client, dataset.id, per_page=5, search=term)
        assert [len(page) for page in pages] == [5, 5, 5, 2]
        assert [item.id for item in flat(pages)] == matching
    assert client.list_items(dataset.id, search="reset", page=9, per_page=5).pagination.total == 17
    assert client.list_items(dataset.id, search="nothing like this").pagination.total == 0


def test_search_at_an_older_version_matches_what_the_items_said_then(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("search history")
    ids = [ref.id for ref in client.add_items(dataset.id, [{"input": f"needle {i}"} for i in range(12)]).items]
    client.update_item(dataset.id, ids[3], input="haystack")       # version 2
    client.delete_items(dataset.id, ids[8:10])                      # version 3
    client.add_item(dataset.id, input="one more NEEDLE")           # version 4

    then = walk_items(client, dataset.id, per_page=5, version=1, search="needle")
    assert [len(page) for page in then] == [5, 5, 2]
    assert [item.id for item in flat(then)] == ids
    now = flat(walk_items(client, dataset.id, per_page=5, search="needle"))
    assert [item.input for item in now] == [f"needle {i}" for i in range(12) if i not in (3, 8, 9)] + [
        "one more NEEDLE"
    ]
    assert [item.id for item in flat(walk_items(client, dataset.id, per_page=5, version=2, search="haystack"))] == [
        ids[3]
    ]
    assert client.list_items(dataset.id, version=1, search="haystack").pagination.total == 0


def test_percent_and_underscore_in_a_search_are_literal(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("literal")
    client.add_items(dataset.id, [
        {"input": "a 100% refund", "expectedOutput": "ok"},      # 0
        {"input": "a 1000 refund", "expectedOutput": "ok"},      # 1: 100% as a wildcard would match
        {"input": "snake_case name", "expectedOutput": "ok"},    # 2
        {"input": "snakeXcase name", "expectedOutput": "ok"},    # 3: _ as a wildcard would match
        {"input": "plain", "expectedOutput": "50%_off"},         # 4
        {"input": "plain", "expectedOutput": "50 off"},          # 5
        {"input": "back\\slash", "expectedOutput": "ok"},        # 6
    ])

    def matches(term: str) -> list[tuple[Any, Any]]:
        return [(i.input, i.expected_output) for i in client.list_items(dataset.id, search=term).items]

    assert matches("100%") == [("a 100% refund", "ok")]
    assert matches("snake_case") == [("snake_case name", "ok")]
    assert matches("SNAKE_") == [("snake_case name", "ok")]
    assert matches("%_") == [("plain", "50%_off")]
    assert matches("%") == [("a 100% refund", "ok"), ("plain", "50%_off")]
    assert matches("_") == [("snake_case name", "ok"), ("plain", "50%_off")]
    assert client.list_items(dataset.id, search="%%").pagination.total == 0
    assert client.list_items(dataset.id, search="__").pagination.total == 0


def test_a_search_finds_text_as_it_was_written_even_with_quotes_and_backslashes(service: Service) -> None:
    """The search is over the text of input and expectedOutput, not over their JSON encoding:
    a quote or a backslash in a value is found by the same quote or backslash."""
    client = service.client
    dataset = client.create_dataset("escapes")
    client.add_items(dataset.id, [
        {"input": {"path": "C:\\Users\\me"}},
        {"input": {"quote": 'she said "hi"'}},
        {"input": "two\nlines"},
        {"input": "tab\there"},
    ])
    terms = ["C:\\Users", 'said "hi"', "two\nlines", "tab\there"]
    found = {term: client.list_items(dataset.id, search=term).pagination.total for term in terms}
    assert found == dict.fromkeys(terms, 1)


def test_versions_page_newest_first(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("versions")
    ids = [client.add_item(dataset.id, input=i).item.id for i in range(8)]      # versions 1-8
    client.update_item(dataset.id, ids[0], input="edited")                       # 9
    client.delete_items(dataset.id, ids[1:4])                                    # 10
    client.add_items(dataset.id, [{"input": "x"}, {"input": "y"}])               # 11
    client.update_dataset(dataset.id, name="renamed")                            # details: no version

    seen = []
    for page, expected in enumerate(([11, 10, 9, 8, 7], [6, 5, 4, 3, 2], [1, 0])):
        listing = client.list_versions(dataset.id, page=page, per_page=5)
        assert [v.version for v in listing.versions] == expected
        assert listing.pagination.total == 12
        assert listing.pagination.has_more == (page < 2)
        seen += listing.versions
    assert client.list_versions(dataset.id, page=3, per_page=5).versions == []
    assert client.list_versions(dataset.id, page=3, per_page=5).pagination.total == 12

    by_version = {v.version: v for v in seen}
    assert (by_version[11].added, by_version[11].updated, by_version[11].removed, by_version[11].item_count) == (
        2, 0, 0, 7)
    assert (by_version[10].removed, by_version[10].item_count) == (3, 5)
    assert (by_version[9].updated, by_version[9].item_count) == (1, 8)
    assert (by_version[0].added, by_version[0].item_count) == (0, 0)
    assert [by_version[v].item_count for v in range(1, 9)] == list(range(1, 9))
    created = [by_version[v].created_at for v in range(12)]
    assert created == sorted(created)


def test_events_page_oldest_first(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("events")
    for i in range(4):
        client.add_item(dataset.id, input=i)
    first = client.list_events(dataset.id, page=0, per_page=2)
    rest = client.list_events(dataset.id, page=1, per_page=2)
    last = client.list_events(dataset.id, page=2, per_page=2)
    assert [e.aggregate_version for e in first.events + rest.events + last.events] == [1, 2, 3, 4, 5]
    assert [e.type for e in first.events] == ["Created", "ItemsAdded"]
    assert first.pagination.total == 5 and first.pagination.has_more and not last.pagination.has_more
