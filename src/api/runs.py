"""Routes for runs: create and list per dataset; read, results, cancel, progress stream,
and caller-driven submission and finalize per run; the catalog of targets and scorers."""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from evalledger.api import models
from evalledger.api.datasets import PROBLEMS, Actor, LedgerDep, Reason
from evalledger.api.encoding import dumps
from evalledger.api.paging import Page, PerPage10, PerPage50, paged
from evalledger.api.routing import Route
from evalledger.api.security import PrincipalDep, declare
from evalledger.api.wire import answer, encode
from evalledger.analysis.comparison import CompareOptions, Threshold
from evalledger.domain.runs import FINISHED, RunSettings, described_metadata
from evalledger.execution.scorers import describe_builtin_scorers
from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.targets import describe_builtin_targets
from evalledger.service_layer.runs import MultiComparison


# One server-sent event of a run's stream (OpenAPI 3.2's `itemSchema` for event streams).
RUN_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["progress", "finished"]},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/Run"}},
    },
}


router = APIRouter(tags=["runs"], responses=PROBLEMS, route_class=Route)


@router.get("/api/datasets/runs/{run_id:uuid}", response_model=models.Run, summary="A run: status, counts, progress")
def get_run(run_id: UUID, ledger: LedgerDep) -> Response:
    """A run's status, counts, progress and, once finished, per-scorer score summary."""
    return answer(models.Run, ledger.run_service.get_run(run_id))


@router.get("/api/datasets/runs/{run_id:uuid}/results", response_model=models.RunResultList,
            summary="A run's results in dataset order, with each item's input and expected output")
def list_results(
    run_id: UUID,
    ledger: LedgerDep,
    page: Page = 0,
    per_page: PerPage50 = 50,
    status: Annotated[str | None, Query(pattern="^(succeeded|failed)$")] = None,
) -> Response:
    """The run's results in dataset order, each with the item's input and expected output, the output,
    latency, attempts and scores."""
    rows, total = ledger.run_queries.list_results(run_id, page, per_page, status)
    return answer(models.RunResultList, results=rows, pagination=paged(total, page, per_page))


@router.post("/api/datasets/runs/{run_id:uuid}/cancel", response_model=models.Run,
             summary="Cancel: stop new work now, keep what finished")
def cancel_run(run_id: UUID, ledger: LedgerDep, actor: Actor, reason: Reason = None) -> Response:
    """Stops starting new work at once; results already recorded stay. Cancelling a finished run is refused
    (409)."""
    return answer(models.Run, ledger.run_use_cases.cancel_run(run_id, actor=actor, reason=reason))


@router.get("/api/datasets/runs/{run_id:uuid}/stream", summary="Server-sent events: the run's progress until it ends",
            response_class=StreamingResponse,
            responses={200: {"description": "`progress` events, then one `finished` event; each `data` is the run",
                             "content": {"text/event-stream": {"itemSchema": RUN_EVENT}}}})
async def stream_run(run_id: UUID, request: Request) -> StreamingResponse:
    """Server-sent events: a `progress` event with the run about twice a second, then one `finished` event."""
    service = request.app.state.ledger.run_service
    first = await asyncio.to_thread(service.get_run, run_id)  # 404 before the stream starts

    async def events() -> AsyncIterator[bytes]:
        run = first
        while True:
            kind = "finished" if run.status in FINISHED else "progress"
            yield b"event: " + kind.encode() + b"\ndata: " + dumps(encode(models.Run, run)) + b"\n\n"
            if kind == "finished" or await request.is_disconnected():
                return
            await asyncio.sleep(0.5)
            run = await asyncio.to_thread(service.get_run, run_id)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/api/datasets/runs/{run_id:uuid}/results", response_model=models.ResultsAccepted,
             summary="Caller-driven runs: submit results (upsert per item and repetition)")
async def submit_results(run_id: UUID, body: models.ResultsSubmission, ledger: LedgerDep) -> Response:
    """For caller-driven runs: results for items (and repetitions) of the run, each with optional scores; a
    result submitted again replaces the earlier one."""
    results = [r.model_dump(by_alias=True, mode="json") for r in body.results]
    for result in results:
        result["attempts"] = result.pop("attempt")
    return answer(models.ResultsAccepted, await ledger.run_service.submit_results_grouped(run_id, results))


@router.post("/api/datasets/runs/{run_id:uuid}/finalize", response_model=models.Run,
             summary="Caller-driven runs: finish, counting succeeded / failed / skipped")
def finalize_run(run_id: UUID, ledger: LedgerDep, actor: Actor) -> Response:
    """For caller-driven runs: ends the run, counting succeeded, failed and skipped (never submitted) items."""
    return answer(models.Run, ledger.run_service.finalize_run(run_id, actor=actor))


