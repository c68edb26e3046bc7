"""`evalledger audit verify` passes on a healthy database and names what a corrupted read
model row got wrong."""

from __future__ import annotations

import subprocess

import psycopg
from cli_runner import database_env, evalledger
from conftest import Service
from psycopg.sql import SQL, Identifier

from evalledger.adapters import database


def verify(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return evalledger("audit", "verify", *args, env=database_env(service.settings), timeout=120)


def test_verify_passes_when_healthy_and_names_a_corrupted_row(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("audited")
    added = client.add_items(dataset.id, [{"input": {"n": i}, "expectedOutput": i} for i in range(5)])
    client.update_item(dataset.id, added.items[0].id, input={"n": "edited"})
    client.delete_item(dataset.id, added.items[1].id)
    run = client.create_run(dataset.id)
    client.submit_results(run.id, [{"itemId": str(i.id), "output": 1, "scores": [{"scorerId": "s", "score": 0.5}]}
                                   for i in added.items[2:]])
    client.finalize_run(run.id)
    client.tag_version(dataset.id, "golden", 1)
    client.tag_version(dataset.id, "latest", 2)
    client.tag_version(dataset.id, "latest", 3, move=True)
    client.tag_version(dataset.id, "gone", 2)
    client.delete_tag(dataset.id, "gone")

    healthy = verify(service)
    assert healthy.returncode == 0, healthy.stderr
    assert "checked 1 dataset(s) and 1 run(s)" in healthy.stderr and "match the log" in healthy.stderr

    params = database.parse_database_url(service.settings.database_url or "")
    with psycopg.connect(params.conninfo, autocommit=True) as conn:
        conn.execute(
            SQL("UPDATE {}.dataset_items SET input = '\"tampered\"' WHERE item_id = %s AND valid_from = 1")
            .format(Identifier(service.settings.schema)),
            (added.items[3].id,),
        )
    broken = verify(service, str(dataset.id))
    assert broken.returncode == 1
    assert f"dataset {dataset.id} version 1" in broken.stderr and str(added.items[3].id) in broken.stderr
    with psycopg.connect(params.conninfo, autocommit=True) as conn:
        conn.execute(SQL("UPDATE {}.dataset_tags SET version = 2 WHERE tag = 'latest'")
                     .format(Identifier(service.settings.schema)))
    tag_broken = verify(service, str(dataset.id))
    assert tag_broken.returncode == 1
    assert f"dataset {dataset.id}: tag 'latest': version 2 in the read model, 3 in the log" in tag_broken.stderr
    with psycopg.connect(params.conninfo, autocommit=True) as conn:
        conn.execute(SQL("UPDATE {}.runs SET succeeded = succeeded + 1").format(Identifier(service.settings.schema)))
    run_broken = verify(service)
    assert run_broken.returncode == 1 and f"run {run.id}: succeeded: 4 in the read model, 3 in the log" in run_broken.stderr
