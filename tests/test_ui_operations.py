"""The web UI's operations page, driven in Chromium: positions and lag, a rebuild with its
progress, the audit check."""

from __future__ import annotations

import re

from conftest import Service, screenshot
from playwright.sync_api import Page, expect
from waiting import wait_until


def test_a_person_watches_rebuilds_and_verifies_the_read_models(service: Service, page: Page) -> None:
    dataset = service.client.create_dataset("ops")
    service.client.add_items(dataset.id, [{"input": {"n": k}} for k in range(50)])
    run = service.client.create_run(dataset.id, name="caller")
    items = service.client.list_items(dataset.id, per_page=100).items
    service.client.submit_results(run.id, [{"itemId": str(i.id), "output": 1,
                                            "scores": [{"scorerId": "s", "score": 1.0}]} for i in items])
    service.client.finalize_run(run.id)
    # A read model follows the events it does not handle (the run's, for datasets) in the
    # background: the page is loaded once it has, so that it shows no lag.
    wait_until(lambda: all(p["lag"] == 0 for p in service.client.request("GET", "/api/projections")["projections"]),
               "the read models to follow the log", 10)

    page.goto(service.url + "/operations")
    expect(page.get_by_role("heading", name="Operations")).to_be_visible()
    rows = page.locator(".ops-table tbody tr")
    expect(rows).to_have_count(2)
    head = service.client.request("GET", "/api/projections")["projections"][0]["head"]
    for name in ("datasets", "runs"):
        row = page.locator(f'tr[data-projection="{name}"]')
        expect(row.locator(".lag")).to_have_text("0")
        expect(row).to_contain_text(f"{head:,}")

    # Rebuild the runs read model: asked first, then followed to its end without a reload.
    page.evaluate("window.__sameDocument = true")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rebuild runs").click()
    runs_row = page.locator('tr[data-projection="runs"]')
    expect(runs_row.locator(".rebuild-state")).to_contain_text("done", timeout=60_000)
    expect(runs_row.locator(".rebuild-state")).to_contain_text("events in")
    rebuild = next(p for p in service.client.request("GET", "/api/projections")["projections"]
                   if p["name"] == "runs")["rebuild"]
    assert rebuild["state"] == "done" and rebuild["report"]["events"] > 0
    # The rebuilt read model answers as before.
    assert service.client.get_run(run.id).succeeded_count == 50

    # Verify: every dataset and run replayed and compared.
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("#audit-ok")).to_contain_text("Read models match the log", timeout=60_000)
    expect(page.locator("#audit-ok")).to_contain_text("1 dataset(s) and 1 run(s)")
    screenshot(page, "operations")

    # Bad input: a read model that does not exist is said, and nothing is rebuilt.
    response = page.request.post(service.url + "/operations/projections/nonesuch/rebuild")
    assert response.status == 404 and "no projection named" in response.text() and "nonesuch" in response.text()
    assert [p["name"] for p in service.client.request("GET", "/api/projections")["projections"]] == ["datasets", "runs"]
    expect(page).to_have_url(re.compile(r"/operations"))
