"""The dataset page in Chromium: items at any version, the item panel and its JSON editor,
history, version diffs, the audit trail and schema editing (issue 14, flow 2)."""

from __future__ import annotations

import re
from urllib.parse import quote

from conftest import Service, screenshot
from playwright.sync_api import Page, expect

SCHEMA = {"type": "object", "required": ["question"]}


def test_a_person_browses_edits_and_reviews_a_dataset(service: Service, page: Page) -> None:
    client = service.client
    dataset = client.create_dataset("support-qa", description="Customer support questions", input_schema=SCHEMA)
    added = client.add_items(dataset.id, [
        {"input": {"question": "How do refunds work?"}, "expectedOutput": "Within 14 days",
         "metadata": {"topic": "billing"}, "externalId": "q-1"},
        {"input": {"question": "Where is my parcel?"}, "expectedOutput": "Track it online",
         "metadata": {"topic": "shipping"}, "externalId": "q-2"},
        {"input": {"question": "Can I pay by invoice?"}, "expectedOutput": "Yes, for companies",
         "metadata": {"topic": "billing", "tier": 2}, "externalId": "q-3"},
    ])  # v1
    q1, q2, _ = (item.id for item in added.items)
    client.update_item(dataset.id, q1, expected_output="Within 30 days")  # v2
    rows = page.locator(".items-table tbody tr")

    page.goto(f"{service.url}/datasets/{dataset.id}")
    expect(page.get_by_role("heading", name=re.compile("support-qa"))).to_be_visible()
    expect(rows).to_have_count(3)

    # Filter by metadata and search; both end up in the URL.
    page.get_by_label("Metadata filter (key=value)").fill("topic=billing")
    page.get_by_label("Metadata filter (key=value)").press("Enter")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"meta=topic%3Dbilling"))
    page.get_by_label("Search input and expected output").fill("invoice")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="Clear").click()
    expect(rows).to_have_count(3)

    # The item panel shows the item's JSON, formatted; its URL can be shared.
    rows.filter(has_text="q-1").get_by_role("link").click()
    panel = page.locator("#item-panel")
    expect(panel.locator('pre[data-field="input"]')).to_contain_text('"question": "How do refunds work?"')
    expect(page).to_have_url(re.compile(f"item={q1}"))

    # The JSON editor: a syntax error, then a schema violation, are shown inline; nothing is saved.
    panel.get_by_role("button", name="Edit").click()
    editor_input = panel.get_by_label("Input", exact=True)
    expect(editor_input).to_have_value(re.compile(r'"question": "How do refunds work\?"'))
    expect(panel.get_by_label("External id")).to_have_value("q-1")
    editor_input.fill('{"question": ')
    expect(panel.locator("#edit-input-msg")).to_contain_text("Not valid JSON")
    panel.get_by_role("button", name="Save (new version)").click()
    expect(panel.locator("#edit-input-msg")).to_contain_text("Input is not valid JSON")
    expect(panel.get_by_role("alert").first).to_contain_text("Nothing was saved")
    panel.get_by_label("Input", exact=True).fill('{"prompt": "How do refunds work?"}')
    panel.get_by_role("button", name="Save (new version)").click()
    expect(panel.locator("#edit-input-msg")).to_contain_text("schema")
    expect(panel.locator("#edit-input-msg")).to_contain_text("question")
    assert client.get_dataset(dataset.id).version == 2
    screenshot(page, "dataset-item-editor-errors")
    panel.get_by_label("Input", exact=True).fill('{"question": "How do refunds work in 2027?"}')
    panel.get_by_label("Why (optional, for the audit trail)").fill("policy update")
    panel.get_by_role("button", name="Save (new version)").click()
    expect(panel.locator('pre[data-field="input"]')).to_contain_text("in 2027?", timeout=20_000)
    assert client.get_item(dataset.id, q1).input == {"question": "How do refunds work in 2027?"}
    assert client.get_dataset(dataset.id).version == 3

    # Add an item from the dialog (Esc closes it; bad JSON keeps it open with the error).
    page.get_by_role("button", name="Add item").click()
    dialog = page.locator("#add-item")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Add item").click()
    dialog.get_by_label("Input", exact=True).fill('{"question": "Do you ship abroad?"')
    dialog.get_by_role("button", name="Add item").click()
    expect(dialog.locator("#add-input-msg")).to_contain_text("not valid JSON")
    dialog.get_by_label("Input", exact=True).fill('{"question": "Do you ship abroad?"}')
    dialog.get_by_label("Metadata", exact=True).fill('{"topic": "shipping"}')
    dialog.get_by_role("button", name="Add item").click()
    expect(rows).to_have_count(4, timeout=20_000)
    assert client.get_dataset(dataset.id).version == 4

    # Delete an item from its panel, after confirming.
    rows.filter(has_text="q-2").get_by_role("link").click()
    expect(panel).to_contain_text(str(q2))  # the panel is q-2's before its Delete is pressed
    page.once("dialog", lambda d: d.accept())
    panel.get_by_role("button", name="Delete").click()
    expect(rows).to_have_count(3, timeout=20_000)
    assert client.get_dataset(dataset.id).version == 5
    assert {i.external_id for i in client.iter_items(dataset.id)} == {"q-1", "q-3", None}
    # A shared link to an item deleted since still opens the page, and says so.
    page.goto(f"{service.url}/datasets/{dataset.id}?item={q2}")
    expect(panel).to_contain_text(f"Item {q2} is not in v5")
    expect(rows).to_have_count(3)

    # Version 1 shows what it held, with a banner, and no editing.
    page.get_by_label("Version", exact=True).select_option("1")
    expect(page).to_have_url(re.compile(r"version=1"))
    expect(page.locator(".banner.old-version")).to_contain_text("You are looking at version 1")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="q-2")).to_have_count(1)
    rows.filter(has_text="q-1").get_by_role("link").click()
    expect(panel.locator('pre[data-field="input"]')).to_contain_text("How do refunds work?")
    expect(panel.locator('pre[data-field="expectedOutput"]')).to_contain_text("Within 14 days")
    expect(panel.get_by_role("button", name="Edit")).to_have_count(0)
    expect(page.get_by_role("button", name="Add item")).to_have_count(0)
    screenshot(page, "dataset-old-version")
    # "As of" a moment: the version current then, in a bookmarkable URL.
    v1_made = client.list_versions(dataset.id, per_page=10).versions[-2].created_at
    page.goto(f"{service.url}/datasets/{dataset.id}?asOf={quote(v1_made.isoformat())}")
    expect(page.locator(".banner.old-version")).to_contain_text("version 1")
    page.get_by_label("or as of (UTC)").fill("2000-01-01T00:00:00")
    page.get_by_role("button", name="View").click()
    expect(page.get_by_role("heading", name=re.compile("Not found"))).to_be_visible()
    expect(page.locator(".error-detail")).to_contain_text("did not exist")

    # The item's history: each revision with the field it changed.
    page.goto(f"{service.url}/datasets/{dataset.id}/items/{q1}/history")
    entries = page.locator(".timeline-entry")
    expect(entries).to_have_count(3)
    expect(entries.nth(0)).to_contain_text("input.question")
    expect(entries.nth(0).locator(".diff-del")).to_contain_text("How do refunds work?")
    expect(entries.nth(0).locator(".diff-add")).to_contain_text("in 2027?")
    expect(entries.nth(1)).to_contain_text("expectedOutput")
    expect(entries.nth(2)).to_contain_text("created")
    screenshot(page, "dataset-item-history")

    # Compare any two versions, field by field.
    page.get_by_role("link", name="Versions & diffs").click()
    expect(page.locator("table.table tbody tr")).to_have_count(6)
    page.get_by_label("From version").fill("1")
    page.get_by_label("to version").fill("5")
    page.get_by_role("button", name="Show the differences").click()
    expect(page).to_have_url(re.compile(r"compare\?from=1&to=5"))
    expect(page.locator(".stat").nth(0)).to_contain_text("+1")
    expect(page.locator(".stat").nth(1)).to_contain_text("~1")
    expect(page.locator(".stat").nth(2)).to_contain_text("−1")
    changed = page.locator(".diff-entry.changed")
    expect(changed).to_contain_text("input.question")
    expect(changed).to_contain_text("expectedOutput")
    screenshot(page, "dataset-compare")

    # The audit trail: who, when, why, what.
    page.get_by_role("link", name="Audit trail").click()
    audit = page.locator("table.audit tbody tr")
    expect(audit).to_have_count(6)
    expect(audit.nth(0)).to_contain_text("Deleted items")
    expect(audit.nth(1)).to_contain_text("Added items")
    expect(audit.nth(2)).to_contain_text("Updated items")
    expect(audit.nth(2)).to_contain_text("policy update")
    expect(audit.nth(5)).to_contain_text("Created the dataset")
    screenshot(page, "dataset-audit")

    # A schema the current items break is refused, naming them; nothing changes.
    page.get_by_role("link", name="Details & schemas").click()
    page.get_by_label("Input JSON Schema").fill('{"type": "object", "required": ["question", "locale"]}')
    page.get_by_role("button", name="Save details").click()
    expect(page.get_by_role("alert")).to_contain_text("3 current items would break the new schema")
    expect(page.locator("ul.failing > li")).to_have_count(3)
    expect(page.locator("ul.failing")).to_contain_text("locale")
    expect(page.locator("ul.failing > li > a").first).to_have_attribute("href", re.compile(r"\?item=[0-9a-f-]{36}$"))
    screenshot(page, "dataset-schema-refused")
    assert client.get_dataset(dataset.id).input_schema == SCHEMA
    page.get_by_label("Input JSON Schema").fill('{"type": "object", "required": ["question"], "properties": {"question": {"type": "string"}}}')
    page.get_by_role("button", name="Save details").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    assert client.get_dataset(dataset.id).input_schema["properties"] == {"question": {"type": "string"}}

    page.goto(f"{service.url}/datasets/{dataset.id}?item={q1}")
    screenshot(page, "dataset-detail")
