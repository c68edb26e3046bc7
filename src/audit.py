"""Checking the read models against the event log, which is the truth.

`verify_dataset` replays a dataset's events once, in order, and at the end of every
dataset version compares the aggregate's items (ids, contents, externalIds) with what the
read model lists at that version, and the version's item count; at the end, its version
tags. `verify_run` recomputes
a run's counts and per-scorer score aggregates from its events and compares them with the
runs tables. Each difference found is reported with the dataset (or run) and version.
Both replay with Python's cycle collector paused (see `gc_paused`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID


from evalledger.bootstrap import Ledger
from evalledger.domain.datasets import Dataset
from evalledger.domain.reviews import fold_review, reviewed_scores
from evalledger.domain.runs import Run, result_key
from evalledger.projections.follower import gc_paused


@dataclass(frozen=True)
class Finding:
    kind: str  # "dataset" or "run"
    aggregate_id: UUID
    version: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.kind} {self.aggregate_id}" + (f" version {self.version}" if self.version is not None else "")
        return f"{where}: {self.message}"


def _version_rows(ledger: Ledger, dataset_id: UUID) -> list[dict[str, Any]]:
    rows, _ = ledger.dataset_queries.list_versions(dataset_id, 0, 10_000_000)
    return [{"version": r.version, "item_count": r.item_count} for r in rows]


def _changed_ids(event: Any) -> tuple[set[str], set[str]]:
    """(items written, items deleted) by an event."""
    if isinstance(event, Dataset.ItemsAdded | Dataset.ItemsUpdated):
        return {entry["id"] for entry in event.items}, set()
    if isinstance(event, Dataset.ItemsDeleted):
        return set(), set(event.item_ids)
    return set(), set()


def verify_dataset(ledger: Ledger, dataset_id: UUID) -> Iterator[Finding]:
    """Replay once; at the end of each version check the revisions that version created and
    closed, and its item count. The temporal table is right at every version exactly when
    each version's revisions are (a revision holds until the version that closes it)."""
    with gc_paused():
        return iter(list(_dataset_findings(ledger, dataset_id)))


def _dataset_findings(ledger: Ledger, dataset_id: UUID) -> Iterator[Finding]:
    events = list(ledger.datasets.events.get(dataset_id))
    if not events:
        yield Finding("dataset", dataset_id, None, "no events")
        return
    counts = {row["version"]: row["item_count"] for row in _version_rows(ledger, dataset_id)}
    revisions = {}
    created_at: dict[int, set[str]] = {}
    closed_at: dict[int, set[str]] = {}
    for row in ledger.dataset_queries.revisions(dataset_id):
        revisions[(row["item_id"], row["valid_from"])] = row
        created_at.setdefault(row["valid_from"], set()).add(row["item_id"])
        if row["valid_to"] is not None:
            closed_at.setdefault(row["valid_to"], set()).add(row["item_id"])
    dataset: Dataset | None = None
    written: set[str] = set()
    deleted: set[str] = set()
    replaced: set[str] = set()  # items whose earlier revision this version closes
    for position, event in enumerate(events):
        more_written, more_deleted = _changed_ids(event)
        if dataset is not None:
            replaced |= {item_id for item_id in more_written if item_id in dataset.items} | more_deleted
        dataset = event.mutate(dataset)
        written |= more_written
        deleted |= more_deleted
        following = events[position + 1] if position + 1 < len(events) else None
        version = getattr(event, "dataset_version", 0 if position == 0 else None)
        if version is None or getattr(following, "dataset_version", None) == version:
            continue  # not the event that completes a version
        assert dataset is not None
        if dataset.is_deleted:
            return
        yield from _check_version(dataset_id, version, dataset, written, deleted, replaced, revisions,
                                  created_at.get(version, set()), closed_at.get(version, set()), counts)
        written, deleted, replaced = set(), set(), set()
    if dataset is not None and not dataset.is_deleted:
        yield from _check_tags(ledger, dataset_id, dataset)


