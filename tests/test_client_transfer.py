"""The Python client covers every capability of the API (issue 17, item 8): import and
export (files, bytes, streams), duplicate and copy, typed comparison items, auto-paging
iterators, the audit feeds, the read models, and start-a-run-and-wait with progress."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import Service, running_service, with_settings
from llm_server import LLMServer

from evalledger.api import models
from evalledger.client import ApiError
from evalledger.settings import Settings


def test_import_export_duplicate_and_copy(service: Service, tmp_path: Path) -> None:
    client = service.new_client(actor="alice")
    dataset = client.create_dataset("imported")
    csv = tmp_path / "questions.csv"
    csv.write_text("question,answer,id,note\nWhat is 2+2?,4,q1,easy\nCapital of France?,Paris,q2,geo\n")
    mapping = {"question": "input", "answer": "expectedOutput", "id": "externalId", "note": "metadata"}

    dry = client.import_items(dataset.id, csv, mapping=mapping, dry_run=True)
    assert (dry.dry_run, dry.valid_rows, dry.version) == (True, 2, None) and client.get_dataset(dataset.id).version == 0
    done = client.import_items(dataset.id, csv, mapping=mapping, reason="first import")
    assert (done.added, done.version, done.new_version) == (2, 1, True)
    assert client.list_versions(dataset.id).versions[0].reason == "first import"
    lines = b'{"input": "3+3?", "expectedOutput": "6", "externalId": "q3"}\n'
    assert client.import_items(dataset.id, lines, format="jsonl").version == 2
    upsert = client.import_items(dataset.id, io.BytesIO(b'[{"input": "2+2?", "expectedOutput": "four", '
                                                        b'"externalId": "q1"}]'), format="json", mode="upsert")
    assert (upsert.updated, upsert.version) == (1, 3)
    with pytest.raises(ApiError) as refused:
        client.import_items(dataset.id, b"not,json\n", format="json")
    assert refused.value.status in (400, 422) and client.get_dataset(dataset.id).version == 3

    client.tag_version(dataset.id, "golden", 2)
    out = tmp_path / "golden.jsonl"
    assert client.export_items(dataset.id, out, tag="golden") == 2
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(e["externalId"] for e in exported) == ["q1", "q2", "q3"]
    assert next(e for e in exported if e["externalId"] == "q1")["expectedOutput"] == "4"
    buffer = io.BytesIO()
    assert client.export_items(dataset.id, buffer, format="csv", include_ids=True) == 3
    assert buffer.getvalue().startswith(b"id,") and b"four" in buffer.getvalue()
    with pytest.raises(ApiError, match="version-not-found"):
        client.export_items(dataset.id, tmp_path / "nope.jsonl", version=9)

    copy = client.duplicate_dataset(dataset.id, name="imported v2", version=2)
    assert (copy.name, copy.item_count, copy.version) == ("imported v2", 3, 1)
    q1 = next(i for i in client.iter_items(dataset.id) if i.external_id == "q1")
    assert client.duplicate_item(dataset.id, q1.id).count == 1
    picked = client.dataset_from_items("picked", dataset.id, [q1.id])
    assert [i.input for i in client.iter_items(picked.id)] == ["2+2?"]
    assert {d.name for d in client.iter_datasets(per_page=1)} == {"imported", "imported v2", "picked"}
    assert [v.version for v in client.iter_versions(dataset.id, per_page=2)] == [4, 3, 2, 1, 0]
    events = list(client.iter_events(dataset.id, per_page=2))
    assert [e.type for e in events][:2] == ["Created", "ItemsAdded"] and events[-1].type == "ItemsAdded"
    assert [e.type for e in client.iter_events(dataset.id, types=["VersionTagged"])] == ["VersionTagged"]


def test_typed_comparisons_iterators_feeds_and_read_models(service: Service, tmp_path: Path) -> None:
    client = service.client
    dataset = client.create_dataset("compare")
    items = client.add_items(dataset.id, [{"input": n, "expectedOutput": n} for n in range(5)]).items
    runs = []
    for right in (5, 3):
        run = client.create_run(dataset.id, scorers=["exact-match"])
        client.submit_results(run.id, [{"itemId": str(item.id), "output": n if n < right else -1,
                                        "scores": [{"scorerId": "exact-match", "score": 1.0 if n < right else 0.0}]}
                                       for n, item in enumerate(items)])
        client.finalize_run(run.id)
        runs.append(run.id)
    comparison = client.compare(*runs)
    assert all(isinstance(item, models.ComparisonItem) for item in comparison.items)
    worst = comparison.items[0]
    assert worst.status == "regressed" and worst.scores["exact-match"].delta == -1.0
    assert worst.output_diff is not None and not worst.output_diff.equal
    assert [i.status for i in comparison.items].count("unchanged") == 3
    assert client.compare_many(runs[0], [runs[1]]).comparisons[0].items[0].scores["exact-match"].a == 1.0

    assert [str(r.id) for r in client.iter_runs(dataset.id, per_page=1)] == [str(runs[1]), str(runs[0])]
    assert len(list(client.iter_results(runs[1], per_page=2))) == 5
    assert len(list(client.iter_results(runs[1], status="succeeded", per_page=2))) == 5
    run_events = client.run_events(runs[0]).events
    assert [e.type for e in run_events] == ["Created", "ResultsRecorded", "Completed"]
    feed = list(client.iter_feed(per_page=3))
    assert [e.position for e in feed] == sorted(e.position for e in feed) and len(feed) >= 8
    later = list(client.iter_feed(after=feed[-3].position))
    assert [e.position for e in later] == [e.position for e in feed[-2:]]
    assert {p.name for p in client.projections().projections} == {"datasets", "runs"}
    assert client.rebuild_projection("runs").events > 0
    out = tmp_path / "results.csv"
    client.export_results(runs[1], out, format="csv")
    assert out.read_text().count("\n") == 6 and "exact-match.score" in out.read_text()


def test_run_and_wait_reports_progress(settings: Settings) -> None:
    with LLMServer() as llm, running_service(with_settings(settings, http_allowlist=(llm.base_url,))) as svc:
        client = svc.client
        dataset = client.create_dataset("waited")
        client.add_items(dataset.id, [{"input": f"q{n}"} for n in range(6)])
        seen: list[int] = []
        run = client.run_and_wait(dataset.id, target={"type": "openai", "baseUrl": llm.base_url, "model": "m",
                                                      "promptTemplate": "{{input}}"},
                                  timeout=60, poll=0.05, on_progress=lambda r: seen.append(r.progress.done))
        assert run.status == "completed" and seen and seen[-1] == 6 and seen == sorted(seen)