@router.get("/api/datasets/{dataset_id:uuid}/runs", response_model=models.RunList, summary="A dataset's runs, newest first")
def list_runs(
    dataset_id: UUID,
    ledger: LedgerDep,
    page: Page = 0,
    per_page: PerPage10 = 10,
    tags: Annotated[list[str] | None, Query(alias="tag", description="Only runs with this tag in metadata.tags "
                                            "(or metadata.tag); repeat for runs with all of them")] = None,
    model: Annotated[str | None, Query(max_length=200, description="Only runs of this model (metadata.model, "
                                       "or an openai target's model)")] = None,
    code_version: Annotated[str | None, Query(alias="codeVersion", min_length=1, max_length=200,
                                              description="Only runs of this code version (or a prefix of "
                                              "it: a short commit)")] = None,
    prompt_version: Annotated[str | None, Query(alias="promptVersion", max_length=200,
                                                description="Only runs with this prompt version")] = None,
    status: Annotated[str | None, Query(pattern="^(pending|running|completed|failed|cancelled)$")] = None,
) -> Response:
    """The dataset's runs, newest first; filtered by tag, model, code version, prompt version or status."""
    ledger.dataset_queries.dataset_row(dataset_id)
    if tags and (len(tags) > 20 or any(len(t) > 100 for t in tags)):
        raise InvalidRequestError("at most 20 tags of at most 100 characters each")
    rows, total = ledger.run_queries.list_runs(dataset_id, page, per_page, tags=tags or None, model=model,
                                               code_version=code_version, prompt_version=prompt_version,
                                               status=status)
    return answer(models.RunList, runs=rows, pagination=paged(total, page, per_page))


@router.post("/api/datasets/{dataset_id:uuid}/runs", status_code=202, response_model=models.Run,
             summary="Start a run on a pinned dataset version (without a target: caller-driven)")
def create_run(dataset_id: UUID, body: models.RunCreate, ledger: LedgerDep, actor: Actor,
               reason: Reason = None) -> Response:
    """Starts a run over a pinned dataset version: each item goes to the target and its output to the
    scorers. Without a target the run is caller-driven: you submit the results. `model`, `prompt`,
    `codeVersion` and `tags` make it reproducible and findable (kept in its metadata). With your own `runId`,
    creating the same run again answers it unchanged. `tag` pins the version a dataset tag names (and
    records the tag as `metadata.datasetTag`)."""
    metadata = described_metadata(body.metadata, model=body.model, code_version=body.code_version, tags=body.tags,
                                  prompt=body.prompt.model_dump() if body.prompt is not None else None)
    run = ledger.run_use_cases.create_run(
        dataset_id,
        target=body.target,
        scorers=body.scorers,
        settings=RunSettings(
            max_concurrency=body.max_concurrency,
            item_timeout_ms=body.item_timeout_ms,
            max_retries=body.max_retries,
            repetitions=body.repetitions,
        ),
        version=body.version,
        tag=body.tag,
        name=body.name,
        metadata=metadata,
        run_id=body.run_id,
        actor=actor,
        reason=reason,
    )
    return answer(models.Run, run, 202)


@router.get("/api/datasets/runs/{run_id:uuid}/analytics", response_model=models.RunAnalytics,
            summary="Success rate, per-scorer statistics, latency percentiles; per metadata group")
def run_analytics(
    run_id: UUID,
    ledger: LedgerDep,
    threshold: Annotated[float, Query(ge=0.0, le=1.0, description="Pass threshold")] = 0.5,
    group_by: Annotated[str | None, Query(alias="groupBy", pattern=r"^metadata\.[\w.-]+$",
                                          description="e.g. metadata.split")] = None,
    item_limit: Annotated[int, Query(alias="itemLimit", ge=1, le=10_000)] = 100,
) -> Response:
    """Success rate, latency percentiles and per-scorer statistics of a run; with `groupBy` the same per
    value of an item metadata field."""
    path = group_by.split(".")[1:] if group_by else None
    return answer(models.RunAnalytics,
                  ledger.run_queries.analytics(run_id, threshold=threshold, group_by=path, item_limit=item_limit))


@router.post("/api/datasets/compare", response_model=models.Comparison | models.MultiComparison,
             summary="Compare a candidate run (or several) with a baseline: per scorer, with significance",
             openapi_extra=declare("reader"))
def compare_runs(body: models.CompareRequest, ledger: LedgerDep, principal: PrincipalDep) -> Response:
    """Compares a candidate run (`runIdB`) or several (`candidates`) with a baseline run item by item, per
    scorer, with a significance test, and says whether anything regressed. The runs must be of one
    project."""
    ledger.scope.runs_of_one_project(principal, [body.run_id_a, body.run_id_b, *(body.candidates or [])])
    options = CompareOptions(
        thresholds={k: Threshold(v.value, v.direction) for k, v in body.thresholds.items()},
        alpha=body.alpha,
        allow_partial=body.allow_partial,
        items_page=body.items_page,
        items_per_page=body.items_per_page,
        item_status=body.item_status,
    )
    compared = ledger.run_use_cases.compare(body.run_id_a, candidate=body.run_id_b, candidates=body.candidates,
                                            options=options)
    return answer(models.MultiComparison if isinstance(compared, MultiComparison) else models.Comparison, compared)


@router.get("/api/targets", response_model=models.Catalog, summary="Target types and registered targets")
def list_targets(ledger: LedgerDep) -> Response:
    """The built-in target types and the targets registered with the service."""
    return answer(models.Catalog, builtin=describe_builtin_targets(), registered=ledger.registry.describe_targets())


@router.get("/api/scorers", response_model=models.Catalog, summary="Built-in and registered scorers")
def list_scorers(ledger: LedgerDep) -> Response:
    """The built-in scorers (with their options) and the scorers registered with the service."""
    return answer(models.Catalog, builtin=describe_builtin_scorers(), registered=ledger.registry.describe_scorers())

