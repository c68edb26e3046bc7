"""The audit log: each event says who and why; streams filter by type and time and page
by position; the global feed lists every event in log order."""

from __future__ import annotations

from conftest import Service, acting_for


def test_events_carry_who_and_why_and_filter_by_type_and_time(service: Service) -> None:
    with service.new_client(actor="alice") as alice:
        dataset = alice.create_dataset("audited", reason="new suite")
        for i in range(5):
            alice.add_item(dataset.id, input=i, reason=f"case {i}")
        alice.update_dataset(dataset.id, name="renamed", reason="clearer")
    http = service.client.http
    every = http.get(f"/api/datasets/{dataset.id}/events").json()
    assert [e["actor"] for e in every["events"]] == [acting_for("alice")] * 7
    assert every["events"][0]["reason"] == "new suite" and every["events"][3]["reason"] == "case 2"
    added = http.get(f"/api/datasets/{dataset.id}/events", params={"type": "ItemsAdded", "perPage": 2}).json()
    assert [e["version"] for e in added["events"]] == [1, 2]
    more = http.get(f"/api/datasets/{dataset.id}/events",
                    params={"type": "ItemsAdded", "perPage": 2, "after": added["nextAfter"]}).json()
    assert [e["version"] for e in more["events"]] == [3, 4]
    cut = every["events"][3]["timestamp"]
    recent = http.get(f"/api/datasets/{dataset.id}/events", params={"since": cut}).json()
    assert [e["type"] for e in recent["events"]] == ["ItemsAdded", "ItemsAdded", "ItemsAdded", "DetailsChanged"]
    before = http.get(f"/api/datasets/{dataset.id}/events", params={"until": cut}).json()
    assert len(before["events"]) == 3


def test_the_global_feed_is_every_event_in_log_order(service: Service) -> None:
    client = service.client
    first = client.create_dataset("one")
    second = client.create_dataset("two")
    client.add_item(first.id, input=1)
    run = client.create_run(first.id)
    client.finalize_run(run.id)
    feed = client.http.get("/api/events").json()
    positions = [e["position"] for e in feed["events"]]
    assert positions == sorted(positions) and feed["nextAfter"] is None and feed["head"] == positions[-1]
    assert [(e["aggregateType"], e["type"]) for e in feed["events"]] == [
        ("Dataset", "Created"), ("Dataset", "Created"), ("Dataset", "ItemsAdded"), ("Run", "Created"),
        ("Run", "Completed"),
    ]
    assert feed["events"][1]["aggregateId"] == str(second.id)
    paged = client.http.get("/api/events", params={"after": positions[1], "limit": 2}).json()
    assert [e["position"] for e in paged["events"]] == positions[2:4] and paged["nextAfter"] == positions[3]
    runs_only = client.http.get("/api/events", params={"type": "Completed"}).json()
    assert [e["aggregateId"] for e in runs_only["events"]] == [str(run.id)]
    assert client.http.get("/api/events", params={"type": "Nope"}).status_code == 422
    run_stream = client.http.get(f"/api/datasets/runs/{run.id}/events").json()
    assert [e["type"] for e in run_stream["events"]] == ["Created", "Completed"]
