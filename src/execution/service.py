"""Run use cases: create (and launch), cancel, submit results, finalize.

What the HTTP API and the CLI call. Validation that needs the read model (does the
dataset version exist, how many items, do submitted item ids belong to the run's pinned
version) is safe here: a version's items never change once the version exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from evalledger.domain.applications import Runs, Written
from evalledger.domain.errors import InvalidRequestError
from evalledger.domain.runs import RunNotCallerDrivenError, RunSettings
from evalledger.execution.registry import Registry
from evalledger.execution.scheduler import RunScheduler
from evalledger.execution.scorers import build_scorer
from evalledger.execution.targets import build_target
from evalledger.projections.dataset_queries import DatasetQueries
from evalledger.projections.run_queries import RunQueries


@dataclass
class _Submission:
    results: list[dict[str, Any]]
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    written: Written | None = None
    error: BaseException | None = None


class GroupCommitter:
    """Saves concurrent submissions to the same run together: one event, one save.

    The first submitter becomes the leader and saves everything pending; submissions
    arriving meanwhile wait and go in the next save, led by the first of them. Each caller
    returns only once its results are durable (and visible to reads)."""

    def __init__(self, save: Callable[[UUID, list[dict[str, Any]]], Written]) -> None:
        self._save = save
        self._lock = threading.Lock()
        self._pending: dict[UUID, list[_Submission]] = {}
        self._saving: set[UUID] = set()

    def submit(self, run_id: UUID, results: list[dict[str, Any]]) -> Written:
        mine = _Submission(results)
        with self._lock:
            self._pending.setdefault(run_id, []).append(mine)
            if run_id not in self._saving:
                self._saving.add(run_id)
                mine.lead = True
        if not mine.lead:
            mine.wake.wait()
        if mine.lead:
            self._save_pending(run_id)
        if mine.error is not None:
            raise mine.error
        assert mine.written is not None
        return mine.written

    def _save_pending(self, run_id: UUID) -> None:
        with self._lock:
            batch = self._pending.pop(run_id, [])
        try:
            written = self._save(run_id, [result for submission in batch for result in submission.results])
        except BaseException as error:  # noqa: BLE001 - every waiter gets the same answer
            for submission in batch:
                submission.error = error
        else:
            for submission in batch:
                submission.written = written
        with self._lock:
            waiting = self._pending.get(run_id)
            if waiting:
                waiting[0].lead = True
                waiting[0].wake.set()
            else:
                self._saving.discard(run_id)
        for submission in batch:
            if not submission.lead:
                submission.wake.set()


class RunService:
    def __init__(
        self,
        *,
        runs: Runs,
        run_queries: RunQueries,
        dataset_queries: DatasetQueries,
        scheduler: RunScheduler,
        registry: Registry,
        http_allowlist: list[str],
        read_your_writes: Callable[[Written], None],
        max_results_per_submission: int = 1000,
    ) -> None:
        self.runs = runs
        self.run_queries = run_queries
        self.dataset_queries = dataset_queries
        self.scheduler = scheduler
        self.registry = registry
        self.http_allowlist = http_allowlist
        self.read_your_writes = read_your_writes
        self.max_results_per_submission = max_results_per_submission
        self.committer = GroupCommitter(self._save_submissions)

    # -- create -----------------------------------------------------------------------------

    def create_run(
        self,
        dataset_id: UUID,
        *,
        target: dict[str, Any] | None,
        scorers: list[Any],
        settings: RunSettings,
        version: int | None = None,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        run_id: UUID | None = None,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> dict[str, Any]:
        pinned = self.dataset_queries.resolve_version(dataset_id, version)
        total = self.dataset_queries.count_items(dataset_id, pinned)
        if total == 0:
            raise InvalidRequestError(f"dataset {dataset_id} has no items at version {pinned}; nothing to run")
        self._check_definition(target, scorers)
        written = self.runs.create_run(
            run_id=run_id or uuid4(),
            dataset_id=dataset_id,
            dataset_version=pinned,
            target=target,
            scorers=scorers,
            settings=settings,
            name=name,
            metadata=metadata or {},
            total_items=total,
            actor=actor,
            reason=reason,
        )
        self.read_your_writes(written)
        if target is not None and written.changed:
            self.scheduler.launch(written.aggregate_id)
        return self.run_queries.get_run(written.aggregate_id)

    def _check_definition(self, target: dict[str, Any] | None, scorers: list[Any]) -> None:
        """Build the target and scorers once, so a bad definition is refused up front."""
        if target is not None:
            build_target(target, self.registry, http_allowlist=self.http_allowlist)
        ids = []
        for spec in scorers:
            ids.append(build_scorer(spec, self.registry, http_allowlist=self.http_allowlist).id)
        repeated = {scorer_id for scorer_id in ids if ids.count(scorer_id) > 1}
        if repeated:
            raise InvalidRequestError(
                f"scorer ids must be unique in a run; repeated: {sorted(repeated)} (give each an 'id')"
            )

    # -- read -------------------------------------------------------------------------------

    def get_run(self, run_id: UUID) -> dict[str, Any]:
        wire = self.run_queries.get_run(run_id)
        live = self.scheduler.progress(run_id)
        if live is not None and wire["status"] in ("pending", "running"):
            wire["progress"] = {**wire["progress"], **live, "live": True}
        return wire

    # -- cancel -----------------------------------------------------------------------------

    def cancel_run(self, run_id: UUID, *, actor: str, reason: str | None) -> dict[str, Any]:
        if not self.scheduler.cancel(run_id, actor=actor, reason=reason):
            written = self.runs.cancel_run(run_id, actor=actor, reason=reason)
            self.read_your_writes(written)
        return self.get_run(run_id)

    # -- caller-driven ---------------------------------------------------------------------------

    def submit_results(self, run_id: UUID, results: list[dict[str, Any]]) -> dict[str, Any]:
        if len(results) > self.max_results_per_submission:
            raise InvalidRequestError(
                f"at most {self.max_results_per_submission} results per submission; got {len(results)}"
            )
        run = self.runs.get_run(run_id)
        if not run.caller_driven:
            raise RunNotCallerDrivenError(f"run {run_id} has a target; results are recorded by its executor")
        run.check_open()
        repetitions = run.run_settings.repetitions
        bad = [r["repetition"] for r in results if r["repetition"] >= repetitions]
        if bad:
            raise InvalidRequestError(f"repetition {bad[0]} is out of range: the run has {repetitions} repetition(s)")
        wanted = list({UUID(r["itemId"]) for r in results})
        known = self.dataset_queries.existing_item_ids(UUID(run.dataset_id), run.dataset_version, wanted)
        unknown = [str(item_id) for item_id in wanted if item_id not in known]
        if unknown:
            raise InvalidRequestError(
                f"{len(unknown)} item id(s) are not items of dataset {run.dataset_id} at version "
                f"{run.dataset_version}: {', '.join(unknown[:10])}",
                unknownItemIds=unknown[:100],
            )
        written = self.committer.submit(run_id, results)
        return {"runId": run_id, "accepted": len(results), "aggregateVersion": written.aggregate_version}

    def _save_submissions(self, run_id: UUID, results: list[dict[str, Any]]) -> Written:
        written = self.runs.record_results(run_id, results, upsert=True, actor="caller")
        self.read_your_writes(written)
        return written

    def finalize_run(self, run_id: UUID, *, actor: str) -> dict[str, Any]:
        run = self.runs.get_run(run_id)
        if not run.caller_driven:
            raise RunNotCallerDrivenError(f"run {run_id} has a target; it finishes by itself")
        written = self.runs.finish_run(run_id, actor=actor)
        self.read_your_writes(written)
        return self.get_run(run_id)
