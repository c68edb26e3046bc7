"""Projects, keys and roles: nobody gets in where they don't belong.

Two projects (alpha and beta) each hold a dataset named alike, with items and a finished
run. Every operation of the OpenAPI document is tried, from the document itself: without a
key, with beta's admin key on alpha's objects, with alpha's reader key on every write; each
is refused as it should be and nothing changes (dataset versions and the event log's head
before and after)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from cli_runner import database_env, evalledger
from conftest import AUTH, TEST_ADMIN_KEY, Service, fresh_settings, running_service, drop_schema

import service_process
from evalledger.adapters import database
from evalledger.domain.access import DEFAULT_PROJECT_ID


@dataclass
class World:
    service: Service
    admin: httpx.Client
    keys: dict[str, dict[str, Any]]  # "alpha-admin", "alpha-writer", "alpha-reader", "beta-admin", ...
    alpha: dict[str, Any]  # ids of alpha's objects
    beta: dict[str, Any]

    def client(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.service.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.keys[name]['secret']}"})


def seed_project(admin: httpx.Client, slug: str, keys: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert admin.post("/api/projects", json={"name": slug.title(), "slug": slug}).status_code == 201
    for role in ("admin", "writer", "reader"):
        issued = admin.post(f"/api/projects/{slug}/keys", json={"name": f"{slug} {role}", "role": role})
        assert issued.status_code == 201, issued.text
        keys[f"{slug}-{role}"] = issued.json()
    writer = {"Authorization": f"Bearer {keys[f'{slug}-writer']['secret']}"}
    dataset = admin.post("/api/datasets", headers=writer, json={"name": "shared name"}).json()
    added = admin.post(f"/api/datasets/{dataset['id']}/items/batch", headers=writer,
                       json={"items": [{"input": {"q": i}, "expectedOutput": {"a": i}} for i in range(3)]}).json()
    items = [i["id"] for i in added["items"]]
    run = admin.post(f"/api/datasets/{dataset['id']}/runs", headers=writer, json={"scorers": ["exact-match"]}).json()
    admin.post(f"/api/datasets/runs/{run['id']}/results", headers=writer, json={"results": [
        {"itemId": item, "output": {"a": 1}, "scores": [{"scorerId": "exact-match", "score": 1.0}]}
        for item in items]})
    assert admin.post(f"/api/datasets/runs/{run['id']}/finalize", headers=writer).status_code == 200
    return {"dataset_id": dataset["id"], "item_id": items[0], "run_id": run["id"], "slug": slug,
            "key_id": keys[f"{slug}-writer"]["id"]}


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[World]:
    settings = fresh_settings(database_url)
    try:
        with running_service(settings) as service, httpx.Client(base_url=service.url, headers=AUTH,
                                                                timeout=30) as admin:
            keys: dict[str, dict[str, Any]] = {}
            alpha = seed_project(admin, "alpha", keys)
            beta = seed_project(admin, "beta", keys)
            yield World(service, admin, keys, alpha, beta)
    finally:
        drop_schema(database_url, settings.schema)


def operations(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    document = world.admin.get("/openapi.json").json()
    return [(method.upper(), path, op) for path, ops in document["paths"].items() for method, op in ops.items()
            if path != "/health"]


def concrete(path: str, ids: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), "datasets")), path)


def state(world: World) -> tuple[Any, ...]:
    """What a refused request must leave as it was: every dataset's version, the event log's
    head, the keys and the projects."""
    admin = world.admin
    datasets = admin.get("/api/datasets", params={"perPage": 1000}).json()["datasets"]
    keys = [admin.get(f"/api/projects/{slug}/keys").json()["keys"] for slug in ("alpha", "beta")]
    return (sorted((d["id"], d["version"]) for d in datasets), admin.get("/api/events").json()["head"],
            admin.get("/api/projects").json(), admin.get("/api/keys").json(),
            [[{**k, "lastUsedAt": None} for k in listed] for listed in keys])


def test_every_route_refuses_a_missing_key_another_projects_key_and_a_readers_write(world: World) -> None:
    before = state(world)
    checked = 0
    with world.client("beta-admin") as other, world.client("alpha-reader") as reader, \
            httpx.Client(base_url=world.service.url, timeout=30) as nobody:
        for method, path, operation in operations(world):
            url = concrete(path, world.alpha)
            where = f"{method} {path}"
            answer = nobody.request(method, url, json={})
            assert answer.status_code == 401, f"{where} without a key: {answer.status_code}"
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            wrong = nobody.request(method, url, json={}, headers={"Authorization": "Bearer elk_not-a-real-key"})
            assert wrong.status_code == 401, where
            assert "elk_not-a-real-key" not in wrong.text

            role = operation["x-required-role"]
            answer = other.request(method, url, json={})
            if "{dataset_id}" in path or "{run_id}" in path:
                assert answer.status_code == 404, f"{where} with another project's key: {answer.status_code}"
                assert answer.json()["type"].rsplit("/", 1)[1] in ("dataset-not-found", "run-not-found"), where
            elif role == "instance" or "{slug}" in path or "{key_id}" in path:
                assert answer.status_code in (403, 404), f"{where} with another project's key: {answer.status_code}"

            if role != "reader":
                answer = reader.request(method, url, json={})
                assert answer.status_code == 403, f"{where} with a reader key: {answer.status_code}"
                assert answer.json()["type"].endswith("/forbidden")
            checked += 1
    assert checked == len(operations(world)) >= 50
    assert state(world) == before


def test_a_project_key_sees_only_its_project_in_every_list_feed_and_export(world: World) -> None:
    with world.client("beta-reader") as beta:
        listed = beta.get("/api/datasets").json()["datasets"]
        assert [d["id"] for d in listed] == [world.beta["dataset_id"]]
        assert beta.get(f"/api/datasets/{world.alpha['dataset_id']}").status_code == 404
        assert beta.get(f"/api/datasets/{world.alpha['dataset_id']}/items/export").status_code == 404
        assert beta.get(f"/api/datasets/runs/{world.alpha['run_id']}/results/export").status_code == 404
        feed = beta.get("/api/events", params={"limit": 1000}).json()
        seen = {e["aggregateId"] for e in feed["events"]}
        assert seen == {world.beta["dataset_id"], world.beta["run_id"]}
        assert [p["slug"] for p in beta.get("/api/projects").json()["projects"]] == ["beta"]
        me = beta.get("/api/me").json()
        assert (me["name"], me["role"], me["project"]["slug"]) == ("beta reader", "reader", "beta")
    with world.client("alpha-writer") as alpha:
        # Comparing runs of two projects, or copying into another project's dataset: not found / refused.
        compared = alpha.post("/api/datasets/compare", json={"runIdA": world.alpha["run_id"],
                                                             "runIdB": world.beta["run_id"]})
        assert compared.status_code == 404 and compared.json()["type"].endswith("/run-not-found")
        copied = alpha.post(f"/api/datasets/{world.alpha['dataset_id']}/items/copy",
                            json={"targetDatasetId": world.beta["dataset_id"], "itemIds": [world.alpha["item_id"]]})
        assert copied.status_code == 404
        made = alpha.post("/api/datasets/from-items", json={"name": "x", "sourceDatasetId": world.beta["dataset_id"],
                                                            "itemIds": [world.beta["item_id"]]})
        assert made.status_code == 404
        elsewhere = alpha.post("/api/datasets", json={"name": "x", "project": "beta"})
        assert elsewhere.status_code == 403
    # The instance key sees both, and still may not compare runs of two projects.
    both = {d["id"] for d in world.admin.get("/api/datasets").json()["datasets"]}
    assert {world.alpha["dataset_id"], world.beta["dataset_id"]} <= both
    compared = world.admin.post("/api/datasets/compare", json={"runIdA": world.alpha["run_id"],
                                                               "runIdB": world.beta["run_id"]})
    assert compared.status_code == 422


def test_the_audit_trail_records_the_key_not_the_header(world: World) -> None:
    writer = world.keys["alpha-writer"]
    with world.client("alpha-writer") as alpha:
        alpha.patch(f"/api/datasets/{world.alpha['dataset_id']}", json={"description": "by the key"},
                    headers={"X-Actor": "mallory"})
        alpha.post(f"/api/datasets/{world.alpha['dataset_id']}/items", json={"input": "no header"})
        events = alpha.get(f"/api/datasets/{world.alpha['dataset_id']}/events", params={"perPage": 100}).json()
    actors = [e["actor"] for e in events["events"][-2:]]
    assert actors == [f"alpha writer (key {writer['id']}) on behalf of mallory", f"alpha writer (key {writer['id']})"]


def test_keys_are_listed_without_secrets_rotated_and_revoked_at_once_in_every_process(world: World) -> None:
    admin = world.admin
    issued = admin.post("/api/projects/alpha/keys", json={"name": "short-lived", "role": "reader"}).json()
    secret = issued["secret"]
    assert secret.startswith("elk_") and issued["prefix"] == secret[:12]
    listed = admin.get("/api/projects/alpha/keys").json()["keys"]
    assert all("secret" not in k for k in listed) and secret not in str(listed)
    # A second service process on the same database.
    other = service_process.start(world.service.settings)
    try:
        headers = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(other.url + "/api/me", headers=headers).status_code == 200
        rotated = admin.post(f"/api/keys/{issued['id']}/rotate").json()
        assert rotated["rotatedFrom"] == issued["id"] and rotated["name"] == "short-lived"
        # The old secret stops at once, in both processes; the new one works in both.
        assert httpx.get(other.url + "/api/me", headers=headers).status_code == 401
        assert httpx.get(world.service.url + "/api/me", headers=headers).status_code == 401
        new = {"Authorization": f"Bearer {rotated['secret']}"}
        assert httpx.get(other.url + "/api/me", headers=new).status_code == 200
        revoked = httpx.post(other.url + f"/api/keys/{rotated['id']}/revoke", headers=AUTH,
                             json=None).json()
        assert revoked["revokedAt"] is not None and revoked["revokedBy"] == "admin (key env)"
        assert httpx.get(world.service.url + "/api/me", headers=new).status_code == 401
        again = admin.post(f"/api/keys/{rotated['id']}/revoke")
        assert again.status_code == 409
    finally:
        other.stop()
    # A project admin manages its own project's keys only.
    with world.client("beta-admin") as beta:
        assert beta.get("/api/projects/alpha/keys").status_code == 404
        assert beta.post(f"/api/keys/{world.keys['alpha-reader']['id']}/revoke").status_code == 404
        assert beta.post("/api/projects/beta/keys", json={"name": "beta ci", "role": "writer"}).status_code == 201
        assert beta.post("/api/keys", json={"name": "grab", "role": "admin"}).status_code == 403
    with world.client("alpha-writer") as writer:
        assert writer.get("/api/projects/alpha/keys").status_code == 403


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(database_url: str) -> None:
    settings = fresh_settings(database_url, rate_limit="5/second;8/minute", failed_auth_limit="3/minute")
    try:
        with running_service(settings) as service:
            with httpx.Client(base_url=service.url, headers=AUTH) as http:
                codes = [http.get("/api/datasets").status_code for _ in range(9)]
                assert codes[:8] == [200] * 8 or codes[:5] == [200] * 5
                limited = http.get("/api/datasets")
                assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
                assert limited.json()["type"].endswith("/rate-limited")
                assert httpx.get(service.url + "/health").status_code == 200  # /health has no limit
            # Wrong keys from one address: a few get 401, then 429 (no key at all is always a plain 401).
            wrong = {"Authorization": "Bearer elk_guess"}
            codes = [httpx.get(service.url + "/api/datasets", headers=wrong).status_code for _ in range(5)]
            assert codes == [401, 401, 401, 429, 429]
            assert httpx.get(service.url + "/api/datasets").status_code == 401
    finally:
        drop_schema(database_url, settings.schema)


def test_datasets_from_before_projects_belong_to_the_default_project(database_url: str) -> None:
    """A Dataset.Created event of version 2 (before projects) carries no project: it reads as
    the default project's, live and after a rebuild, without rewriting the stored event
    (here one is written as an older version of the code wrote it)."""
    settings = fresh_settings(database_url)
    try:
        with running_service(settings) as service:
            service.ledger.access.book.refresh()
            old = service.ledger.datasets.create_dataset(name="legacy")
            params = database.parse_database_url(database_url)
            with psycopg.connect(params.conninfo, autocommit=True) as conn:
                table = f'"{settings.schema}".evalledger_events'
                conn.execute(f"UPDATE {table} SET state = (convert_from(state, 'UTF8')::jsonb - 'project_id'"
                             " || '{\"class_version\": 2}')::text::bytea WHERE originator_id = %s", (old.aggregate_id,))
                stored = conn.execute(f"SELECT convert_from(state, 'UTF8')::jsonb FROM {table}"
                                      " WHERE originator_id = %s", (old.aggregate_id,)).fetchone()[0]
            assert "project_id" not in stored
            service.ledger.datasets._evict(old.aggregate_id)  # read the stored event again
            assert service.ledger.datasets.get_dataset(old.aggregate_id).project_id == DEFAULT_PROJECT_ID
            service.ledger.operations.rebuild("datasets")
            admin = service.client
            key = admin.request("POST", "/api/projects/default/keys", json={"name": "d", "role": "reader"})
            other = admin.request("POST", "/api/projects", json={"name": "Other", "slug": "other"})
            other_key = admin.request("POST", "/api/projects/other/keys", json={"name": "o", "role": "reader"})
            assert other["slug"] == "other"
            seen = httpx.get(f"{service.url}/api/datasets/{old.aggregate_id}",
                             headers={"Authorization": f"Bearer {key['secret']}"})
            assert seen.status_code == 200 and seen.json()["projectId"] == str(DEFAULT_PROJECT_ID)
            hidden = httpx.get(f"{service.url}/api/datasets/{old.aggregate_id}",
                               headers={"Authorization": f"Bearer {other_key['secret']}"})
            assert hidden.status_code == 404
    finally:
        drop_schema(database_url, settings.schema)


def test_a_service_on_a_public_address_without_any_key_refuses_to_start(database_url: str, tmp_path: Any) -> None:
    import os

    settings = fresh_settings(database_url)
    env = database_env(settings, {k: v for k, v in os.environ.items()
                                  if k not in ("EVALLEDGER_ADMIN_KEY", "EVALLEDGER_API_KEY")})
    try:
        done = evalledger("serve", "--host", "0.0.0.0", "--port", "0", env=env, cwd=tmp_path, timeout=120)
        assert done.returncode == 2
        assert "Refusing to serve on 0.0.0.0" in done.stdout + done.stderr
        assert not (tmp_path / ".evalledger" / "admin.key").exists()
        assert TEST_ADMIN_KEY not in done.stdout + done.stderr
    finally:
        drop_schema(database_url, settings.schema)


def test_the_cli_creates_projects_and_keys_and_the_new_key_acts_in_its_project_only(service: Service) -> None:
    import os

    made = evalledger("projects", "create", "omega", "--name", "Omega team", url=service.url)
    assert made.returncode == 0, made.stderr
    issued = evalledger("keys", "create", "omega ci", "--project", "omega", "--role", "writer", url=service.url)
    assert issued.returncode == 0, issued.stderr
    secret = issued.stdout.strip()
    assert secret.startswith("elk_") and "shown once" in issued.stderr
    as_omega = {**os.environ, "EVALLEDGER_API_KEY": secret}
    me = evalledger("whoami", url=service.url, env=as_omega)
    assert me.returncode == 0 and "omega ci · writer · project omega" in me.stdout
    created = evalledger("datasets", "create", "omega cases", url=service.url, env=as_omega)
    assert created.returncode == 0, created.stderr
    listed = evalledger("keys", "list", "--project", "omega", url=service.url)
    assert "omega ci" in listed.stdout and secret not in listed.stdout and secret[:12] in listed.stdout
    key_id = service.client.list_keys("omega").keys[0].id
    assert evalledger("keys", "revoke", str(key_id), url=service.url).returncode == 0
    refused = evalledger("datasets", "list", url=service.url, env=as_omega)
    assert refused.returncode != 0 and "unknown or revoked" in refused.stderr
    projects = {p.slug: p.id for p in service.client.list_projects().projects}
    omega = [d for d in service.client.list_datasets(per_page=100).datasets if d.name == "omega cases"]
    assert [d.project_id for d in omega] == [projects["omega"]]


def test_health_is_open_and_says_nothing_about_data_without_a_key(world: World) -> None:
    open_answer = httpx.get(world.service.url + "/health").json()
    assert open_answer["status"] == "ok" and "database" not in open_answer
    assert all(set(p) == {"name", "lag", "running", "leader"} for p in open_answer["projections"])
    with world.client("alpha-reader") as reader:
        full = reader.get("/health").json()
    assert full["database"] and all("position" in p and "lastError" in p for p in full["projections"])
