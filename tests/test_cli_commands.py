"""The day-to-day commands against a live service: datasets, items, runs, compare with
several candidates, the global --actor / --reason, and imports and copies worded in the
command's own options."""

from __future__ import annotations

import csv
import io
import json
import socket
from pathlib import Path
from typing import Any

from cli_runner import evalledger
from conftest import Service, acting_for
from test_comparison import scored_run


def events_of(service: Service, dataset_id: str) -> list[dict[str, Any]]:
    return service.client.request("GET", f"/api/datasets/{dataset_id}/events", params={"perPage": 100})["events"]


def test_datasets_are_created_listed_shown_and_deleted_with_who_and_why(service: Service) -> None:
    created = evalledger("--actor", "alice", "--reason", "new eval", "datasets", "create", "support-bot",
                         "--description", "tickets", "--metadata", '{"team": "cx"}', url=service.url)
    assert created.returncode == 0, created.stderr
    dataset_id = created.stdout.strip()
    assert service.client.get_dataset(dataset_id).metadata == {"team": "cx"}
    [event] = events_of(service, dataset_id)
    assert (event["actor"], event["reason"]) == (acting_for("alice"), "new eval")

    # The actor also comes from EVALLEDGER_ACTOR; items are added and listed.
    import os
    added = evalledger("items", "add", dataset_id, "--input", '{"q": "reset password?"}', "--expected", "use the link",
                       "--external-id", "t-1", url=service.url, env={**os.environ, "EVALLEDGER_ACTOR": "bob"})
    assert added.returncode == 0, added.stderr
    item_id = added.stdout.strip()
    assert service.client.get_item(dataset_id, item_id).expected_output == "use the link"
    assert events_of(service, dataset_id)[-1]["actor"] == acting_for("bob")

    listed = evalledger("items", "list", dataset_id, url=service.url)
    assert listed.returncode == 0 and item_id in listed.stdout and "reset password" in listed.stdout
    as_json = evalledger("items", "list", dataset_id, "--json", url=service.url)
    assert json.loads(as_json.stdout)["items"][0]["externalId"] == "t-1"

    datasets = evalledger("datasets", "list", url=service.url)
    assert datasets.returncode == 0 and dataset_id in datasets.stdout and "support-bot" in datasets.stdout
    shown = evalledger("datasets", "show", dataset_id, url=service.url)
    assert shown.returncode == 0 and "tickets" in shown.stdout and "bob" in shown.stdout  # the version's actor

    deleted = evalledger("--actor", "carol", "datasets", "delete", dataset_id, "--yes", url=service.url)
    assert deleted.returncode == 0, deleted.stderr
    assert events_of_deleted(service, dataset_id) == acting_for("carol")
    gone = evalledger("datasets", "show", dataset_id, url=service.url)
    assert gone.returncode == 1 and "dataset-not-found" in gone.stderr and "Traceback" not in gone.stderr


def events_of_deleted(service: Service, dataset_id: str) -> str:
    feed = service.client.request("GET", "/api/events", params={"limit": 1000})["events"]
    return [e for e in feed if e.get("aggregateId") == dataset_id or e.get("datasetId") == dataset_id][-1]["actor"]


def test_runs_are_listed_shown_with_declared_scorers_and_their_results_exported(
    service: Service, tmp_path: Path
) -> None:
    client = service.client
    dataset = client.create_dataset("runs")
    items = client.add_items(dataset.id, [{"input": {"q": i}} for i in range(3)]).items
    run = client.create_run(dataset.id, scorers=["quality", "tone"], name="nightly")
    client.submit_results(run.id, [{"itemId": str(items[0].id), "output": "a",
                                     "scores": [{"scorerId": "quality", "score": 0.75, "reason": "close"}]}])
    client.finalize_run(run.id)

    listed = evalledger("runs", "list", str(dataset.id), url=service.url)
    assert listed.returncode == 0 and str(run.id) in listed.stdout and "nightly" in listed.stdout
    assert "completed" in listed.stdout
    shown = evalledger("runs", "show", str(run.id), url=service.url)
    assert shown.returncode == 0, shown.stderr
    assert "quality" in shown.stdout and "0.750" in shown.stdout and "tone" in shown.stdout  # declared, no score
    results = evalledger("runs", "results", str(run.id), url=service.url)
    assert results.returncode == 0 and "quality=0.75" in results.stdout

    out = tmp_path / "results.csv"
    exported = evalledger("runs", "export", str(run.id), "-o", str(out), url=service.url)
    assert exported.returncode == 0, exported.stderr
    [row] = list(csv.DictReader(io.StringIO(out.read_text())))
    assert (row["quality.score"], row["quality.reason"], row["tone.score"]) == ("0.75", "close", "")


