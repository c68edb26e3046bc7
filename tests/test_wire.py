"""The wire layer (api/wire.py): the typed answers of the queries and use cases become the
JSON their response model documents, in camelCase, with nothing missing and nothing added.
No database: these check the encoders against the models themselves."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from uuid import uuid4

import orjson
import pytest
from pydantic import BaseModel

from evalledger.api import models
from evalledger.api.encoding import dumps
from evalledger.api.paging import paged
from evalledger.api.wire import encode
from evalledger.analysis import comparison as cmp
from evalledger.analysis import output_diff as od
from evalledger.execution import service as run_service
from evalledger.projections import dataset_queries as q
from evalledger.projections import run_analytics as ra
from evalledger.projections import run_queries as rq
from evalledger.service_layer import access_book, events, operations, transfer
from evalledger.service_layer import datasets as use_cases
from evalledger.service_layer import runs as run_use_cases
from evalledger.service_layer.access import Me
from evalledger.transfer.importing import RowProblem

# Each typed answer and the response model that puts it on the wire.
PAIRS: list[tuple[type, type[BaseModel]]] = [
    (q.DatasetView, models.Dataset),
    (q.DatasetView, models.DatasetWritten),
    (q.ItemView, models.Item),
    (q.ItemRevision, models.ItemRevision),
    (q.VersionView, models.DatasetVersion),
    (q.TagView, models.DatasetTag),
    (q.FieldChange, models.FieldChange),
    (q.ItemDiff, models.ItemDiff),
    (q.DiffSummary, models.DiffSummary),
    (use_cases.DatasetDeleted, models.DatasetDeleted),
    (use_cases.ItemWritten, models.ItemWritten),
    (use_cases.ItemsWritten, models.ItemsWritten),
    (use_cases.ItemsDeleted, models.ItemsDeleted),
    (use_cases.ItemPurged, models.ItemPurged),
    (use_cases.TagWritten, models.TagWritten),
    (use_cases.TagDeleted, models.TagDeleted),
    (events.EventItem, models.EventItem),
    (events.EventView, models.Event),
    (events.FeedEvent, models.FeedEvent),
    (events.FeedPage, models.EventFeed),
    (access_book.ProjectView, models.Project),
    (access_book.KeyView, models.ApiKey),
    (access_book.IssuedKey, models.IssuedKey),
    (Me, models.Me),
    (RowProblem, models.RowProblem),
    (transfer.PreviewRow, models.ImportPreviewRow),
    (transfer.ImportSummary, models.ImportResult),
    (operations.RebuildReport, models.RebuildReport),
    (operations.RebuildState, models.RebuildState),
    (operations.ProjectionStatus, models.ProjectionWithRebuild),
    (operations.ProjectionStatus, models.HealthProjection),
    (operations.ProjectionStatus, models.HealthProjectionDetails),
    (operations.Health, models.Health),
    (operations.Health, models.HealthDetails),
    (rq.RunView, models.Run),
    (rq.RunProgress, models.RunProgress),
    (rq.StatusReason, models.RunStatusReason),
    (rq.ResultView, models.RunResult),
    (rq.ResultDetail, models.ResultDetail),
    (rq.ReviewRecord, models.ResultReviewRecord),
    (rq.ScoreHistoryEntry, models.ScoreHistoryEntry),
    (run_service.ResultsAccepted, models.ResultsAccepted),
    (ra.ScorerStats, models.ScorerStats),
    (ra.LatencyStats, models.LatencyStats),
    (ra.UsagePerItem, models.UsagePerItem),
    (ra.UsageTotals, models.UsageTotals),
    (ra.Usage, models.Usage),
    (ra.GroupStats, models.AnalyticsGroup),
    (ra.VariableItem, models.VariableItem),
    (ra.RepetitionSpread, models.RepetitionSpread),
    (ra.RunAnalytics, models.RunAnalytics),
    (od.OutputDiff, models.OutputDiff),
    (cmp.ScorerComparison, models.ScorerComparison),
    (cmp.ScoreChange, models.ScoreChange),
    (cmp.ComparisonItem, models.ComparisonItem),
    (cmp.UsageDelta, models.UsageDelta),
    (cmp.UsageComparison, models.UsageComparison),
    (cmp.Comparison, models.Comparison),
    (run_use_cases.MultiComparison, models.MultiComparison),
]

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def item(**changes: object) -> q.ItemView:
    fields = dict(id=uuid4(), dataset_id=uuid4(), external_id="q-1", input={"question": "2+2?"},
                  expected_output="4", metadata={"lang": "en"}, source=None, version=3, valid_from=3, valid_to=None,
                  created_at=NOW, updated_at=NOW, purged_at=None)
    return q.ItemView(**{**fields, **changes})  # type: ignore[arg-type]


def on_the_wire(model: type[BaseModel], obj: object) -> dict:
    return orjson.loads(dumps(encode(model, obj)))


@pytest.mark.parametrize(("typed", "model"), PAIRS, ids=[f"{t.__name__}-{m.__name__}" for t, m in PAIRS])
def test_every_field_of_the_response_model_comes_from_the_typed_answer(typed: type, model: type[BaseModel]) -> None:
    computed = set(getattr(model, "wire_sources", {}))
    assert set(model.model_fields) - computed <= {f.name for f in dataclasses.fields(typed)}


def test_an_item_is_written_with_the_models_camel_case_names_and_reads_back_through_the_model() -> None:
    wire = on_the_wire(models.Item, item())
    assert set(wire) == {field.alias for field in models.Item.model_fields.values()}
    assert wire["externalId"] == "q-1" and wire["expectedOutput"] == "4" and wire["validTo"] is None
    assert wire["createdAt"] == "2026-11-30T12:00:00Z"
    assert models.Item.model_validate(wire).model_dump(mode="json", by_alias=True) == wire


def test_a_list_answer_nests_the_models_and_its_pagination() -> None:
    listing = models.ItemList.model_validate(on_the_wire(models.ItemList, type("Page", (), {
        "items": [item(), item(external_id=None)], "version": 3, "pagination": paged(25, 1, 10)})()))
    assert listing.pagination.has_more and listing.pagination.per_page == 10
    assert [i.external_id for i in listing.items] == ["q-1", None]


def test_fields_absent_when_none_are_left_out_and_a_changed_field_is_named_as_the_api_names_it() -> None:
    added = on_the_wire(models.ItemDiff, q.ItemDiff(uuid4(), "added", after=item()))
    assert set(added) == {"itemId", "change", "after"}
    changes = q.field_changes({"a": 1}, {"a": 2, "b": 3}, ("expected_output",))
    changed = on_the_wire(models.ItemDiff, q.ItemDiff(uuid4(), "changed", before=item(), after=item(),
                                                      changes=changes))
    assert changed["changes"] == [
        {"field": "expectedOutput.a", "before": 1, "after": 2},
        {"field": "expectedOutput.b", "before": None, "after": 3, "kind": "added"},
    ]
    copied = on_the_wire(models.ItemsWritten, use_cases.ItemsWritten(uuid4(), 2, 0, []))
    assert "skippedItemIds" not in copied
    skipped = on_the_wire(models.ItemsWritten, use_cases.ItemsWritten(uuid4(), 2, 0, [], ["a"]))
    assert skipped["skippedItemIds"] == ["a"]


def test_health_names_the_database_and_positions_only_in_its_detailed_answer() -> None:
    status = operations.ProjectionStatus("datasets", 7, 9, 2, True, False, None)
    public = on_the_wire(models.Health, operations.Health("ok", [status]))
    assert public == {"status": "ok", "projections": [{"name": "datasets", "lag": 2, "running": True, "leader": False}]}
    detailed = on_the_wire(models.HealthDetails, operations.Health("ok", [status], "postgresql://db"))
    assert list(detailed) == ["status", "projections", "database"]
    assert detailed["projections"][0] == {"name": "datasets", "lag": 2, "running": True, "leader": False,
                                          "position": 7, "head": 9, "lastError": None}


def test_a_rebuild_state_names_its_projection_first_only_when_it_has_one() -> None:
    state = operations.RebuildState("running", NOW, 0, None, None, None, None)
    assert "projection" not in on_the_wire(models.RebuildState, state)
    state.projection = "runs"
    assert list(on_the_wire(models.RebuildState, state))[:2] == ["projection", "state"]


def test_an_events_payload_names_its_fields_and_items_in_camel_case_and_keeps_recorded_values() -> None:
    item = events.EventItem("i-1", "q-1", {"q": 1}, "4", {"lang": "en"})
    event = events.EventView("ItemsAdded", 2, 1, NOW, "alice", None,
                             {"items": [item], "item_ids": ["i-1"], "changes": {"inputSchema": {"a_b": 1}}})
    payload = on_the_wire(models.Event, event)["payload"]
    assert payload == {"items": [{"id": "i-1", "externalId": "q-1", "input": {"q": 1}, "expectedOutput": "4",
                                  "metadata": {"lang": "en"}}],
                       "itemIds": ["i-1"], "changes": {"inputSchema": {"a_b": 1}}}


def test_an_import_summary_leaves_out_what_its_kind_of_import_does_not_have() -> None:
    summary = transfer.ImportSummary(uuid4(), "csv", "append", 2, 1, 1, [RowProblem(2, "input", "missing")], [],
                                     dry_run=True, preview=[transfer.PreviewRow(3, "q", None, {}, None)])
    wire = on_the_wire(models.ImportResult, summary)
    assert list(wire)[-2:] == ["dryRun", "preview"] and "newVersion" not in wire
    assert wire["errors"] == [{"row": 2, "field": "input", "message": "missing"}]
    assert wire["preview"] == [{"row": 3, "input": "q", "expectedOutput": None, "metadata": {}, "externalId": None}]


def run(**changes: object) -> rq.RunView:
    fields = dict(id=uuid4(), dataset_id=uuid4(), dataset_version=2, name="r", status="running", caller_driven=False,
                  target={"type": "registered", "name": "echo"}, scorers=["exact"], settings={"repetitions": 1},
                  metadata={}, total_items=4, repetitions=1, expected_results=4, succeeded_count=1, failed_count=0,
                  pending_count=3, skipped_count=0, error=None, created_at=NOW, started_at=NOW, finished_at=None,
                  progress=rq.RunProgress(1, 4, 0.25))
    return rq.RunView(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_runs_live_counters_are_there_only_while_live_null_eta_included_and_its_summary_only_once_finished() -> None:
    quiet = on_the_wire(models.Run, run())
    assert quiet["progress"] == {"done": 1, "total": 4, "fraction": 0.25}
    assert "scoreSummary" not in quiet and "statusReason" not in quiet
    live = on_the_wire(models.Run, run(progress=rq.RunProgress(2, 4, 0.5, 0, 1.5, None, True)))
    assert live["progress"] == {"done": 2, "total": 4, "fraction": 0.5, "failed": 0, "itemsPerSecond": 1.5,
                                "etaSeconds": None, "live": True}
    done = on_the_wire(models.Run, run(status="completed", score_summary={"exact": ra.ScorerStats(count=1, mean=1.0)}))
    assert done["scoreSummary"]["exact"]["passRate"] is None and done["scoreSummary"]["exact"]["count"] == 1


def test_a_results_scores_are_written_as_recorded_and_its_trace_link_only_when_there_is_one() -> None:
    scores = [{"scorerId": "exact", "score": 1.0, "reason": None, "error": None, "reviewed": True,
               "automaticScore": 0.0}]
    result = rq.ResultView(uuid4(), 0, "succeeded", {"q": 1}, "a", None, "a", None, 1.5, 1, [], None, None, None,
                           scores, None, False, NOW, NOW)
    wire = on_the_wire(models.RunResult, result)
    assert wire["scores"] == scores and "traceUrl" not in wire and wire["expectedOutput"] == "a"


def test_a_comparison_pages_its_items_on_the_wire_and_says_which_run_has_no_output() -> None:
    empty = ra.Usage(0, None, None, None, [], ra.UsagePerItem(None, None, None))
    item = cmp.ComparisonItem(uuid4(), "onlyInA", {"exact": cmp.ScoreChange(1.0, None, None)},
                              output_diff=od.runs_output_diff("x", None))
    comparison = cmp.Comparison(
        uuid4(), uuid4(), 1, 1, False, 0.05, 0, 1, 0, False, {},
        cmp.LatencyComparison(cmp.Percentiles(1.0, 2.0), cmp.Percentiles(None, None), cmp.Percentiles(None, None)),
        cmp.UsageComparison(empty, empty, cmp.UsageDelta(None, None, None, None, ra.UsagePerItem(None, None, None))),
        [cmp.ComparisonWarning("empty-run", "run B has no results")], [item], 3, 0, 1)
    wire = on_the_wire(models.Comparison, comparison)
    assert wire["itemsPagination"] == {"total": 3, "page": 0, "perPage": 1, "hasMore": True}
    assert wire["items"][0] == {"itemId": str(item.item_id), "status": "onlyInA",
                                "scores": {"exact": {"a": 1.0, "b": None, "delta": None}},
                                "outputDiff": {"kind": "missingOutput", "equal": False, "missing": ["B"]}}
    assert wire["latency"]["a"] == {"p50": 1.0, "p95": 2.0}
    assert wire["warnings"] == [{"code": "empty-run", "message": "run B has no results"}]
    assert wire["usage"]["a"]["perItem"] == {"inputTokens": None, "outputTokens": None, "cost": None}
