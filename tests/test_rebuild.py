"""Rebuilding the read models from the log, while the service runs, changes no answer."""

from __future__ import annotations

import sys
from typing import Any

import psycopg
import psycopg.sql
from cli_runner import database_env, evalledger
from conftest import Service


def answers(service: Service, dataset_id: Any, run_id: Any) -> list[Any]:
    get = service.client.http.get
    paths = [
        "/api/datasets", f"/api/datasets/{dataset_id}", f"/api/datasets/{dataset_id}/items?perPage=100",
        f"/api/datasets/{dataset_id}/items?version=1&perPage=100", f"/api/datasets/{dataset_id}/versions",
        f"/api/datasets/{dataset_id}/diff?from=1&to=3", f"/api/datasets/runs/{run_id}",
        f"/api/datasets/runs/{run_id}/results", f"/api/datasets/runs/{run_id}/analytics",
        f"/api/datasets/{dataset_id}/runs",
    ]
    return [get(path).json() for path in paths]


def index_definitions(service: Service) -> set[str]:
    with psycopg.connect(service.settings.database_url or "") as conn:
        rows = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s", (service.settings.schema,))
        return {row[0] for row in rows}


def tracking_rows(service: Service) -> list[tuple[str, str, int]]:
    """Each view's tracking rows: its position, and the library's migration row."""
    with psycopg.connect(service.settings.database_url or "") as conn:
        return [(table, *row) for table in ("datasets_projection_tracking", "runs_projection_tracking")
                for row in conn.execute(psycopg.sql.SQL("SELECT application_name, notification_id FROM {}.{}"
                                                        " ORDER BY 1").format(
                    psycopg.sql.Identifier(service.settings.schema), psycopg.sql.Identifier(table)))]


def test_rebuilding_every_projection_leaves_every_answer_as_it_was(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("rebuilt")
    added = client.add_items(dataset.id, [{"input": i, "metadata": {"k": i % 2}} for i in range(20)])
    client.update_item(dataset.id, added.items[0].id, input="edited")
    client.delete_item(dataset.id, added.items[1].id)
    run = client.create_run(dataset.id)
    client.submit_results(run.id, [{"itemId": str(i.id), "output": 1, "latencyMs": 5.0,
                                    "scores": [{"scorerId": "s", "score": 0.25}]} for i in added.items[2:]])
    client.finalize_run(run.id)
    before = answers(service, dataset.id, run.id)
    indexes = index_definitions(service)
    tracking = tracking_rows(service)
    assert len(tracking) == 4  # each view's position and migration row

    for name in ("datasets", "runs"):
        report = client.request("POST", f"/api/projections/{name}/rebuild")
        assert report["events"] > 0 and report["position"] > 0
    assert answers(service, dataset.id, run.id) == before
    assert index_definitions(service) == indexes  # built after the replay, all of them back
    # The same rows: the migration row as it was, each position at (or past) where it was.
    after = tracking_rows(service)
    assert [row[:2] for row in after] == [row[:2] for row in tracking]
    assert all(new[2] >= old[2] if new[1] == "evalledger" else new == old for new, old in zip(after, tracking))

    later = client.add_item(dataset.id, input="after the rebuild")  # the switched-over tables keep following
    assert client.get_item(dataset.id, later.item.id).input == "after the rebuild"

    offline = evalledger("projections", "rebuild", "datasets", env=database_env(service.settings), timeout=120)
    assert offline.returncode == 0 and "rebuilt datasets" in offline.stderr, offline.stderr
    assert client.get_item(dataset.id, later.item.id).input == "after the rebuild"
    assert client.http.post("/api/projections/nope/rebuild").status_code == 404


def test_a_second_rebuild_of_a_read_model_is_refused_while_one_runs(service: Service) -> None:
    """Two rebuilds of one read model would share its shadow schema: the second is refused
    (409 rebuild-running, or the CLI's message and exit code 1) and changes nothing."""
    from evalledger.projections.rebuild import only_rebuild_of

    client = service.client
    dataset = client.create_dataset("guarded")
    client.add_items(dataset.id, [{"input": i} for i in range(3)])
    datasets = next(f for f in service.ledger.followers if f.name == "datasets")
    before = client.http.get(f"/api/datasets/{dataset.id}/items").json()
    with only_rebuild_of(datasets.view, service.ledger.session_connection):  # as a running rebuild holds it
        refused = client.http.post("/api/projections/datasets/rebuild")
        assert refused.status_code == 409 and refused.json()["type"].endswith("rebuild-running"), refused.text
        offline = evalledger("projections", "rebuild", "datasets", env=database_env(service.settings), timeout=120)
        assert offline.returncode == 1 and "being rebuilt already" in offline.stderr, offline.stderr
        assert client.http.post("/api/projections/runs/rebuild").status_code == 200  # another read model may
    assert client.http.get(f"/api/datasets/{dataset.id}/items").json() == before
    assert client.http.post("/api/projections/datasets/rebuild").status_code == 200  # and once it is done


def test_a_rebuild_in_the_background_is_followed_to_its_end(service: Service) -> None:
    """`wait=false` answers 202 at once; `GET /api/projections` shows the rebuild's progress
    and then its report. The CLI against a running service follows it the same way."""
    import time

    client = service.client
    dataset = client.create_dataset("in the background")
    client.add_items(dataset.id, [{"input": i} for i in range(50)])
    before = client.http.get(f"/api/datasets/{dataset.id}/items?perPage=100").json()

    bad = client.http.post("/api/projections/datasets/rebuild", params={"wait": "maybe"})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json"), bad.text
    assert client.http.post("/api/projections/nope/rebuild", params={"wait": "false"}).status_code == 404
    assert all(p["rebuild"] is None for p in client.http.get("/api/projections").json()["projections"])

    started = client.http.post("/api/projections/datasets/rebuild", params={"wait": "false"})
    assert started.status_code == 202 and started.json()["state"] == "running", started.text
    deadline = time.monotonic() + 60
    while True:
        listed = {p["name"]: p for p in client.http.get("/api/projections").json()["projections"]}
        state = listed["datasets"]["rebuild"]
        if state["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state["state"] == "done" and state["report"]["events"] >= 2 and state["error"] is None, state
    assert state["position"] == state["head"] == state["report"]["position"] > 0
    assert listed["runs"]["rebuild"] is None  # never rebuilt in this service
    assert client.http.get(f"/api/datasets/{dataset.id}/items?perPage=100").json() == before

    followed = evalledger("projections", "rebuild", url=service.url, env=database_env(service.settings), timeout=120)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "rebuilt datasets" in followed.stderr and "rebuilt runs" in followed.stderr, followed.stderr
    assert client.http.get(f"/api/datasets/{dataset.id}/items?perPage=100").json() == before


def test_two_rebuilds_at_once_put_the_thread_switch_interval_back() -> None:
    from evalledger.projections.follower import quick_thread_switches

    before = sys.getswitchinterval()
    first, second = quick_thread_switches(), quick_thread_switches()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to finish does not end the second's
    assert sys.getswitchinterval() == min(before, 0.001)
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before
