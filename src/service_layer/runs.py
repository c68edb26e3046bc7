"""Run use cases the entry points share: start, cancel, compare a baseline with one
candidate or several (the rule for several: each is compared with the baseline, and the
answer regresses when any of them does), review a result, and re-score a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from evalledger.analysis.comparison import CompareOptions, Comparison, RunComparer
from evalledger.domain.errors import InvalidRequestError
from evalledger.domain.runs import FINISHED, RunNotFinishedError, RunSettings, declared_scorer_ids
from evalledger.domain.storable import ensure_storable
from evalledger.execution.service import RunService
from evalledger.projections.run_queries import ResultDetail, RunView


def pin_tag(queries: Any, dataset_id: UUID, version: int | None, tag: str | None,
            metadata: dict[str, Any] | None) -> tuple[int | None, dict[str, Any]]:
    """A run started by a dataset tag: the version the tag names now (pinned: moving the tag
    later does not move the run), and the run's metadata with the tag (`datasetTag`)."""
    metadata = dict(metadata or {})
    if tag is None:
        return version, metadata
    if version is not None:
        raise InvalidRequestError("give a dataset version or a tag, not both")
    return queries.resolve_version(dataset_id, None, None, tag), {**metadata, "datasetTag": tag}


@dataclass(slots=True)
class MultiComparison:
    """Several candidates, each compared with the baseline; one regression is a regression."""

    run_id_a: UUID
    has_regression: bool
    comparisons: list[Comparison]


@dataclass
class RunUseCases:
    run_service: RunService
    comparer: RunComparer

    def create_run(self, dataset_id: UUID, *, target: dict[str, Any] | None, scorers: list[Any],
                   settings: RunSettings, version: int | None = None, name: str = "",
                   metadata: dict[str, Any] | None = None, run_id: UUID | None = None, actor: str = "anonymous",
                   reason: str | None = None, tag: str | None = None) -> RunView:
        """Pin the version (or the one `tag` names), check the definition, record the run and
        launch it (see RunService)."""
        version, metadata = pin_tag(self.run_service.dataset_queries, dataset_id, version, tag, metadata)
        return self.run_service.create_run(dataset_id, target=target, scorers=scorers, settings=settings,
                                           version=version, name=name, metadata=metadata, run_id=run_id,
                                           actor=actor, reason=reason)

    def cancel_run(self, run_id: UUID, *, actor: str, reason: str | None = None) -> RunView:
        return self.run_service.cancel_run(run_id, actor=actor, reason=reason)

    def compare(self, baseline: UUID, *, candidate: UUID | None = None, candidates: list[UUID] | None = None,
                options: CompareOptions | None = None) -> Comparison | MultiComparison:
        """One candidate: its comparison. Several: each one's, and whether any regressed."""
        if (candidate is None) == (candidates is None):
            raise InvalidRequestError("give either runIdB (one candidate) or candidates (several)")
        options = options or CompareOptions()
        if candidate is not None:
            return self.comparer.compare(baseline, candidate, options)
        comparisons = [self.comparer.compare(baseline, b, options) for b in candidates or []]
        return MultiComparison(baseline, any(c.has_regression for c in comparisons), comparisons)

    def review_result(self, run_id: UUID, item_id: UUID, *, repetition: int = 0, verdict: str | None = None,
                      scores: dict[str, float | None] | None = None, criteria: dict[str, float | None] | None = None,
                      comment: str | None = None, flagged: bool | None = None, actor: str = "anonymous",
                      reason: str | None = None) -> ResultDetail:
        """Record a review of one result (see domain/reviews.py) and answer the result as it
        reads once the review is in: its scores, reviews, score history and output diff.

        A score must be for a scorer of the run (declared, or one that scored this result);
        a criterion must not be named like one, so the two never mix in the analytics."""
        scores, criteria = scores or {}, criteria or {}
        queries = self.run_service.run_queries
        row = queries.result_row(run_id, item_id, repetition)  # 404 for an unknown run or result
        known = set(declared_scorer_ids(queries.run_row(run_id)["scorers"]))
        known |= {s.get("scorerId") for s in row["scores"]}
        unknown = sorted(set(scores) - known)
        if unknown:
            raise InvalidRequestError(
                f"scorer id(s) {', '.join(map(repr, unknown[:10]))} are not scorers of this result; it has: "
                f"{', '.join(map(repr, sorted(known))) or 'none'} (a score of your own goes in `criteria`)",
                unknown_scorer_ids=unknown[:100])
        clashing = sorted(set(criteria) & known)
        if clashing:
            raise InvalidRequestError(
                f"criteria {', '.join(map(repr, clashing[:10]))} are named like scorers of this result; "
                "give their scores in `scores`")
        ensure_storable({"scores": scores, "criteria": criteria, "comment": comment})
        written = self.run_service.runs.review_result(
            run_id, item_id=str(item_id), repetition=repetition, verdict=verdict, scores=scores, criteria=criteria,
            comment=comment, flagged=flagged, actor=actor, reason=reason)
        self.run_service.read_your_writes(written)
        return queries.get_result(run_id, item_id, repetition)

    def rescore(self, run_id: UUID, *, scorers: list[Any], name: str = "", max_concurrency: int | None = None,
                item_timeout_ms: int | None = None, max_retries: int | None = None, actor: str = "anonymous",
                reason: str | None = None) -> RunView:
        """Apply scorers to a finished run's stored outputs: a derived run over the same dataset
        version and repetitions whose target reads the source run's outputs (nothing is
        called), executed, resumed and counted as any run, and recording its source in
        `metadata.rescoredFrom`. Comparing the source with it shows the scorers' drift (give
        a new scorer the old one's `id`)."""
        source = self.run_service.run_queries.run_row(run_id)
        if source["status"] not in FINISHED:
            raise RunNotFinishedError(f"run {run_id} is {source['status']}; re-score it once it has finished")
        if not scorers:
            raise InvalidRequestError("give at least one scorer to re-score with")
        old = RunSettings.from_wire(source["settings"])
        settings = RunSettings(
            max_concurrency=max_concurrency or old.max_concurrency,
            item_timeout_ms=item_timeout_ms or old.item_timeout_ms,
            max_retries=old.max_retries if max_retries is None else max_retries,
            repetitions=old.repetitions,
        )
        return self.run_service.create_run(
            source["dataset_id"], target={"type": "stored-output", "runId": str(run_id)}, scorers=scorers,
            settings=settings, version=source["dataset_version"],
            name=name or f"{source['name'] or str(run_id)[:8]} re-scored", metadata={"rescoredFrom": str(run_id)},
            actor=actor, reason=reason)
