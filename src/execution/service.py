"""Run use cases: create (and launch), cancel, submit results, finalize.

What the HTTP API and the CLI call. Validation that needs the read model (does the
dataset version exist, how many items, do submitted item ids belong to the run's pinned
version) is safe here: a version's items never change once the version exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from evalledger.service_layer.applications import Runs, Written
from evalledger.domain.errors import InvalidRequestError
from evalledger.domain.runs import FINISHED, RunNotCallerDrivenError, RunSettings, declared_scorer_ids
from evalledger.domain.storable import problems
from evalledger.execution.registry import Registry
from evalledger.execution.scheduler import RunScheduler
from evalledger.execution.scorers import build_scorer
from evalledger.execution.targets import build_target, read_usage
from evalledger.projections.dataset_queries import DatasetQueries
from evalledger.projections.run_queries import RunQueries, RunView


@dataclass(slots=True)
class ResultsAccepted:
    """A caller's submission is recorded: how many results, and the run's version after it."""

    run_id: UUID
    accepted: int
    aggregate_version: int


class SubmissionQueue:
    """Groups concurrent result submissions to the same run into one save.

    Requests wait on the event loop (no thread each); while one group is being saved, the
    next one gathers, and is then validated with one query and saved as one event. Each
    caller's answer comes only once its results are durable and visible to reads."""

    def __init__(self, process: Callable[[UUID, list[list[dict[str, Any]]]], list[Any]]) -> None:
        self._process = process
        self._pending: dict[UUID, list[tuple[list[dict[str, Any]], asyncio.Future[Any]]]] = {}
        self._draining: set[UUID] = set()

    async def submit(self, run_id: UUID, results: list[dict[str, Any]]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(run_id, []).append((results, future))
        if run_id not in self._draining:
            self._draining.add(run_id)
            asyncio.create_task(self._drain(run_id))
        return await future

    async def _drain(self, run_id: UUID) -> None:
        try:
            while self._pending.get(run_id):
                group = self._pending.pop(run_id)
                try:
                    outcomes = await asyncio.to_thread(self._process, run_id, [results for results, _ in group])
                except BaseException as error:  # noqa: BLE001 - every caller gets the answer
                    outcomes = [error] * len(group)
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._draining.discard(run_id)


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
        self.submissions = SubmissionQueue(self.record_submissions)

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
    ) -> RunView:
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
        """Build the target and scorers once, so a bad definition is refused up front.

        A caller-driven run scores its results itself: there a scorer given as a string is
        only a declared name (so analytics knows it before any result), checked as a name."""
        if target is not None:
            build_target(target, self.registry, http_allowlist=self.http_allowlist,
                         result_row=self.run_queries.result_row)
        ids = []
        for spec in scorers:
            if target is None and isinstance(spec, str):
                ids.append(_checked_scorer_name(spec))
            else:
                ids.append(build_scorer(spec, self.registry, http_allowlist=self.http_allowlist).id)
        repeated = {scorer_id for scorer_id in ids if ids.count(scorer_id) > 1}
        if repeated:
            raise InvalidRequestError(
                f"scorer ids must be unique in a run; repeated: {sorted(repeated)} (give each an 'id')"
            )

    # -- read -------------------------------------------------------------------------------

    def get_run(self, run_id: UUID) -> RunView:
        """The run as the read model has it, with what this process knows besides: the live
        counters of its executor, why it waits, and once finished, its score summary."""
        run = self.run_queries.get_run(run_id)
        live = self.scheduler.progress(run_id)
        if live is not None and run.status in ("pending", "running"):
            progress = run.progress
            progress.done, progress.total, progress.fraction = live.done, live.total, live.fraction
            progress.failed, progress.items_per_second, progress.eta_seconds = (
                live.failed, live.items_per_second, live.eta_seconds)
            progress.live = True
        if run.status in ("pending", "running") and run.target is not None:
            run.status_reason = self.scheduler.status_reason(run_id)
        if run.status in FINISHED:
            run.score_summary = self.run_queries.score_summary(run_id)
        return run

    # -- cancel -----------------------------------------------------------------------------

    def cancel_run(self, run_id: UUID, *, actor: str, reason: str | None) -> RunView:
        if not self.scheduler.cancel(run_id, actor=actor, reason=reason):
            written = self.runs.cancel_run(run_id, actor=actor, reason=reason)
            self.read_your_writes(written)
        return self.get_run(run_id)

    # -- caller-driven ---------------------------------------------------------------------------

    def submit_results(self, run_id: UUID, results: list[dict[str, Any]]) -> ResultsAccepted:
        """Record one submission (in this thread; the HTTP API groups concurrent ones)."""
        [outcome] = self.record_submissions(run_id, [results])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def submit_results_grouped(self, run_id: UUID, results: list[dict[str, Any]]) -> ResultsAccepted:
        return await self.submissions.submit(run_id, results)

    def record_submissions(self, run_id: UUID, submissions: list[list[dict[str, Any]]]) -> list[Any]:
        """Validate each submission and save the valid ones together (one event). Returns,
        per submission, its answer or the error that refused it."""
        run = self.runs.get_run(run_id)
        if not run.caller_driven:
            raise RunNotCallerDrivenError(f"run {run_id} has a target; results are recorded by its executor")
        run.check_open()
        repetitions = run.run_settings.repetitions
        wanted = list({UUID(r["itemId"]) for results in submissions for r in results})
        known = self.dataset_queries.existing_item_ids(UUID(run.dataset_id), run.dataset_version, wanted)
        declared = declared_scorer_ids(run.scorers)
        outcomes: list[Any] = []
        accepted: list[dict[str, Any]] = []
        for results in submissions:
            problem = self._problem(results, known, repetitions, run.dataset_id, run.dataset_version, declared)
            outcomes.append(problem)
            if problem is None:
                accepted += results
        if accepted:
            written = self.runs.record_results(run_id, accepted, upsert=True, actor="caller")
            self.read_your_writes(written)
            version = written.aggregate_version
        else:
            version = run.version
        return [
            outcome if outcome is not None
            else ResultsAccepted(run_id, len(results), version)
            for outcome, results in zip(outcomes, submissions, strict=True)
        ]

    def _problem(self, results: list[dict[str, Any]], known: set[UUID], repetitions: int, dataset_id: str,
                 version: int, declared: list[str]) -> InvalidRequestError | None:
        if len(results) > self.max_results_per_submission:
            return InvalidRequestError(
                f"at most {self.max_results_per_submission} results per submission; got {len(results)}"
            )
        unstorable = problems(results, "results")
        if unstorable:
            first = unstorable[0]
            return InvalidRequestError(f"{first['field']} {first['message']}", errors=unstorable)
        for result in results:  # no span id: no key, as before spans existed
            if result.get("spanId") is None:
                result.pop("spanId", None)
        for result in results:  # usage is recorded as read_usage reads it; none: no key, as before usage existed
            problem = _usage_read(result, f"result of item {result['itemId']}")
            for score in result.get("scores") or []:  # a scorer's usage (an LLM judge's), the same way
                problem = problem or _usage_read(score, f"score {score.get('scorerId')!r} of item {result['itemId']}")
            if problem is not None:
                return problem
        bad = [r["repetition"] for r in results if r["repetition"] >= repetitions]
        if bad:
            return InvalidRequestError(
                f"repetition {bad[0]} is out of range: the run has {repetitions} repetition(s)"
            )
        unknown = sorted({r["itemId"] for r in results if UUID(r["itemId"]) not in known})
        if unknown:
            return InvalidRequestError(
                f"{len(unknown)} item id(s) are not items of dataset {dataset_id} at version {version}: "
                f"{', '.join(unknown[:10])}",
                unknown_item_ids=unknown[:100],
            )
        if declared:  # a run that declared its scorers takes scores for those only (typos show at once)
            undeclared = sorted({s["scorerId"] for r in results for s in r.get("scores") or []} - set(declared))
            if undeclared:
                return InvalidRequestError(
                    f"scorer id(s) {', '.join(repr(u) for u in undeclared[:10])} are not declared on this run; "
                    f"it declared: {', '.join(repr(d) for d in declared)}",
                    undeclared_scorer_ids=undeclared[:100],
                )
        return None

    def finalize_run(self, run_id: UUID, *, actor: str) -> RunView:
        run = self.runs.get_run(run_id)
        if not run.caller_driven:
            raise RunNotCallerDrivenError(f"run {run_id} has a target; it finishes by itself")
        written = self.runs.finalize_run(run_id, actor=actor)
        self.read_your_writes(written)
        return self.get_run(run_id)


def _checked_scorer_name(name: str) -> str:
    """A declared scorer name: what a submitted score's `scorerId` may be (1 to 200
    characters), printable, without surrounding spaces."""
    if not 1 <= len(name) <= 200 or name != name.strip() or not name.isprintable():
        raise InvalidRequestError(
            f"scorer name {name[:50]!r} is not a valid name: 1 to 200 printable characters, "
            "without leading or trailing spaces"
        )
    return name


def _usage_read(holder: dict[str, Any], what: str) -> InvalidRequestError | None:
    """Replace `holder`'s usage with what read_usage reads of it (no key when there is
    none); the problem when it cannot be read."""
    try:
        usage = read_usage(holder.pop("usage", None))
    except ValueError as invalid:
        return InvalidRequestError(f"{what}: {invalid}")
    if usage is not None:
        holder["usage"] = usage
    return None
