"""Importing a file from the browser: upload, preview, column mapping, a dry run with
row-numbered errors, then one version (issue 14, flow 3)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
from conftest import Service, screenshot
from playwright.sync_api import Page, expect

CSV = (
    "question,answer,topic,id\n"
    "How do refunds work?,Within 14 days,billing,q-1\n"
    ",Track it online,shipping,q-2\n"
    "Can I pay by invoice?,\"{\"\"yes\"\": true}\",billing,q-3\n"
    "Do you ship abroad?,Yes,shipping,q-4\n"
)


def test_a_person_imports_a_csv_with_a_bad_row_then_a_jsonl_upsert(service: Service, page: Page,
                                                                  tmp_path: Path) -> None:
    dataset = service.client.create_dataset("imported")
    csv_file = tmp_path / "support.csv"
    csv_file.write_text(CSV)
    page.goto(f"{service.url}/datasets/{dataset.id}")
    page.get_by_role("link", name="Import", exact=True).click()
    expect(page).to_have_url(re.compile(f"/datasets/{dataset.id}/import$"))

    page.get_by_label("File (.csv, .json, .jsonl)").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and preview").click()
    preview = page.locator("table.preview")
    expect(preview.locator("tbody tr")).to_have_count(4, timeout=20_000)
    # Columns named like the usual roles are mapped; the person maps the rest.
    expect(page.get_by_label("Column question becomes")).to_have_value("input")
    expect(page.get_by_label("Column answer becomes")).to_have_value("expectedOutput")
    expect(page.get_by_label("Column id becomes")).to_have_value("externalId")
    expect(page.get_by_label("Column topic becomes")).to_have_value("ignore")
    page.get_by_label("Column topic becomes").select_option("metadata")

    # The dry run names the bad row (the header is row 1) and writes nothing.
    page.get_by_role("button", name="Check (dry run)").click()
    result = page.locator("#import-result")
    expect(result.locator("table.errors tbody tr")).to_have_count(1, timeout=20_000)
    expect(result.locator("table.errors")).to_contain_text("input is missing or empty")
    expect(result.locator("table.errors td").first).to_have_text("3")
    expect(result).to_contain_text("3 valid")
    expect(result).to_contain_text("Dry run: nothing was written")
    screenshot(page, "import-dry-run")

    # Importing with the bad row is refused as a whole; skipping it imports the rest.
    page.get_by_role("button", name="Import as one version").click()
    expect(result.get_by_role("alert")).to_contain_text("Nothing was imported", timeout=20_000)
    assert service.client.get_dataset(dataset.id).version == 0
    page.get_by_label("Skip invalid rows (import the valid ones)").check()
    page.get_by_role("button", name="Import as one version").click()
    expect(result.get_by_role("status")).to_contain_text("Imported 4 rows as version 1", timeout=30_000)
    items = {item.external_id: item for item in service.client.iter_items(dataset.id)}
    assert set(items) == {"q-1", "q-3", "q-4"}
    assert items["q-1"].input == "How do refunds work?" and items["q-1"].metadata == {"topic": "billing"}
    assert items["q-3"].expected_output == {"yes": True}
    screenshot(page, "import-done")

    # A JSONL upsert updates by externalId, as one more version.
    jsonl = tmp_path / "fixes.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in (
        {"input": "How do refunds work?", "expectedOutput": "Within 30 days", "externalId": "q-1"},
        {"input": "Is there a student discount?", "externalId": "q-5"},
    )))
    page.goto(f"{service.url}/datasets/{dataset.id}/import")
    page.get_by_label("File (.csv, .json, .jsonl)").set_input_files(str(jsonl))
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.locator("#import-result")).to_contain_text("2 valid", timeout=20_000)
    page.get_by_role("radio", name=re.compile("Upsert")).check()
    page.get_by_role("button", name="Import as one version").click()
    expect(page.locator("#import-result").get_by_role("status")).to_contain_text("1 added, 1 updated",
                                                                                   timeout=30_000)
    assert service.client.get_dataset(dataset.id).version == 2
    fixed = {item.external_id: item for item in service.client.iter_items(dataset.id)}
    assert fixed["q-1"].expected_output == "Within 30 days" and len(fixed) == 4

    # A file whose format cannot be told is refused before anything else.
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    page.goto(f"{service.url}/datasets/{dataset.id}/import")
    page.get_by_label("File (.csv, .json, .jsonl)").set_input_files(str(odd))
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.locator("#import-step").get_by_role("alert")).to_contain_text("Name it .csv, .json or .jsonl")
