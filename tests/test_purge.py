"""Erasure on request: purging an item removes its content from the whole history — every
version, export, run result, the event log and a rebuilt read model, down to a `pg_dump` —
while versions, counts and run statistics stay as they were."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any
from uuid import uuid4

import pgserver
import psycopg
from cli_runner import database_env, evalledger
from conftest import Service, acting_for
from waiting import wait_finished
from psycopg.sql import SQL, Identifier

from evalledger.execution.registry import registry


@registry.target(name="purge-echo", kind="agent")
def echo(input: Any, context: Any) -> Any:
    return {"echo": input}


@registry.scorer(name="purge-explains")
def explains(input: Any, output: Any, expected_output: Any, metadata: Any) -> dict[str, Any]:
    return {"score": 1.0 if output == {"echo": expected_output} else 0.0, "reason": f"expected {expected_output!r}"}


def text_of(service: Service, path: str) -> str:
    response = service.client.http.get(path)
    assert response.status_code == 200, (path, response.text)
    return response.text


def everything_readable(service: Service, dataset_id: Any, run_ids: list[Any], versions: int) -> dict[str, str]:
    """Every answer that could show item content, by path."""
    paths = [f"/api/datasets/{dataset_id}/events?perPage=100", "/api/events?limit=1000",
             f"/api/datasets/{dataset_id}/versions?perPage=100"]
    for version in range(versions + 1):
        paths += [f"/api/datasets/{dataset_id}/items?version={version}&perPage=100"]
        paths += [f"/api/datasets/{dataset_id}/items/export?format={f}&version={version}" for f in ("csv", "json", "jsonl")]
        if version:
            paths.append(f"/api/datasets/{dataset_id}/diff?from={version - 1}&to={version}")
    for run_id in run_ids:
        paths += [f"/api/datasets/runs/{run_id}/results?perPage=100", f"/api/datasets/runs/{run_id}/events",
                  f"/api/datasets/runs/{run_id}/results/export?format=csv",
                  f"/api/datasets/runs/{run_id}/results/export?format=jsonl",
                  f"/api/datasets/runs/{run_id}/analytics", f"/api/datasets/runs/{run_id}"]
    return {path: text_of(service, path) for path in paths}


def pg_dump(database_url: str, schema: str) -> str:
    # pgserver's pg_dump (PostgreSQL 16) dumps this and older servers alike.
    binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    dumped = subprocess.run([str(binary), "--schema", schema, "--dbname", database_url],
                            capture_output=True, text=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr
    assert "COPY" in dumped.stdout and "evalledger_events" in dumped.stdout
    return dumped.stdout


def test_a_purged_item_reads_as_empty_everywhere_while_versions_counts_and_scores_stay(
    service: Service, database_url: str
) -> None:
    client = service.client
    secret, later_secret, kept = f"secret-{uuid4()}", f"later-{uuid4()}", f"kept-{uuid4()}"
    dataset = client.create_dataset("patients")
    added = client.add_items(dataset.id, [
        {"input": {"note": secret}, "expectedOutput": secret, "metadata": {"who": secret}, "externalId": "p-1"},
        {"input": {"note": kept}, "expectedOutput": kept, "externalId": "p-2"},
    ])
    target_id, other_id = added.items[0].id, added.items[1].id
    client.update_item(dataset.id, target_id, input={"note": later_secret})  # version 2

    # A run that copies the content into outputs and scorer reasons, and a caller-driven one.
    run = client.create_run(dataset.id, target={"type": "registered", "name": "purge-echo"},
                            scorers=["purge-explains"])
    wait_finished(service.client.http, run.id)
    manual = client.create_run(dataset.id)
    client.submit_results(manual.id, [
        {"itemId": str(target_id), "output": f"told {secret}", "error": None,
         "scores": [{"scorerId": "judge", "score": 0.25, "reason": f"mentions {secret}"}]},
        {"itemId": str(other_id), "output": "fine", "scores": [{"scorerId": "judge", "score": 1.0}]},
    ])
    client.finalize_run(manual.id)
    run_ids = [run.id, manual.id]

    before = everything_readable(service, dataset.id, run_ids, versions=2)
    assert any(secret in text for text in before.values())
    # Even before a purge, the event log holds no item content in readable form.
    with psycopg.connect(database_url) as conn:
        raw = conn.execute(SQL("SELECT string_agg(encode(state, 'escape'), ' ') FROM {}.evalledger_events")
                           .format(Identifier(service.settings.schema))).fetchone()[0]
    assert secret not in raw and later_secret not in raw and kept not in raw
    stats_before = [client.request("GET", f"/api/datasets/runs/{r}") for r in run_ids]
    versions_before = client.request("GET", f"/api/datasets/{dataset.id}/versions")

    purged = client.http.delete(f"/api/datasets/{dataset.id}/items/{target_id}/purge",
                                headers={"X-Actor": "dpo@example.com", "X-Change-Reason": "erasure request #12"})
    assert purged.status_code == 200, purged.text
    assert purged.json()["changed"] is True and purged.json()["purgedAt"]

    after = everything_readable(service, dataset.id, run_ids, versions=2)
    for path, text in after.items():
        assert secret not in text and later_secret not in text, path
    assert kept in after[f"/api/datasets/{dataset.id}/items?version=2&perPage=100"]

    # The item is still there at every version, with no content; the other is untouched.
    for version in (1, 2):
        items = {i["id"]: i for i in client.request("GET", f"/api/datasets/{dataset.id}/items",
                                                    params={"version": version})["items"]}
        gone = items[str(target_id)]
        assert (gone["input"], gone["expectedOutput"], gone["metadata"]) == (None, None, {})
        assert gone["purgedAt"] and gone["externalId"] == "p-1"
        assert items[str(other_id)]["input"] == {"note": kept} and items[str(other_id)]["purgedAt"] is None

    # Versions, counts and run statistics are as they were.
    assert client.request("GET", f"/api/datasets/{dataset.id}/versions") == versions_before
    for run_id, stats in zip(run_ids, stats_before, strict=True):
        now = client.request("GET", f"/api/datasets/runs/{run_id}")
        assert {k: now[k] for k in ("succeededCount", "failedCount", "status", "totalItems")} == \
               {k: stats[k] for k in ("succeededCount", "failedCount", "status", "totalItems")}
    results = {r["itemId"]: r for r in client.request("GET", f"/api/datasets/runs/{manual.id}/results")["results"]}
    assert results[str(target_id)]["output"] is None
    assert results[str(target_id)]["scores"][0]["score"] == 0.25
    assert results[str(target_id)]["scores"][0]["reason"] is None
    assert results[str(other_id)]["output"] == "fine"

    # Who purged it, and why, is on the event.
    events = client.request("GET", f"/api/datasets/{dataset.id}/events", params={"perPage": 100})["events"]
    assert events[-1]["type"] == "ItemPurged" and events[-1]["actor"] == acting_for("dpo@example.com")
    assert events[-1]["reason"] == "erasure request #12"

    # The item cannot be written again; deleting it is fine; purging again changes nothing.
    refused = client.http.patch(f"/api/datasets/{dataset.id}/items/{target_id}", json={"input": "back"})
    assert refused.status_code == 409 and refused.json()["type"].endswith("item-purged"), refused.text
    upsert = client.http.post(f"/api/datasets/{dataset.id}/items/import",
                              params={"format": "jsonl", "mode": "upsert"},
                              content=b'{"input": "again", "externalId": "p-1"}\n')
    assert upsert.status_code == 409, upsert.text
    again = client.http.delete(f"/api/datasets/{dataset.id}/items/{target_id}/purge")
    assert again.status_code == 200 and again.json()["changed"] is False
    assert client.http.delete(f"/api/datasets/{dataset.id}/items/{uuid4()}/purge").status_code == 404
    client.delete_item(dataset.id, target_id)  # version 3

    # A rebuild from the log does not bring it back, and answers as before the rebuild.
    settled = everything_readable(service, dataset.id, run_ids, versions=3)
    for name in ("datasets", "runs"):
        client.request("POST", f"/api/projections/{name}/rebuild")
    rebuilt = everything_readable(service, dataset.id, run_ids, versions=3)
    assert rebuilt == settled

    # Neither does the audit replay, which passes.
    audit = evalledger("audit", "verify", env=database_env(service.settings), timeout=120)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # Nor is it anywhere in a dump of the database.
    dump = pg_dump(database_url, service.settings.schema)
    assert secret not in dump and later_secret not in dump
    assert str(target_id) in dump  # the item itself is still there, as an id


def test_deleted_items_and_whole_deleted_datasets_can_still_be_purged(service: Service) -> None:
    client = service.client
    secret = f"secret-{uuid4()}"
    kept = client.create_dataset("kept")
    deleted_item = client.add_item(kept.id, input=secret).item
    client.delete_item(kept.id, deleted_item.id)
    assert client.purge_item(kept.id, deleted_item.id).changed
    assert client.get_item(kept.id, deleted_item.id, version=1).input is None
    assert secret not in text_of(service, f"/api/datasets/{kept.id}/items/{deleted_item.id}/history")

    dataset = client.create_dataset("gone")
    item = client.add_item(dataset.id, input=secret).item
    client.request("DELETE", f"/api/datasets/{dataset.id}")
    purged = client.http.delete(f"/api/datasets/{dataset.id}/items/{item.id}/purge")
    assert purged.status_code == 200, purged.text
    feed = text_of(service, "/api/events?limit=1000")
    assert secret not in feed and "ItemPurged" in feed


def test_the_cli_purges_after_asking(service: Service) -> None:
    from typer.testing import CliRunner

    from evalledger.cli import cli

    client = service.client
    dataset = client.create_dataset("cli")
    item = client.add_item(dataset.id, input="private").item
    runner = CliRunner()
    declined = runner.invoke(cli, ["purge", str(dataset.id), str(item.id), "--url", service.url], input="n\n")
    assert declined.exit_code != 0 and client.get_item(dataset.id, item.id).input == "private"
    done = runner.invoke(cli, ["purge", str(dataset.id), str(item.id), "--url", service.url, "--yes",
                               "--reason", "asked to"])
    assert done.exit_code == 0 and "purged at" in done.output, done.output
    assert client.get_item(dataset.id, item.id).input is None
    again = runner.invoke(cli, ["purge", str(dataset.id), str(uuid4()), "--url", service.url, "--yes"])
    assert again.exit_code == 1 and "item-not-found" in again.output, again.output


def test_results_that_arrive_after_the_purge_keep_their_scores_but_none_of_their_texts(
    service: Service, database_url: str
) -> None:
    client = service.client
    secret = f"secret-{uuid4()}"
    dataset = client.create_dataset("late results")
    item = client.add_item(dataset.id, input=secret, expected_output=secret).item
    run = client.create_run(dataset.id)
    client.purge_item(dataset.id, item.id)
    client.submit_results(run.id, [{"itemId": str(item.id), "output": f"echo {secret}", "error": f"failed on {secret}",
                                    "scores": [{"scorerId": "judge", "score": 0.5, "reason": secret}]}])
    [result] = client.request("GET", f"/api/datasets/runs/{run.id}/results")["results"]
    assert result["output"] is None and result["error"] == "[purged]" and result["status"] == "failed"
    assert result["scores"] == [{"scorerId": "judge", "score": 0.5, "reason": None, "error": None}]
    assert secret not in text_of(service, f"/api/datasets/runs/{run.id}/events")
    with psycopg.connect(database_url) as conn:
        raw = conn.execute(SQL("SELECT string_agg(encode(state, 'escape'), ' ') FROM {}.evalledger_events")
                           .format(Identifier(service.settings.schema))).fetchone()[0]
    assert secret not in raw


def test_purged_items_are_not_copied(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("source")
    gone, kept = client.add_items(dataset.id, [{"input": "private"}, {"input": "public"}]).items
    client.purge_item(dataset.id, gone.id)

    duplicate = client.http.post(f"/api/datasets/{dataset.id}/duplicate", json={"name": "copy"})
    assert duplicate.status_code == 201, duplicate.text
    copied = client.list_items(duplicate.json()["id"]).items
    assert [item.input for item in copied] == ["public"]  # a whole version's copy leaves it out

    before = client.get_dataset(dataset.id).version
    for refused in (client.http.post(f"/api/datasets/{dataset.id}/items/{gone.id}/duplicate"),
                    client.http.post("/api/datasets/from-items",
                                     json={"name": "picked", "sourceDatasetId": str(dataset.id),
                                           "itemIds": [str(gone.id), str(kept.id)]})):
        assert refused.status_code == 409 and refused.json()["type"].endswith("item-purged"), refused.text
    assert client.get_dataset(dataset.id).version == before
