"""One example answer per response model, shown in the OpenAPI document with every operation
that answers it (see openapi.py). Built from a few shared pieces so they stay consistent;
tests validate each against its model's schema."""

from __future__ import annotations

from typing import Any

DATASET_ID = "6f1c1b9e-3f0a-4d5e-9b1a-2c7d8e9f0a1b"
ITEM_ID = "0b8e2f4a-5c6d-4e7f-8a9b-1c2d3e4f5a6b"
RUN_ID = "9d8c7b6a-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
CREATED = "2026-11-30T09:00:00Z"
UPDATED = "2026-11-30T09:05:00Z"

PAGINATION = {"total": 1, "page": 0, "perPage": 10, "hasMore": False}
DATASET = {
    "id": DATASET_ID, "name": "capitals", "description": "Questions about capital cities",
    "metadata": {"owner": "qa"}, "inputSchema": None, "expectedOutputSchema": None,
    "version": 3, "itemCount": 120, "createdAt": CREATED, "updatedAt": UPDATED,
    "projectId": "6c170edb-6062-5a94-b11f-ac4dad99292e",
}
PROJECT = {"id": "6c170edb-6062-5a94-b11f-ac4dad99292e", "name": "Support bot", "slug": "support-bot",
           "createdAt": CREATED, "createdBy": "admin (key 3b9f0c52-8d4e-4f1a-9c7b-2e6d5a4f3c21)"}
API_KEY = {"id": "a4e5f6b7-1c2d-4e3f-8a9b-0c1d2e3f4a5b", "projectId": PROJECT["id"], "name": "ci", "role": "writer",
           "prefix": "elk_Zq3xP8wT", "createdAt": CREATED, "createdBy": PROJECT["createdBy"],
           "lastUsedAt": UPDATED, "revokedAt": None, "revokedBy": None, "rotatedFrom": None}
ITEM = {
    "id": ITEM_ID, "datasetId": DATASET_ID, "externalId": "q-17",
    "input": {"question": "What is the capital of France?"}, "expectedOutput": {"answer": "Paris"},
    "metadata": {"split": "test"}, "source": None, "version": 3, "validFrom": 3, "validTo": None,
    "createdAt": CREATED, "updatedAt": UPDATED, "purgedAt": None,
}
EVENT = {
    "type": "ItemsAdded", "aggregateVersion": 2, "version": 1, "timestamp": CREATED, "actor": "alice",
    "reason": "first batch",
    "payload": {"items": [{"id": ITEM_ID, "externalId": "q-17", "input": ITEM["input"],
                           "expectedOutput": ITEM["expectedOutput"], "metadata": ITEM["metadata"]}]},
}
SCORE_SUMMARY = {"exact-match": {"count": 120, "mean": 0.85, "median": 1.0, "std": 0.36, "min": 0.0, "max": 1.0,
                                 "passRate": 0.85, "errorCount": 0}}
RUN = {
    "id": RUN_ID, "datasetId": DATASET_ID, "datasetVersion": 3, "name": "gpt baseline", "status": "completed",
    "callerDriven": False, "target": {"type": "registered", "name": "my-model"}, "scorers": ["exact-match"],
    "settings": {"maxConcurrency": 8, "itemTimeoutMs": 60000, "maxRetries": 2, "repetitions": 1},
    "metadata": {}, "totalItems": 120, "repetitions": 1, "expectedResults": 120, "succeededCount": 119,
    "failedCount": 1, "pendingCount": 0, "skippedCount": 0, "error": None, "createdAt": CREATED,
    "startedAt": CREATED, "finishedAt": UPDATED, "progress": {"done": 120, "total": 120, "fraction": 1.0},
    "scoreSummary": SCORE_SUMMARY,
}
USAGE = {"results": 120, "inputTokens": 96000, "outputTokens": 11400, "cost": 0.42, "models": ["gpt-4o-mini"],
         "perItem": {"inputTokens": 800.0, "outputTokens": 95.0, "cost": 0.0035},
         "scorers": {"judge": {"results": 120, "inputTokens": 60000, "outputTokens": 2400, "cost": 0.1,
                               "models": ["gpt-4o"],
                               "perItem": {"inputTokens": 500.0, "outputTokens": 20.0, "cost": 0.00083}}},
         "totalCost": 0.52}
