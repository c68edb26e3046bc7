"""The web UI's comparison, driven in Chromium: check runs in a history, compare, read the
verdicts, change thresholds in the page (and so the URL), filter the items."""

from __future__ import annotations

import re
from typing import Any

from conftest import Service, screenshot
from playwright.sync_api import Page, expect


def caller_run(service: Service, dataset_id: Any, name: str, scores: dict[str, float]) -> str:
    """A caller-driven run whose `quality` score per item is given (items left out get no result)."""
    run = service.client.create_run(dataset_id, name=name)
    service.client.submit_results(run.id, [
        {"itemId": item_id, "output": "answer", "latencyMs": 10 + k,
         "scores": [{"scorerId": "quality", "score": score}]}
        for k, (item_id, score) in enumerate(scores.items())
    ])
    service.client.finalize_run(run.id)
    return str(run.id)


def test_a_person_compares_runs(service: Service, page: Page) -> None:
    dataset = service.client.create_dataset("compare-me")
    service.client.add_items(dataset.id, [{"input": {"q": f"question {k}"}, "expectedOutput": "a"} for k in range(12)])
    ids = [str(item.id) for item in service.client.list_items(dataset.id, per_page=100).items]
    baseline = caller_run(service, dataset.id, "baseline", {i: 1.0 for i in ids})
    # The dataset changes (one item's input), then the candidates run on the new version.
    service.client.update_item(dataset.id, ids[0], input={"q": "question 0, reworded"})
    worse = caller_run(service, dataset.id, "worse", {i: (0.0 if k < 10 else 1.0) for k, i in enumerate(ids[:-1])})
    same = caller_run(service, dataset.id, "same", {i: 1.0 for i in ids})

    # Check the three runs in the dataset's history and press Compare: the oldest is the baseline.
    page.goto(f"{service.url}/datasets/{dataset.id}/runs")
    expect(page.get_by_role("button", name="Compare selected")).to_be_disabled()
    for name in ("baseline", "worse", "same"):
        page.get_by_role("checkbox", name=f"Select {name}").check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page).to_have_url(re.compile(rf"/compare\?baseline={baseline}&candidate={worse}&candidate={same}$"))
    expect(page.locator("#overall-verdict")).to_have_text("Regression found")
    sections = page.locator("section.candidate")
    expect(sections).to_have_count(2)
    expect(sections.nth(0).locator('tr[data-scorer="quality"] .verdict')).to_have_text("regressed")
    expect(sections.nth(1).locator('tr[data-scorer="quality"] .verdict')).to_have_text("no significant change")
    expect(sections.nth(0)).to_contain_text("1 only in baseline")
    expect(page.locator("#items svg.chart")).to_have_count(1)

    # The API says the same.
    api = service.client.compare(baseline, worse)
    assert api.has_regression and api.scorers["quality"].verdict == "regressed"
    p_value = api.scorers["quality"].p_value
    expect(sections.nth(0).locator('tr[data-scorer="quality"]')).to_contain_text(f"{p_value:.4f}".rstrip("0"))

    # The items: filter by status; the reworded item is flagged with its field change.
    page.get_by_role("link", name="Regressed", exact=True).click()
    expect(page).to_have_url(re.compile(r"status=regressed"))
    rows = page.locator(".compare-items tbody tr")
    expect(rows).to_have_count(10)
    expect(page.locator('.compare-items tr[data-status="regressed"]')).to_have_count(10)
    expect(page.locator(".compare-items")).to_contain_text("question 0, reworded")
    expect(page.locator(".compare-items .changed-flag")).to_have_count(1)
    expect(page.locator(".compare-items")).to_contain_text("input.q")
    page.get_by_role("link", name="Only in baseline").click()
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="Unchanged").click()
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="All", exact=True).click()
    expect(rows).to_have_count(12)
    screenshot(page, "compare")

    # A threshold larger than the drop makes it no regression; it is in the URL to share.
    page.get_by_label("Min. difference").fill("0.95")
    page.get_by_role("button", name="Update comparison").click()
    expect(page).to_have_url(re.compile(r"t\.quality=0\.95"))
    expect(page.locator("#overall-verdict")).to_have_text("No regression")
    expect(sections.nth(0).locator('tr[data-scorer="quality"] .verdict')).to_have_text("no significant change")
    shared = page.url
    page.goto(shared)
    expect(page.locator("#overall-verdict")).to_have_text("No regression")

    # Bad input is said, and the comparison shown is the one with sound settings.
    page.get_by_label("Significance level").fill("lots")
    page.get_by_role("button", name="Update comparison").click()
    expect(page.get_by_role("alert").first).to_contain_text("Significance level must be a number")
    expect(page.locator("#overall-verdict")).to_have_text("No regression")
    response = page.goto(f"{service.url}/compare?run={baseline}")
    assert response is not None and response.status == 422
    expect(page.locator(".error-detail")).to_contain_text("two or more")

    # A run still going is compared only when asked.
    running = service.client.create_run(dataset.id, name="still going")
    page.goto(f"{service.url}/compare?baseline={baseline}&candidate={running.id}")
    expect(page.locator("#conflict")).to_contain_text("still in progress")
    page.get_by_role("link", name="Compare what is there so far").click()
    expect(page.locator("section.candidate")).to_have_count(1)