def _check_tags(ledger: Ledger, dataset_id: UUID, dataset: Dataset) -> Iterator[Finding]:
    """The version tags the read model lists are the ones the log leaves (tag -> version)."""
    listed = {tag.tag: tag.version for tag in ledger.dataset_queries.list_tags(dataset_id)}
    for tag in sorted(set(listed) | set(dataset.tags)):
        if listed.get(tag) != dataset.tags.get(tag):
            yield Finding("dataset", dataset_id, None,
                          f"tag {tag!r}: version {listed.get(tag)} in the read model, {dataset.tags.get(tag)} in the log")


def _check_version(dataset_id: UUID, version: int, dataset: Dataset, written: set[str], deleted: set[str],
                   replaced: set[str], revisions: dict[tuple[str, int], dict[str, Any]], created: set[str],
                   closed: set[str], counts: dict[int, int]) -> Iterator[Finding]:
    problems = []
    for item_id in sorted(written - deleted):
        item = dataset.items[item_id]
        row = revisions.get((item_id, version))
        expected = (item.content.input, item.content.expected_output, item.content.metadata, item.external_id)
        if row is None or row["deleted"]:
            problems.append(f"item {item_id}: no revision made at this version")
        elif (row["input"], row["expected_output"], row["metadata"] or {}, row["external_id"]) != expected:
            problems.append(f"item {item_id}: its revision differs from the log")
    for item_id in sorted(deleted):
        row = revisions.get((item_id, version))
        if row is None or not row["deleted"]:
            problems.append(f"item {item_id}: no deletion marker at this version")
    if created != written | deleted:
        problems.append(f"revisions made for items the log did not change: {sorted(created - written - deleted)[:5]}")
    if closed != replaced:
        problems.append(f"revisions closed wrongly: {sorted(closed ^ replaced)[:5]}")
    if counts.get(version) != len(dataset.items):
        problems.append(f"item count {counts.get(version)} in the read model, {len(dataset.items)} in the log")
    for problem in problems:
        yield Finding("dataset", dataset_id, version, problem)


def verify_run(ledger: Ledger, run_id: UUID) -> Iterator[Finding]:
    """Replay the run; compare its counts and per-scorer means with the runs tables."""
    with gc_paused():
        return iter(list(_run_findings(ledger, run_id)))


def _run_findings(ledger: Ledger, run_id: UUID) -> Iterator[Finding]:
    events = list(ledger.runs.events.get(run_id))
    run: Run | None = None
    latest: dict[str, dict[str, Any]] = {}
    reviews: dict[str, dict[str, Any]] = {}  # the scores that count are the reviewed ones
    for event in events:
        run = event.mutate(run)
        if isinstance(event, Run.ResultsRecorded):
            for result in event.results:
                latest[result_key(result)] = result
        elif isinstance(event, Run.ResultReviewed):
            key = f"{event.item_id}#{event.repetition}"
            reviews[key] = fold_review(reviews.get(key), verdict=event.verdict, scores=event.scores,
                                       criteria=event.criteria, comment=event.comment, flagged=event.flagged,
                                       actor=event.actor, reason=event.reason, at=event.timestamp.isoformat())
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
    for key, result in latest.items():
        scores = result.get("scores") or []
        for score in reviewed_scores(scores, reviews.get(key)) or scores:
            if score.get("score") is not None:
                sums.setdefault(score["scorerId"], []).append(float(score["score"]))
    summary = ledger.run_queries.score_summary(run_id)
    for scorer_id, values in sums.items():
        stats = summary.get(scorer_id)
        count, model_mean = (stats.count, stats.mean) if stats is not None else (None, None)
        mean = sum(values) / len(values)
        if count != len(values) or not math.isclose(model_mean or 0.0, mean, abs_tol=1e-9):
            yield Finding("run", run_id, None, f"scorer {scorer_id}: count/mean {count}/{model_mean} in the read "
                          f"model, {len(values)}/{mean} in the log")


def all_dataset_ids(ledger: Ledger) -> list[UUID]:
    rows, _ = ledger.dataset_queries.list_datasets(0, 10_000_000)
    return [row.id for row in rows]


def all_run_ids(ledger: Ledger) -> list[UUID]:
    return ledger.run_queries.run_ids()