SCORER_COMPARISON = {
    "pairedItems": 120, "meanA": 0.85, "meanB": 0.9, "delta": 0.05,
    "confidenceInterval": {"low": 0.01, "high": 0.09}, "pValue": 0.02, "test": "paired t-test", "improved": 9,
    "regressed": 3, "unchanged": 108, "threshold": {"value": 0.0, "direction": "higher-is-better"},
    "verdict": "improved",
}
COMPARISON = {
    "runIdA": RUN_ID, "runIdB": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "datasetVersionA": 3, "datasetVersionB": 3,
    "partial": False, "alpha": 0.05, "pairedItems": 120, "onlyInA": 0, "onlyInB": 0, "hasRegression": False,
    "scorers": {"exact-match": SCORER_COMPARISON}, "latency": {"p50": {"a": 410.0, "b": 380.0}},
    "usage": {"a": USAGE, "b": {**USAGE, "cost": 0.36, "totalCost": 0.46},
              "delta": {"inputTokens": 0, "outputTokens": 0, "cost": -0.06, "totalCost": -0.06,
                        "perItem": {"inputTokens": 0.0, "outputTokens": 0.0, "cost": -0.0005}}},
    "warnings": [], "items": [{"itemId": ITEM_ID, "status": "improved",
                                     "scores": {"exact-match": {"a": 0.0, "b": 1.0, "delta": 1.0}},
                                     "outputDiff": {"kind": "json", "equal": False, "changes": [
                                         {"field": "output.answer", "before": "Lyon", "after": "Paris"}]}}],
    "itemsPagination": {"total": 1, "page": 0, "perPage": 100, "hasMore": False},
}
RESULT = {"itemId": ITEM_ID, "repetition": 0, "status": "succeeded", "input": ITEM["input"],
          "expectedOutput": ITEM["expectedOutput"], "itemMetadata": ITEM["metadata"],
          "output": {"answer": "Lyon"}, "error": None, "latencyMs": 412.5, "attempt": 1, "retryErrors": [],
          "traceId": None, "startedAt": CREATED, "recordedAt": CREATED,
          "scores": [{"scorerId": "exact-match", "score": 1.0, "reason": None, "error": None, "automaticScore": 0.0,
                      "reviewed": True}],
          "review": {"verdict": "pass", "comment": "Lyon is accepted here", "flagged": False,
                     "scores": {"exact-match": 1.0}, "criteria": {}, "reviews": 1, "actor": "alice",
                     "reason": "synonym", "reviewedAt": UPDATED},
          "flagged": False}
PROJECTION = {"name": "datasets", "position": 5120, "head": 5120, "lag": 0, "running": True, "leader": True,
              "lastError": None}
REBUILD_REPORT = {"projection": "datasets", "position": 5120, "events": 5120, "seconds": 0.21,
                  "eventsPerSecond": 24381}

TAG = {"tag": "golden", "version": 3, "taggedAt": UPDATED, "actor": "alice", "reason": "reviewed by QA"}

