"""Signing in to the web UI with a key: a reader sees no edit controls, a writer's forms
carry the session's CSRF token (a forged form is refused), another project's data is not
found, and a revoked key is signed out at once."""

from __future__ import annotations

import re
from typing import Any

import httpx
from conftest import Service, screenshot
from playwright.sync_api import Browser, expect


def issue(service: Service, slug: str, role: str) -> dict[str, Any]:
    return service.client.request("POST", f"/api/projects/{slug}/keys", json={"name": f"{slug} {role}", "role": role})


def sign_in(page: Any, url: str, secret: str) -> None:
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()


def test_people_sign_in_with_keys_and_see_and_do_what_their_role_allows(service: Service, browser: Browser) -> None:
    client = service.client
    client.request("POST", "/api/projects", json={"name": "Gamma", "slug": "gamma"})
    client.request("POST", "/api/projects", json={"name": "Delta", "slug": "delta"})
    reader, writer = issue(service, "gamma", "reader"), issue(service, "gamma", "writer")
    delta = issue(service, "delta", "writer")
    as_writer = {"Authorization": f"Bearer {writer['secret']}"}
    ours = httpx.post(service.url + "/api/datasets", headers=as_writer, json={"name": "gamma cases"}).json()
    httpx.post(service.url + f"/api/datasets/{ours['id']}/items", headers=as_writer, json={"input": {"q": 1}})
    theirs = httpx.post(service.url + "/api/datasets", headers={"Authorization": f"Bearer {delta['secret']}"},
                        json={"name": "delta secrets"}).json()

    context = browser.new_context(viewport={"width": 1360, "height": 860})  # no key: a person with a browser
    page = context.new_page()
    page.goto(service.url + "/datasets")
    expect(page).to_have_url(re.compile(r"/login\?next=/datasets$"))
    sign_in(page, service.url, "elk_wrong")
    expect(page.get_by_role("alert")).to_have_text("That key is unknown or revoked.")
    screenshot(page, "ui-access-login")

    # A reader: the project's datasets only, and no control that would change anything.
    sign_in(page, service.url, reader["secret"])
    expect(page).to_have_url(re.compile(r"/datasets$"))
    expect(page.get_by_test_id("key-name")).to_have_text("gamma reader")
    expect(page.locator("#dataset-table tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name="gamma cases")).to_be_visible()
    expect(page.get_by_role("button", name="New dataset")).to_have_count(0)
    expect(page.get_by_role("link", name="Operations")).to_have_count(0)
    page.get_by_role("link", name="gamma cases").click()
    expect(page.get_by_role("heading", name=re.compile("gamma cases"))).to_be_visible()
    for control in ("Add item", "Duplicate"):
        expect(page.get_by_role("button", name=control)).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("Import"))).to_have_count(0)
    screenshot(page, "ui-access-reader")
    page.goto(service.url + f"/datasets/{ours['id']}/import")
    expect(page.get_by_text(re.compile("needs a writer key"))).to_be_visible()
    # Another project's dataset is not found, as if it did not exist.
    assert page.goto(service.url + f"/datasets/{theirs['id']}").status == 404

    # A writer: the form works (it carries the CSRF token); the same post forged without it does not.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(service.url + "/datasets")
    sign_in(page, service.url, writer["secret"])
    page.get_by_role("button", name="New dataset").click()
    page.get_by_label("Name", exact=True).fill("made in the browser")
    page.get_by_role("button", name="Create dataset").click()
    expect(page.get_by_role("heading", name=re.compile("made in the browser"))).to_be_visible()
    forged = context.request.post(service.url + "/datasets", form={"name": "forged"})
    assert forged.status == 403 and "CSRF" in forged.text()
    names = [d["name"] for d in httpx.get(service.url + "/api/datasets", headers=as_writer).json()["datasets"]]
    assert sorted(names) == ["gamma cases", "made in the browser"]
    events = httpx.get(service.url + f"/api/datasets/{ours['id']}/events", headers=as_writer).json()["events"]
    assert events[0]["actor"] == f"gamma writer (key {writer['id']})"

    # The session names the key, never its secret; revoking the key signs the session out at once.
    cookie = next(c for c in context.cookies() if c["name"] == "evalledger_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and writer["secret"] not in cookie["value"]
    client.request("POST", f"/api/keys/{writer['id']}/revoke")
    page.goto(service.url + "/datasets")
    expect(page).to_have_url(re.compile(r"/login\?next=/datasets$"))
    context.close()
