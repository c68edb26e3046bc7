"""Event schema evolution: every event class states its version, and events stored in an
older shape are upcast when they are read — stored rows are never rewritten."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
import psycopg
from cli_runner import database_env, evalledger
from conftest import Service
from psycopg.sql import SQL, Identifier

from evalledger.domain.datasets import Dataset
from evalledger.domain.runs import Run


def event_classes(aggregate: type) -> list[type]:
    return [value for value in vars(aggregate).values()
            if isinstance(value, type) and issubclass(value, aggregate.Event) and value is not aggregate.Event]


def insert_events(database_url: str, schema: str, aggregate_id: UUID, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Stored events written by hand: (topic, state) for versions 1, 2, ... of one aggregate."""
    with psycopg.connect(database_url) as conn:
        for version, (topic, state) in enumerate(rows, start=1):
            conn.execute(
                SQL("INSERT INTO {}.evalledger_events (originator_id, originator_version, topic, state)"
                    " VALUES (%s, %s, %s, %s)").format(Identifier(schema)),
                (aggregate_id, version, topic, orjson.dumps(state)),
            )


def test_every_event_class_states_its_version() -> None:
    classes = event_classes(Dataset) + event_classes(Run)
    assert len(classes) == 17  # 14, and the three version-tag events (VersionTagged, TagMoved, TagDeleted)
    for cls in classes:
        assert "class_version" in vars(cls), f"{cls.__qualname__} does not state its class_version"
        for older in range(1, cls.class_version):
            assert callable(getattr(cls, f"upcast_v{older}_v{older + 1}")), cls.__qualname__


def test_a_dataset_written_before_the_audit_log_existed_is_read_as_today(service: Service, database_url: str) -> None:
    """Version 1 of the dataset events had no `actor` and no `reason`, no class_version in
    the stored state, and item content in the clear. Rows in that shape, written here by
    hand, are read, projected, audited and extended like any other."""
    dataset_id = uuid4()
    created_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [
        ("evalledger.domain.datasets:Dataset.Created", {
            "timestamp": created_at.isoformat(), "originator_topic": "evalledger.domain.datasets:Dataset",
            "name": "from 2026-01", "description": "old", "metadata": {}, "input_schema": None,
            "expected_output_schema": None}),
        ("evalledger.domain.datasets:Dataset.ItemsAdded", {
            "timestamp": created_at.replace(minute=5).isoformat(), "dataset_version": 1,
            "items": [{"id": str(uuid4()), "externalId": "old-1",
                       "content": {"input": "legacy question", "expectedOutput": "legacy answer", "metadata": {}}}]}),
    ]
    insert_events(database_url, service.settings.schema, dataset_id, rows)
    for follower in service.ledger.followers:
        follower.catch_up()

    client = service.client
    assert client.get_dataset(dataset_id).name == "from 2026-01"
    [item] = client.list_items(dataset_id).items
    assert (item.input, item.expected_output, item.external_id) == ("legacy question", "legacy answer", "old-1")
    events = client.request("GET", f"/api/datasets/{dataset_id}/events")["events"]
    assert [(e["type"], e["actor"], e["reason"]) for e in events] == [
        ("Created", "anonymous", None), ("ItemsAdded", "anonymous", None)]
    versions = client.request("GET", f"/api/datasets/{dataset_id}/versions")["versions"]
    assert [v["actor"] for v in versions] == ["anonymous", "anonymous"]

    # New events go on top, in today's shape (sealed content, class_version 2).
    client.update_item(dataset_id, item.id, input="new question")
    assert client.get_item(dataset_id, item.id).input == "new question"
    assert client.get_item(dataset_id, item.id, version=1).input == "legacy question"
    with psycopg.connect(database_url) as conn:
        newest = conn.execute(
            SQL("SELECT state FROM {}.evalledger_events WHERE originator_id = %s AND originator_version = 3")
            .format(Identifier(service.settings.schema)), (dataset_id,)).fetchone()[0]
    state = orjson.loads(newest)
    assert state["class_version"] == 2 and "sealed" in state["items"][0]["content"]

    audit = evalledger("audit", "verify", str(dataset_id), env=database_env(service.settings), timeout=120)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_content_sealed_as_one_json_object_still_opens(service: Service, database_url: str) -> None:
    """Item content used to be sealed as one JSON object; it is now sealed as its three JSON
    texts (sealing.seal_content). Events sealed the old way, written here by hand with a
    real key, are read, projected, rebuilt and audited like new ones."""
    from evalledger.projections.rebuild import rebuild
    from evalledger.adapters.sealing import seal

    ledger = service.ledger
    dataset_id, item_id = uuid4(), str(uuid4())
    content = {"input": {"q": "sealed whole", "path": "C:\\tmp\ttab"}, "expectedOutput": None, "metadata": {"k": 1}}
    ledger.datasets.item_keys.ensure(str(dataset_id), [item_id])
    token = seal(ledger.datasets.item_keys.ciphers([item_id])[item_id], item_id, content)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        ("evalledger.domain.datasets:Dataset.Created", {
            "timestamp": at.isoformat(), "originator_topic": "evalledger.domain.datasets:Dataset", "class_version": 2,
            "actor": "old", "reason": None, "name": "sealed whole", "description": "", "metadata": {},
            "input_schema": None, "expected_output_schema": None}),
        ("evalledger.domain.datasets:Dataset.ItemsAdded", {
            "timestamp": at.replace(minute=1).isoformat(), "class_version": 2, "actor": "old", "reason": None,
            "dataset_version": 1, "items": [{"id": item_id, "externalId": None, "content": {"sealed": token}}]}),
    ]
    insert_events(database_url, service.settings.schema, dataset_id, rows)
    for follower in ledger.followers:
        follower.catch_up()

    client = service.client
    [item] = client.list_items(dataset_id).items
    assert (item.input, item.expected_output, item.metadata) == (content["input"], None, {"k": 1})
    client.update_item(dataset_id, item.id, expected_output="now sealed in parts")
    before = client.request("GET", f"/api/datasets/{dataset_id}/items", params={"version": 1})
    for follower in ledger.followers:
        rebuild(follower, ledger.connection)
    assert client.request("GET", f"/api/datasets/{dataset_id}/items", params={"version": 1}) == before
    assert client.get_item(dataset_id, item.id).expected_output == "now sealed in parts"
    assert client.get_item(dataset_id, item.id).input == content["input"]
    audit = evalledger("audit", "verify", str(dataset_id), env=database_env(service.settings), timeout=120)
    assert audit.returncode == 0, audit.stdout + audit.stderr