# By the name of the response model's schema in the document.
EXAMPLES: dict[str, Any] = {
    "Health": {"status": "ok", "database": "postgresql://evalledger@127.0.0.1:5432/evalledger",
               "projections": [PROJECTION]},
    "Dataset": DATASET,
    "DatasetWritten": DATASET,
    "DatasetList": {"datasets": [DATASET], "pagination": PAGINATION},
    "DatasetDeleted": {"datasetId": DATASET_ID, "version": 3, "deleted": True},
    "Item": ITEM,
    "ItemList": {"items": [ITEM], "version": 3, "pagination": PAGINATION},
    "ItemWritten": {"datasetId": DATASET_ID, "version": 3, "changed": True, "item": ITEM},
    "ItemsWritten": {"datasetId": DATASET_ID, "version": 3, "count": 1,
                     "items": [{"id": ITEM_ID, "externalId": "q-17"}]},
    "ItemsDeleted": {"datasetId": DATASET_ID, "version": 4, "count": 1, "itemIds": [ITEM_ID]},
    "ItemPurged": {"datasetId": DATASET_ID, "itemId": ITEM_ID, "purgedAt": UPDATED, "changed": True,
                   "aggregateVersion": 7},
    "ItemHistory": {"itemId": ITEM_ID, "history": [{**ITEM, "deleted": False}]},
    "VersionList": {"versions": [{"version": 3, "createdAt": UPDATED, "added": 0, "updated": 1, "removed": 0,
                                  "itemCount": 120, "actor": "alice", "reason": "fix the answer",
                                  "tags": ["golden"]}],
                    "pagination": PAGINATION},
    "Diff": {"datasetId": DATASET_ID, "fromVersion": 2, "toVersion": 3,
             "summary": {"added": 0, "removed": 0, "changed": 1},
             "changes": [{"itemId": ITEM_ID, "change": "changed",
                          "changes": [{"field": "expectedOutput.answer", "before": "paris", "after": "Paris"}],
                          "before": {**ITEM, "expectedOutput": {"answer": "paris"}, "version": 1,
                                     "validFrom": 1, "validTo": 3},
                          "after": ITEM}],
             "pagination": {"total": 1, "page": 0, "perPage": 100, "hasMore": False}},
    "TagList": {"datasetId": DATASET_ID, "tags": [TAG]},
    "DatasetTag": TAG,
    "TagWritten": {"datasetId": DATASET_ID, **TAG, "outcome": "moved", "previousVersion": 2},
    "TagDeleted": {"datasetId": DATASET_ID, "tag": "golden", "version": 3, "deleted": True},
    "EventList": {"events": [EVENT], "nextAfter": None, "pagination": PAGINATION},
    "EventFeed": {"events": [{**EVENT, "position": 42, "aggregateId": DATASET_ID, "aggregateType": "Dataset"}],
                  "nextAfter": None, "head": 42},
    "Run": RUN,
    "RunList": {"runs": [RUN], "pagination": PAGINATION},
    "RunResultList": {
        "results": [{"itemId": ITEM_ID, "repetition": 0, "status": "succeeded", "input": ITEM["input"],
                     "expectedOutput": ITEM["expectedOutput"], "itemMetadata": ITEM["metadata"],
                     "output": {"answer": "Paris"}, "error": None, "latencyMs": 412.5, "attempt": 1,
                     "retryErrors": [], "traceId": None,
                     "scores": [{"scorerId": "exact-match", "score": 1.0, "reason": None, "error": None}],
                     "startedAt": CREATED, "recordedAt": CREATED}],
        "pagination": PAGINATION},
    "ResultsAccepted": {"runId": RUN_ID, "accepted": 1, "aggregateVersion": 5},
    "RunAnalytics": {"runId": RUN_ID, "status": "completed", "partial": False, "threshold": 0.5, "results": 120,
                     "succeeded": 119, "failed": 1, "successRate": 0.9917,
                     "latencyMs": {"p50": 410.0, "p95": 820.0, "p99": 1310.0, "mean": 455.2, "max": 1500.0},
                     "scorers": SCORE_SUMMARY, "usage": USAGE},
    "Comparison": COMPARISON,
    "Catalog": {"builtin": [{"name": "exact-match", "description": "1 if the output equals the expected output"}],
                "registered": []},
    "ImportResult": {"datasetId": DATASET_ID, "format": "csv", "mode": "append", "rows": 2, "validRows": 2,
                     "invalidRows": 0, "errors": [], "warnings": [], "version": 4, "newVersion": True, "added": 2,
                     "updated": 0, "removed": 0, "unchanged": 0, "skippedRows": []},
    "ProjectionList": {"projections": [{**PROJECTION, "rebuild": None}]},
    "RebuildReport": REBUILD_REPORT,
    "RebuildState": {"projection": "datasets", "state": "running", "startedAt": CREATED, "position": 2048,
                     "head": 5120, "finishedAt": None, "report": None, "error": None},
    "Me": {"keyId": API_KEY["id"], "name": "ci", "role": "writer", "project": PROJECT,
           "actor": "ci (key a4e5f6b7-1c2d-4e3f-8a9b-0c1d2e3f4a5b)"},
    "Project": PROJECT,
    "ProjectList": {"projects": [PROJECT]},
    "ApiKey": API_KEY,
    "ApiKeyList": {"keys": [API_KEY]},
    "IssuedKey": {**API_KEY, "lastUsedAt": None, "secret": "elk_Zq3xP8wTnV2kL9mR4sY7uB1cD6fG0hJ5aE3iO8pQ2wX"},
    "ResultDetail": {
        **RESULT,
        "automaticScores": [{"scorerId": "exact-match", "score": 0.0, "reason": None, "error": None}],
        "reviews": [{"actor": "alice", "at": UPDATED, "reason": "synonym", "verdict": "pass",
                     "scores": [{"scorerId": "exact-match", "score": 1.0}], "criteria": [],
                     "comment": "Lyon is accepted here", "flagged": None}],
        "scoreHistory": [
            {"scorerId": "exact-match", "score": 0.0, "source": "automatic", "actor": "runner", "at": CREATED,
             "reason": None},
            {"scorerId": "exact-match", "score": 1.0, "source": "review", "actor": "alice", "at": UPDATED,
             "reason": "synonym"}],
        "outputDiff": {"kind": "json", "equal": False,
                       "changes": [{"field": "output.answer", "before": "Paris", "after": "Lyon"}]},
    },
}
