"""The web UI's run pages, driven in Chromium against the live service: start a run from
the form (bad input first), follow it live, read, filter and expand its results and
analytics, cancel another."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

from conftest import Service, screenshot
from playwright.sync_api import Page, expect

from evalledger.execution.registry import registry

# Each call of the gated target waits for a permit the test hands out, so the test decides
# how far a run has come while the page is watching it.
permits = threading.Semaphore(0)


@registry.target(name="ui-runs-gated", kind="agent", description="answers once the test lets it")
async def gated(input: Any, context: Any) -> Any:
    while not permits.acquire(blocking=False):
        await asyncio.sleep(0.01)
    if input.get("fail"):
        raise RuntimeError(f"cannot answer {input['question']!r}")
    return input["answer"]


ITEMS = [
    {"input": {"question": "2+2", "answer": "4"}, "expectedOutput": "4", "metadata": {"category": "math"}},
    {"input": {"question": "capital of France", "answer": "paris"}, "expectedOutput": "Paris",
     "metadata": {"category": "geo"}},
    {"input": {"question": "3*3", "answer": "6"}, "expectedOutput": "9", "metadata": {"category": "math"}},
    {"input": {"question": "boom", "answer": "", "fail": True}, "expectedOutput": "x", "metadata": {"category": "geo"}},
]


def test_a_person_starts_follows_and_reads_a_run(service: Service, page: Page) -> None:
    dataset = service.client.create_dataset("qa")
    service.client.add_items(dataset.id, ITEMS)
    page.goto(f"{service.url}/datasets/{dataset.id}/runs/new")
    expect(page.get_by_role("heading", name="Run qa")).to_be_visible()

    # Bad input: an HTTP target off the allowlist, then a concurrency out of range. Each is
    # said on the form, with what was typed kept, and no run is created.
    page.get_by_label("HTTP endpoint").check()
    page.get_by_label("URL", exact=True).fill("http://example.invalid/answer")
    page.get_by_role("checkbox", name="exact-match", exact=True).check()
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("#form-error")).to_contain_text("not on the allowlist")
    expect(page.get_by_label("URL", exact=True)).to_have_value("http://example.invalid/answer")
    assert service.client.list_runs(dataset.id).pagination.total == 0

    page.get_by_label("Registered function").check()
    page.get_by_label("Registered target").select_option("ui-runs-gated")
    page.get_by_label("Concurrency").fill("0")
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("#form-error")).to_contain_text("Concurrency")
    expect(page.get_by_label("Concurrency")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "run-new")
    page.get_by_role("textbox", name=re.compile("^Metadata")).fill('["not", "an object"]')
    page.get_by_label("Concurrency").fill("2")
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("#form-error")).to_contain_text("Metadata must be a JSON object")
    assert service.client.list_runs(dataset.id).pagination.total == 0

    # A valid run: exact-match, case-insensitive, plus contains; it starts and the page follows it.
    expect(page.get_by_role("checkbox", name="exact-match", exact=True)).to_be_checked()
    page.locator('select[name="opt.exact-match.caseSensitive"]').select_option("false")
    page.get_by_role("checkbox", name="contains", exact=True).check()
    page.get_by_label("Name", exact=True).fill("gated v1")
    page.get_by_role("textbox", name=re.compile("^Metadata")).fill('{"model": "echo-1"}')
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", name="gated v1")).to_be_visible()
    expect(page.locator("#progress-count")).to_have_text("0")

    # Progress updates without reloading the page: a marker set in the page survives.
    page.evaluate("window.__sameDocument = true")
    permits.release(2)
    expect(page.locator("#progress-count")).to_have_text("2", timeout=30_000)
    assert page.evaluate("window.__sameDocument") is True
    permits.release(2)
    expect(page.locator("#run-progress .badge")).to_have_text("completed", timeout=30_000)
    expect(page.locator("#count-succeeded")).to_have_text("3")
    expect(page.locator("#count-failed")).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True
    # The results and the analytics reloaded themselves when the run ended.
    expect(page.locator("#results tbody.result")).to_have_count(4, timeout=30_000)
    expect(page.locator("#analytics figure")).to_have_count(3, timeout=30_000)  # two scorers and latency
    expect(page.locator("#analytics svg.chart").first).to_be_visible()
    expect(page.locator("#latency-p50")).not_to_have_text("—")

    # What the API holds is what was asked for.
    run = service.client.request("GET", f"/api/datasets/runs/{run_id}")
    assert (run["status"], run["name"], run["metadata"]) == ("completed", "gated v1", {"model": "echo-1"})
    assert run["settings"]["maxConcurrency"] == 2
    assert run["scorers"] == [{"name": "exact-match", "options": {"caseSensitive": False}}, {"name": "contains"}]
    assert (run["succeededCount"], run["failedCount"]) == (3, 1)

    # Filter by status, expand the failed result to read its error and each scorer's reason.
    page.get_by_label("Status", exact=True).select_option("failed")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("#results tbody.result")).to_have_count(1)
    page.get_by_role("button", name="Details of result 1").click()
    detail = page.locator("#results .result-detail").first
    expect(detail).to_be_visible()
    expect(detail).to_contain_text("cannot answer 'boom'")
    expect(detail).to_contain_text("no output to score")

    # Filter by a scorer's score: exact-match below 0.5 are the wrong answer and the failure.
    page.goto(f"{service.url}/runs/{run_id}?scorer=exact-match&maxScore=0.4&sort=-latency")
    expect(page.locator("#results tbody.result")).to_have_count(2)
    page.goto(f"{service.url}/runs/{run_id}?scorer=exact-match&minScore=1&sort=score")
    expect(page.locator("#results tbody.result")).to_have_count(2)  # "4" and "paris" vs "Paris"
    page.goto(f"{service.url}/runs/{run_id}?scorer=exact-match&minScore=lots")
    expect(page.locator("#filter-error")).to_contain_text("Score from must be a number")

    # Group by a metadata field; a path that is not one says so.
    page.goto(f"{service.url}/runs/{run_id}")
    page.get_by_label("Group by").fill("category")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"groupBy=category"))
    groups = page.locator(".groups-table tbody tr")
    expect(groups).to_have_count(2, timeout=30_000)
    expect(page.locator(".groups-table")).to_contain_text("math")
    screenshot(page, "run-page")
    page.goto(f"{service.url}/runs/{run_id}?groupBy=a%20b")
    expect(page.locator("#group-error")).to_contain_text("not a metadata field path", timeout=30_000)

    # Export links point at the API's export.
    csv = page.request.get(service.url + (page.get_by_role("link", name="CSV").get_attribute("href") or ""))
    assert csv.ok and "boom" in csv.text()

    # Another run, cancelled from its page while it waits.
    page.goto(f"{service.url}/datasets/{dataset.id}/runs/new")
    page.get_by_label("Registered target").select_option("ui-runs-gated")
    page.get_by_label("Name", exact=True).fill("to cancel")
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_role("heading", name="to cancel")).to_be_visible()
    cancelled_id = page.url.rsplit("/", 1)[1]
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-progress .badge")).to_have_text("cancelled", timeout=30_000)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert service.client.request("GET", f"/api/datasets/runs/{cancelled_id}")["status"] == "cancelled"

    # Both runs are in the dataset's history and in the recent runs.
    page.goto(f"{service.url}/datasets/{dataset.id}/runs")
    expect(page.locator(".runs-table tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Runs", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/runs$"))
    expect(page.locator(".runs-table")).to_contain_text("gated v1")
    expect(page.locator(".runs-table")).to_contain_text("qa")
    page.get_by_role("link", name="cancelled").click()
    expect(page.locator(".runs-table tbody tr")).to_have_count(1)
    screenshot(page, "runs-history")


def test_a_missing_run_page_says_so(service: Service, page: Page) -> None:
    response = page.goto(service.url + "/runs/00000000-0000-0000-0000-000000000000")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name=re.compile("Not found"))).to_be_visible()
