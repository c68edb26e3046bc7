"""Acting on a selection of items from the dataset page: export, a new dataset, a copy into
another dataset, delete (issue 14, flow 4)."""

from __future__ import annotations

import csv
import io
import re

from conftest import Service, screenshot
from playwright.sync_api import Page, expect


def test_a_person_selects_items_then_exports_copies_and_deletes_them(service: Service, page: Page) -> None:
    client = service.client
    source = client.create_dataset("tickets")
    client.add_items(source.id, [
        {"input": f"ticket {n}", "expectedOutput": f"answer {n}", "metadata": {"team": "a" if n < 28 else "b"},
         "externalId": f"t-{n}"}
        for n in range(30)
    ])  # v1
    target = client.create_dataset("archive")
    page.goto(f"{service.url}/datasets/{source.id}?meta=team%3Da")
    rows = page.locator(".items-table tbody tr")
    expect(rows).to_have_count(25)
    count = page.locator("[data-selection-count]")
    expect(page.get_by_role("button", name="Export")).to_be_disabled()

    # Two checked rows export as CSV.
    rows.nth(0).get_by_role("checkbox").check()
    rows.nth(1).get_by_role("checkbox").check()
    expect(count).to_have_text("2 selected")
    page.get_by_label("Export format").select_option("csv")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    exported = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [row["externalId"] for row in exported] == ["t-0", "t-1"]
    assert exported[0]["input"] == "ticket 0" and exported[0]["metadata"] == '{"team":"a"}'

    # "All matching" takes every item the filter matches, beyond this page.
    page.get_by_label(re.compile("All 28 matching")).check()
    expect(count).to_have_text("28 selected")
    page.get_by_role("button", name="New dataset").click()
    dialog = page.locator("#selection-new")
    dialog.get_by_role("button", name="Create dataset").click()  # no name yet
    expect(dialog.get_by_role("alert")).to_contain_text("Name is required")
    assert client.list_datasets().pagination.total == 2
    dialog.get_by_label("Name").fill("team-a")
    dialog.get_by_role("button", name="Create dataset").click()
    expect(page.get_by_role("heading", name=re.compile("team-a"))).to_be_visible(timeout=20_000)
    team_a = next(d for d in client.list_datasets().datasets if d.name == "team-a")
    assert team_a.item_count == 28
    assert {item.metadata["team"] for item in client.iter_items(team_a.id)} == {"a"}

    # Copy two items of team b into another dataset.
    page.goto(f"{service.url}/datasets/{source.id}?meta=team%3Db")
    expect(rows).to_have_count(2)
    page.get_by_label("Select every item on this page").check()
    expect(count).to_have_text("2 selected")
    page.get_by_role("button", name="Copy to…").click()
    page.locator("#selection-copy").get_by_label("Dataset").select_option(label="archive (0 items)")
    page.locator("#selection-copy").get_by_role("button", name="Copy items").click()
    expect(page.get_by_role("heading", name=re.compile("archive"))).to_be_visible(timeout=20_000)
    assert {item.external_id for item in client.iter_items(target.id)} == {"t-28", "t-29"}

    # Delete three items of the source, as one version, after confirming.
    page.goto(f"{service.url}/datasets/{source.id}")
    for n in range(3):
        rows.nth(n).get_by_role("checkbox").check()
    screenshot(page, "dataset-selection")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete").first.click()
    expect(page.locator(".pager")).to_contain_text("of 27", timeout=20_000)
    after = client.get_dataset(source.id)
    assert after.version == 2 and after.item_count == 27

    # At an old version the selection can be exported or copied, not deleted.
    page.goto(f"{service.url}/datasets/{source.id}?version=1")
    expect(page.locator("[data-selection-bar]").get_by_role("button", name="Delete")).to_have_count(0)
