"""Checking the read models against the event log, which is the truth.

`verify_dataset` replays a dataset's events once, in order, and at the end of every
dataset version compares the aggregate's items (ids, contents, externalIds) with what the
read model lists at that version, and the version's item count. `verify_run` recomputes
a run's counts and per-scorer score aggregates from its events and compares them with the
runs tables. Each difference found is reported with the dataset (or run) and version.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.sql import SQL, Identifier

from evalledger.bootstrap import Ledger
from evalledger.domain.datasets import Dataset
from evalledger.domain.runs import Run, result_key


@dataclass(frozen=True)
class Finding:
    kind: str  # "dataset" or "run"
    aggregate_id: UUID
    version: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.kind} {self.aggregate_id}" + (f" version {self.version}" if self.version is not None else "")
        return f"{where}: {self.message}"


def _listed(ledger: Ledger, dataset_id: UUID, version: int) -> dict[str, tuple[Any, ...]]:
    return {
        str(item["id"]): (item["input"], item["expectedOutput"], item["metadata"] or {}, item["externalId"])
        for page in ledger.dataset_queries.iter_item_pages(dataset_id, version)
        for item in page
    }


def verify_dataset(ledger: Ledger, dataset_id: UUID) -> Iterator[Finding]:
    events = list(ledger.datasets.events.get(dataset_id))
    if not events:
        yield Finding("dataset", dataset_id, None, "no events")
        return
    versions = {row["version"]: row for row in _version_rows(ledger, dataset_id)}
    dataset: Dataset | None = None
    for position, event in enumerate(events):
        dataset = event.mutate(dataset)
        following = events[position + 1] if position + 1 < len(events) else None
        version = getattr(event, "dataset_version", 0 if position == 0 else None)
        if version is None or getattr(following, "dataset_version", None) == version:
            continue  # not the event that completes a version
        assert dataset is not None
        if dataset.is_deleted:
            return
        expected = {
            item_id: (item.content.input, item.content.expected_output, item.content.metadata, item.external_id)
            for item_id, item in dataset.items.items()
        }
        listed = _listed(ledger, dataset_id, version)
        if listed != expected:
            missing = sorted(set(expected) - set(listed))
            extra = sorted(set(listed) - set(expected))
            differing = sorted(k for k in set(expected) & set(listed) if expected[k] != listed[k])
            yield Finding("dataset", dataset_id, version,
                          f"read model differs from the log: missing {missing[:5]}, extra {extra[:5]}, "
                          f"different content {differing[:5]}")
        row = versions.get(version)
        if row is None:
            yield Finding("dataset", dataset_id, version, "no row in dataset_versions")
        elif row["item_count"] != len(expected):
            yield Finding("dataset", dataset_id, version,
                          f"item count {row['item_count']} in the read model, {len(expected)} in the log")


def _version_rows(ledger: Ledger, dataset_id: UUID) -> list[dict[str, Any]]:
    rows, _ = ledger.dataset_queries.list_versions(dataset_id, 0, 10_000_000)
    return [{"version": r["version"], "item_count": r["itemCount"]} for r in rows]


def verify_run(ledger: Ledger, run_id: UUID) -> Iterator[Finding]:
    events = list(ledger.runs.events.get(run_id))
    run: Run | None = None
    latest: dict[str, dict[str, Any]] = {}
    for event in events:
        run = event.mutate(run)
        if isinstance(event, Run.ResultsRecorded):
            for result in event.results:
                latest[result_key(result)] = result
    if run is None:
        yield Finding("run", run_id, None, "no events")
        return
    row = ledger.run_queries.run_row(run_id)
    succeeded = sum(1 for r in latest.values() if r.get("error") is None)
    failed = len(latest) - succeeded
    for name, from_log, in_model in (
        ("status", run.status, row["status"]),
        ("recorded results", len(latest), row["recorded"]),
        ("succeeded", succeeded, row["succeeded"]),
        ("failed", failed, row["failed"]),
    ):
        if from_log != in_model:
            yield Finding("run", run_id, None, f"{name}: {in_model} in the read model, {from_log} in the log")
    sums: dict[str, list[float]] = {}
    for result in latest.values():
        for score in result.get("scores") or []:
            if score.get("score") is not None:
                sums.setdefault(score["scorerId"], []).append(float(score["score"]))
    summary = ledger.run_queries.score_summary(run_id)
    for scorer_id, values in sums.items():
        model = summary.get(scorer_id, {})
        mean = sum(values) / len(values)
        if model.get("count") != len(values) or not math.isclose(model.get("mean") or 0.0, mean, abs_tol=1e-9):
            yield Finding("run", run_id, None,
                          f"scorer {scorer_id}: count/mean {model.get('count')}/{model.get('mean')} in the read "
                          f"model, {len(values)}/{mean} in the log")


def all_dataset_ids(ledger: Ledger) -> list[UUID]:
    rows, _ = ledger.dataset_queries.list_datasets(0, 10_000_000)
    return [row["id"] for row in rows]


def all_run_ids(ledger: Ledger) -> list[UUID]:
    with ledger.run_queries.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(SQL("SELECT run_id FROM {}.runs ORDER BY created_at").format(Identifier(ledger.settings.schema)))
        return [row["run_id"] for row in curs.fetchall()]
