"""Routes for reviewing a run's results (issue 18): one result in detail (its reviews, the
history of its scores, how its output differs from the expected output), a review of it,
the review queue of flagged results, and re-scoring a run's stored outputs."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.responses import Response

from evalledger.api import models
from evalledger.api.datasets import PROBLEMS, Actor, LedgerDep, Reason
from evalledger.api.paging import Page, PerPage50, paged
from evalledger.api.routing import Route
from evalledger.api.wire import answer

Repetition = Annotated[int, Query(ge=0, le=1_000_000, description="Which repetition of the item (default 0)")]


def get_result(run_id: UUID, item_id: UUID, ledger: LedgerDep, repetition: Repetition = 0) -> Response:
    """A result with its item, the scores that count (a reviewer's override replaces the automatic score), every
    review of it, the history of its scores with who gave each, and how the output differs from the expected
    output (`outputDiff`: a word diff of two strings, field-level changes of JSON)."""
    return answer(models.ResultDetail, ledger.run_queries.get_result(run_id, item_id, repetition))


def review_result(run_id: UUID, item_id: UUID, body: models.ReviewCreate, ledger: LedgerDep,
                  actor: Actor, reason: Reason = None) -> Response:
    """Records a review of a finished run's result: a verdict, scores overriding the automatic ones, scores on
    criteria of your own, a comment, a follow-up flag. Only what is given changes; later reviews supersede earlier
    ones and every review stays in the result's history. Analytics and comparisons use the reviewed scores."""
    return answer(models.ResultDetail, ledger.run_use_cases.review_result(
        run_id, item_id, repetition=body.repetition, verdict=body.verdict, scores=body.scores,
        criteria=body.criteria, comment=body.comment, flagged=body.flagged, actor=actor, reason=reason))


def rescore_run(run_id: UUID, body: models.RescoreCreate, ledger: LedgerDep, actor: Actor,
                reason: Reason = None) -> Response:
    """Applies scorers to a finished run's stored outputs without calling its target: a derived run (same dataset
    version and repetitions, `metadata.rescoredFrom` names the source) that runs, shows progress and resumes after
    a crash as any run. Compare the source run with it to see how the scorers drifted."""
    return answer(models.Run, ledger.run_use_cases.rescore(
        run_id, scorers=body.scorers, name=body.name, max_concurrency=body.max_concurrency,
        item_timeout_ms=body.item_timeout_ms, max_retries=body.max_retries, actor=actor, reason=reason), 202)


router = APIRouter(tags=["reviews"], responses=PROBLEMS, route_class=Route)


def review_queue(run_id: UUID, ledger: LedgerDep, page: Page = 0, per_page: PerPage50 = 50) -> Response:
    """The run's results flagged for follow-up, in dataset order: what needs attention."""
    rows, total = ledger.run_queries.filtered_results(run_id, page, per_page, flagged=True)
    return answer(models.RunResultList, results=rows, pagination=paged(total, page, per_page))

router.add_api_route("/api/datasets/runs/{run_id:uuid}/results/{item_id:uuid}", get_result, methods=["GET"],
                     response_model=models.ResultDetail,
                     summary="One result: its scores, reviews, score history and output diff")
router.add_api_route("/api/datasets/runs/{run_id:uuid}/results/{item_id:uuid}/review", review_result,
                     methods=["POST"], response_model=models.ResultDetail,
                     summary="Review a result: verdict, score overrides, criteria, comment, flag")
router.add_api_route("/api/datasets/runs/{run_id:uuid}/review-queue", review_queue, methods=["GET"],
                     response_model=models.RunResultList, summary="A run's results flagged for follow-up")
router.add_api_route("/api/datasets/runs/{run_id:uuid}/rescore", rescore_run, methods=["POST"],
                     status_code=202, response_model=models.Run,
                     summary="Re-score a finished run's stored outputs in a derived run (no target call)")