def test_compare_takes_several_candidates_and_exits_one_if_any_regresses(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("gate")
    ids = [str(i.id) for i in client.add_items(dataset.id, [{"input": i} for i in range(60)]).items]
    baseline = scored_run(client, dataset.id, {i: {"s": 1.0} for i in ids})
    same = scored_run(client, dataset.id, {i: {"s": 1.0} for i in ids})
    worse = scored_run(client, dataset.id, {i: {"s": 0.0 if k < 30 else 1.0} for k, i in enumerate(ids)})

    gate = evalledger("compare", str(baseline), str(same), str(worse), url=service.url)
    assert gate.returncode == 1, gate.stderr
    assert f"{same} vs baseline" in gate.stderr and f"{worse} vs baseline" in gate.stderr
    assert f"regression found in {worse}" in gate.stderr.replace("\n", " ")
    passing = evalledger("compare", str(baseline), str(same), str(same), url=service.url)
    assert passing.returncode == 0, passing.stderr
    bad = evalledger("compare", str(baseline), str(same), "not-a-run", url=service.url)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_import_problems_are_worded_with_the_commands_options(service: Service, tmp_path: Path) -> None:
    dataset = service.client.create_dataset("import")
    no_input = tmp_path / "questions.csv"
    no_input.write_text("question,answer\nq1,a1\n")
    refused = evalledger("import", str(dataset.id), str(no_input), url=service.url)
    assert refused.returncode == 1
    assert "--map question=input" in refused.stderr and "map=" not in refused.stderr

    # A repeated externalId is an error of its own row, which --skip-invalid leaves out; an
    # unmapped column is warned about.
    rows = tmp_path / "rows.csv"
    rows.write_text("question,answer,externalId,notes\nq1,a1,x,n1\nq2,a2,y,n2\nq3,a3,x,n3\n")
    mapping = ["--map", "question=input", "--map", "answer=expectedOutput"]
    duplicate = evalledger("import", str(dataset.id), str(rows), *mapping, url=service.url)
    assert duplicate.returncode == 1
    text = " ".join(duplicate.stderr.split())
    assert "row 4" in text and "row 2" in text and "entry" not in text
    assert "--skip-invalid" in text and "skipInvalid" not in text
    assert "column 'notes' is not mapped" in text and "--map notes=metadata" in text
    assert service.client.get_dataset(dataset.id).version == 0

    skipped = evalledger("import", str(dataset.id), str(rows), *mapping, "--skip-invalid", url=service.url)
    assert skipped.returncode == 0, skipped.stderr
    assert "2 added" in skipped.stderr and "1 invalid row(s) skipped" in skipped.stderr
    assert sorted(i.external_id for i in service.client.list_items(dataset.id).items) == ["x", "y"]

    again = evalledger("import", str(dataset.id), str(rows), *mapping, "--map", "notes=ignore", "--skip-invalid",
                       url=service.url)
    assert again.returncode == 1 and "--mode upsert" in again.stderr and "mode=upsert" not in again.stderr
    assert "not mapped" not in again.stderr


def test_copying_items_whose_external_id_the_target_uses(service: Service) -> None:
    client = service.client
    source = client.create_dataset("source")
    target = client.create_dataset("target")
    a, b = client.add_items(source.id, [{"input": "a", "externalId": "shared"}, {"input": "b", "externalId": "own"}]).items
    client.add_item(target.id, input="already", external_id="shared")
    args = ["items", "copy", str(source.id), str(target.id), str(a.id), str(b.id)]

    refused = evalledger(*args, url=service.url)
    assert refused.returncode == 1
    text = " ".join(refused.stderr.split())
    assert "'shared'" in text and "--on-conflict" in text and "mode" not in text
    assert client.get_dataset(target.id).item_count == 1
    over_http = client.http.post(f"/api/datasets/{source.id}/items/copy",
                                 json={"targetDatasetId": str(target.id), "itemIds": [str(a.id), str(b.id)]})
    assert over_http.status_code == 409
    [clash] = over_http.json()["clashes"]  # the problem's extras in the wire's names
    target_item = client.list_items(target.id).items[0].id
    assert clash == {"externalId": "shared", "sourceItemId": str(a.id), "targetItemId": str(target_item)}

    skipped = evalledger(*args, "--on-conflict", "skip", url=service.url)
    assert skipped.returncode == 0, skipped.stderr
    assert "copied 1 item(s)" in skipped.stderr and "skipped 1" in skipped.stderr
    assert sorted(i.external_id or "" for i in client.list_items(target.id).items) == ["own", "shared"]

    dropped = client.copy_items(source.id, target.id, [a.id], on_conflict="drop")
    assert dropped.count == 1 and dropped.items[0].external_id is None
    assert client.get_item(target.id, dropped.items[0].id).input == "a"


def test_a_command_with_no_service_at_its_url_says_so_in_one_line() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for command in (["whoami"], ["datasets", "list"]):
        done = evalledger(*command, url=url)
        assert done.returncode == 2
        assert f"Cannot reach the service at {url}" in done.stderr + done.stdout
        assert "Traceback" not in done.stderr and "ConnectError" not in done.stderr
