"""The web UI's datasets pages, driven in Chromium against the live service."""

from __future__ import annotations

import re

from conftest import Service, acting_for, screenshot
from playwright.sync_api import Page, expect


def test_a_person_creates_searches_and_deletes_datasets(service: Service, page: Page) -> None:
    for name in ("support-bot", "billing-faq", "support-escalations"):
        service.client.create_dataset(name)
    page.goto(service.url + "/")
    expect(page).to_have_url(re.compile(r"/datasets$"))
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()
    expect(page.locator("#dataset-table tbody tr")).to_have_count(3)

    # The search box narrows the table as one types, and the URL can be shared.
    page.get_by_placeholder("Search by name…").fill("SUPPORT")
    expect(page.locator("#dataset-table tbody tr")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"search=SUPPORT"))
    page.reload()
    expect(page.locator("#dataset-table tbody tr")).to_have_count(2)

    # Bad input is shown where it was typed, and nothing is created.
    page.goto(service.url + "/datasets")
    page.get_by_role("button", name="New dataset").click()
    page.get_by_label("Name", exact=True).fill("with-schema")
    page.get_by_text("JSON Schemas (optional)").click()
    page.get_by_label("Input schema").fill('{"type": "object", ')
    page.get_by_role("button", name="Create dataset").click()
    expect(page.locator("#inputSchema-error")).to_contain_text("not valid JSON")
    assert service.client.list_datasets().pagination.total == 3
    page.get_by_label("Input schema").fill('{"type": "nonsense"}')
    page.get_by_role("button", name="Create dataset").click()
    expect(page.locator(".field-error")).to_be_visible()
    assert service.client.list_datasets().pagination.total == 3
    page.get_by_role("button", name="Cancel").click()

    # A valid form creates the dataset, recorded as the person named in the header bar.
    page.get_by_label("Changes made for").fill("alice")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="New dataset").click()
    page.get_by_label("Name", exact=True).fill("with-schema")
    page.get_by_text("JSON Schemas (optional)").click()
    page.get_by_label("Input schema").fill('{"type": "object", "required": ["question"]}')
    page.get_by_role("button", name="Create dataset").click()
    expect(page.get_by_role("heading", name=re.compile("with-schema"))).to_be_visible()
    created = next(d for d in service.client.list_datasets().datasets if d.name == "with-schema")
    assert created.input_schema == {"type": "object", "required": ["question"]}
    events = service.client.list_events(created.id).events
    assert events[0].actor == acting_for("alice")

    # Delete asks first; declining keeps the dataset.
    page.goto(service.url + "/datasets")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete billing-faq").click()
    expect(page.locator("#dataset-table tbody tr")).to_have_count(4)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete billing-faq").click()
    expect(page.locator("#dataset-table tbody tr")).to_have_count(3)
    assert "billing-faq" not in {d.name for d in service.client.list_datasets().datasets}
    screenshot(page, "datasets-list")


def test_api_docs_work_without_internet(service: Service, page: Page) -> None:
    # No internet: every request that leaves the service fails, as on an offline machine.
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
    scripts: list[str] = []
    page.on("requestfinished", lambda request: scripts.append(request.url)
            if request.resource_type in ("script", "stylesheet") else None)
    page.goto(service.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("evalledger", timeout=30_000)
    expect(page.locator(".opblock").first).to_be_visible()
    page.goto(service.url + "/redoc")
    expect(page.locator("h1").first).to_contain_text("evalledger", timeout=30_000)
    assert scripts and all(url.startswith(service.url + "/static/") for url in scripts)


def test_a_missing_dataset_page_says_so(service: Service, page: Page) -> None:
    response = page.goto(service.url + "/datasets/00000000-0000-0000-0000-000000000000")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name=re.compile("Not found"))).to_be_visible()


def test_a_person_duplicates_a_dataset_at_a_chosen_version(service: Service, page: Page) -> None:
    source = service.client.create_dataset("faq", description="Frequently asked")
    service.client.add_items(source.id, [{"input": "a"}, {"input": "b"}])  # v1
    service.client.add_items(source.id, [{"input": "c"}])  # v2
    page.goto(service.url + "/datasets")
    page.get_by_role("button", name="Duplicate faq").click()
    dialog = page.locator("#duplicate-dataset")
    expect(dialog.get_by_label("New name")).to_have_value("faq (copy)")
    expect(dialog.get_by_label(re.compile("Version to copy"))).to_have_value("2")

    # A version that does not exist is refused in the dialog; nothing is created.
    dialog.get_by_label(re.compile("Version to copy")).fill("9")
    dialog.get_by_role("button", name="Duplicate").click()
    expect(dialog.get_by_role("alert")).to_contain_text("no version 9")
    assert service.client.list_datasets().pagination.total == 1

    dialog.get_by_label("New name").fill("faq-v1")
    dialog.get_by_label(re.compile("Version to copy")).fill("1")
    dialog.get_by_label("New name").press("Enter")
    expect(page.get_by_role("heading", name=re.compile("faq-v1"))).to_be_visible(timeout=20_000)
    copy = next(d for d in service.client.list_datasets().datasets if d.name == "faq-v1")
    assert copy.item_count == 2 and copy.description == "Frequently asked"
    assert {item.input for item in service.client.iter_items(copy.id)} == {"a", "b"}
    expect(page.locator(".items-table tbody tr")).to_have_count(2)

    # From the dataset page, the copy is of the version being viewed.
    page.goto(f"{service.url}/datasets/{source.id}?version=2")
    page.get_by_role("button", name="Duplicate").click()
    expect(page.locator("#duplicate-dataset").get_by_label(re.compile("Version to copy"))).to_have_value("2")
    page.keyboard.press("Escape")
    expect(page.locator("#duplicate-dataset")).to_be_hidden()
    page.goto(service.url + "/datasets")
    screenshot(page, "datasets-list-duplicated")
