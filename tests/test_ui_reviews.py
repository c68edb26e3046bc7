"""Reviewing a run's results in the web UI (issue 18), driven in Chromium against the live
service: three results reviewed with the keyboard only (j / k to move, p / f to judge, g to
flag), the output diff shown highlighted, and the flagged filter listing what was flagged."""

from __future__ import annotations

from conftest import Service, acting_for, screenshot
from playwright.sync_api import Locator, Page, expect


def move_to(page: Page, key: str, results: Locator, index: int) -> Locator:
    """Press j or k: the result at `index` becomes the current one; it."""
    page.keyboard.press(key)
    current = results.nth(index)
    expect(current).to_have_class("result current")
    return current


def judge(page: Page, result: Locator, key: str, verdict: str) -> None:
    """Press p or f: the current result shows the verdict."""
    page.keyboard.press(key)
    expect(result.locator(".badge.verdict")).to_have_text(verdict)


def test_three_results_are_reviewed_with_the_keyboard(service: Service, page: Page) -> None:
    client = service.client
    dataset = client.create_dataset("to review")
    added = client.add_items(dataset.id, [
        {"input": "capital of France", "expectedOutput": "The capital is Paris."},
        {"input": "2+2", "expectedOutput": {"answer": 4, "unit": None}},
        {"input": "capital of Italy", "expectedOutput": "Rome"},
    ])
    run = client.create_run(dataset.id, scorers=["exact-match"])
    client.submit_results(run.id, [
        {"itemId": str(added.items[0].id), "output": "The capital is Lyon.",
         "scores": [{"scorerId": "exact-match", "score": 0.0}]},
        {"itemId": str(added.items[1].id), "output": {"answer": 5, "unit": None},
         "scores": [{"scorerId": "exact-match", "score": 0.0}]},
        {"itemId": str(added.items[2].id), "output": "Rome", "scores": [{"scorerId": "exact-match", "score": 1.0}]},
    ])
    client.finalize_run(run.id)
    page.context.add_cookies([{"name": "evalledger_actor", "value": "carol", "url": service.url}])
    page.goto(f"{service.url}/runs/{run.id}")
    results = page.locator("#results tbody.result")
    expect(results).to_have_count(3)

    # j opens the first result: its output diff marks the changed words.
    first = move_to(page, "j", results, 0)
    expect(first.locator(".result-detail")).to_be_visible()
    expect(first.locator(".diff-del")).to_have_text("Paris.")
    expect(first.locator(".diff-add")).to_have_text("Lyon.")
    judge(page, first, "p", "pass")  # pass: Lyon is fine here

    second = move_to(page, "j", results, 1)
    expect(first.locator(".result-detail")).to_be_hidden()
    expect(second.locator(".diff-fields")).to_contain_text("output.answer")
    expect(second.locator("code.diff-del")).to_have_text("4")
    expect(second.locator("code.diff-add")).to_have_text("5")
    judge(page, second, "f", "fail")
    page.keyboard.press("g")  # and flag it for follow-up
    expect(second.locator(".badge.flag")).to_be_visible()

    third = move_to(page, "j", results, 2)
    judge(page, third, "f", "fail")
    # k goes back; p changes the verdict of the second result, keeping its flag.
    second = move_to(page, "k", results, 1)
    judge(page, second, "p", "pass")
    expect(second.locator(".badge.flag")).to_be_visible()
    screenshot(page, "run-review")

    # What the API holds: three reviews by carol, the second result reviewed three times.
    verdicts = []
    for item in added.items:
        detail = client.request("GET", f"/api/datasets/runs/{run.id}/results/{item.id}")
        verdicts.append((detail["review"]["verdict"], detail["review"]["actor"], detail["flagged"],
                         len(detail["reviews"])))
    assert verdicts == [("pass", acting_for("carol"), False, 1), ("pass", acting_for("carol"), True, 3), ("fail", acting_for("carol"), False, 1)]

    # A comment typed into the field keeps its keys to itself.
    results.nth(1).get_by_placeholder("Comment").fill("check the unit pjfk")
    results.nth(1).get_by_role("button", name="Save comment").click()
    expect(results.nth(1).locator(".review-form")).to_contain_text("4 reviews")
    expect(results.nth(1).get_by_placeholder("Comment")).to_have_value("check the unit pjfk")
    detail = client.request("GET", f"/api/datasets/runs/{run.id}/results/{added.items[1].id}")
    assert detail["review"]["comment"] == "check the unit pjfk" and detail["review"]["verdict"] == "pass"

    # The flagged filter lists what needs attention.
    page.get_by_label("Flagged only").check()
    page.get_by_role("button", name="Apply").click()
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("2+2")


def test_the_comparison_page_highlights_how_outputs_changed(service: Service, page: Page) -> None:
    client = service.client
    dataset = client.create_dataset("outputs")
    added = client.add_items(dataset.id, [{"input": "q", "expectedOutput": "x"}])
    runs = []
    for output in ("The answer is 4", "The answer is 5"):
        run = client.create_run(dataset.id, scorers=["exact-match"])
        client.submit_results(run.id, [{"itemId": str(added.items[0].id), "output": output,
                                        "scores": [{"scorerId": "exact-match", "score": 0.0}]}])
        client.finalize_run(run.id)
        runs.append(run.id)
    page.goto(f"{service.url}/compare?baseline={runs[0]}&candidate={runs[1]}")
    cell = page.locator(".compare-items .output-diff-cell").first
    expect(cell.locator(".diff-del")).to_have_text("4")
    expect(cell.locator(".diff-add")).to_have_text("5")
