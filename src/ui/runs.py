"""Pages for runs: start one on a dataset, follow it live, read its results and analytics,
cancel it; the run history of a dataset and of the whole service."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from evalledger.analysis.output_diff import output_diff
from evalledger.api.models import RunCreate
from evalledger.bootstrap import Ledger
from evalledger.domain.errors import DomainError, NotFoundError, VersionNotFoundError
from evalledger.domain.runs import FINISHED, RunSettings
from evalledger.execution.scorers import describe_builtin_scorers
from evalledger.api.security import declare
from evalledger.ui import charts
from evalledger.ui.app import PageRoute, error_page
from evalledger.ui.forms import FormError, actor_of, json_field, text_field
from evalledger.ui.templating import templates
from evalledger.ui.session import principal_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RESULTS_PER_PAGE = 50
RUNS_PER_PAGE = 25
SORTS = {"dataset": "Dataset order", "-latency": "Slowest first", "latency": "Fastest first",
         "score": "Lowest score first", "-score": "Highest score first"}
RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
Page = Annotated[int, Query(ge=0, le=1_000_000)]


def ledger_of(request: Request) -> Ledger:
    return request.app.state.ledger


# -- history ---------------------------------------------------------------------------------


@router.get("/runs", response_class=HTMLResponse)
def recent_runs(request: Request, page: Page = 0,
                status: Annotated[str | None, Query(pattern="^(pending|running|completed|failed|cancelled)?$")] = None,
                ) -> HTMLResponse:
    return _history(request, None, page, status or None)


@router.get("/datasets/{dataset_id}/runs", response_class=HTMLResponse)
def dataset_runs(request: Request, dataset_id: UUID, page: Page = 0,
                 status: Annotated[str | None, Query(pattern="^(pending|running|completed|failed|cancelled)?$")] = None,
                 ) -> HTMLResponse:
    return _history(request, dataset_id, page, status or None)


def _history(request: Request, dataset_id: UUID | None, page: int, status: str | None) -> HTMLResponse:
    ledger = ledger_of(request)
    dataset = ledger.dataset_queries.get_dataset(dataset_id) if dataset_id is not None else None
    runs, total = ledger.run_queries.recent_runs(page, RUNS_PER_PAGE, dataset_id, status,
                                                 principal_of(request).project_id)
    return templates.TemplateResponse(request, "runs/history.html", {
        "dataset": dataset, "runs": runs, "total": total, "page": page, "per_page": RUNS_PER_PAGE,
        "has_more": (page + 1) * RUNS_PER_PAGE < total, "status": status, "statuses": RUN_STATUSES, "nav": "runs",
        "live": any(r.status not in FINISHED for r in runs),
    })


# -- start a run -----------------------------------------------------------------------------


@router.get("/datasets/{dataset_id}/runs/new", response_class=HTMLResponse, openapi_extra=declare("writer"))
def new_run(request: Request, dataset_id: UUID) -> HTMLResponse:
    return _run_form(request, dataset_id, {}, {})


def _run_form(request: Request, dataset_id: UUID, form: dict[str, Any], errors: dict[str, str],
              status_code: int = 200) -> HTMLResponse:
    ledger = ledger_of(request)
    dataset = ledger.dataset_queries.get_dataset(dataset_id)
    registered_targets = ledger.registry.describe_targets()
    return templates.TemplateResponse(request, "runs/new.html", {
        "dataset": dataset, "form": form, "errors": errors, "nav": "runs",
        "registered_targets": registered_targets,
        "builtin_scorers": describe_builtin_scorers(),
        "registered_scorers": ledger.registry.describe_scorers(),
        "defaults": RunSettings(),
    }, status_code=status_code)


@router.post("/datasets/{dataset_id}/runs")
async def create_run(request: Request, dataset_id: UUID) -> Response:
    form = await request.form()
    values: dict[str, Any] = {key: str(value) for key, value in form.multi_items() if key != "scorer"}
    values["scorer"] = [str(v) for v in form.getlist("scorer")]
    ledger = ledger_of(request)
    try:
        wire = _run_request(form, ledger)
        body = _validated(wire)
        run = await asyncio.to_thread(
            ledger.run_use_cases.create_run, dataset_id,
            target=body.target, scorers=body.scorers,
            settings=RunSettings(max_concurrency=body.max_concurrency, item_timeout_ms=body.item_timeout_ms,
                                 max_retries=body.max_retries, repetitions=body.repetitions),
            version=body.version, name=body.name, metadata=body.metadata, actor=actor_of(request),
            reason=text_field(form, "reason", label="Reason", max_length=2000) or None,
        )
    except FormError as error:
        return _run_form(request, dataset_id, values, {error.field: error.message}, 422)
    except VersionNotFoundError as error:
        return _run_form(request, dataset_id, values, {"version": error.detail}, 422)
    except DomainError as error:
        if isinstance(error, NotFoundError):
            raise
        return _run_form(request, dataset_id, values, {_field_of(error.detail): error.detail}, 422)
    return RedirectResponse(f"/runs/{run.id}", status_code=303)


def _field_of(detail: str) -> str:
    """Where on the form a refusal of the run's definition belongs."""
    if "scorer" in detail:
        return "scorers"
    if "target" in detail or "allowlist" in detail:
        return "target"
    if "version" in detail:
        return "version"
    return "form"


def _integer(form: Any, name: str, label: str) -> int | None:
    text = str(form.get(name) or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise FormError(name, f"{label} must be a whole number, not {text!r}") from None


def _run_request(form: Any, ledger: Ledger) -> dict[str, Any]:
    """The run request (as the API takes it) the form describes."""
    wire: dict[str, Any] = {"target": _target(form), "scorers": _scorers(form, ledger)}
    for name, key, label in (("version", "version", "Version"), ("maxConcurrency", "maxConcurrency", "Concurrency"),
                             ("itemTimeoutMs", "itemTimeoutMs", "Timeout"), ("maxRetries", "maxRetries", "Retries"),
                             ("repetitions", "repetitions", "Repetitions")):
        value = _integer(form, name, label)
        if value is not None:
            wire[key] = value
    wire["name"] = text_field(form, "name", label="Name", max_length=200)
    metadata = json_field(form, "metadata", label="Metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise FormError("metadata", "Metadata must be a JSON object, e.g. {\"model\": \"gpt-4o\"}")
    wire["metadata"] = metadata or {}
    return wire


def _target(form: Any) -> dict[str, Any] | None:
    kind = str(form.get("targetType") or "registered")
    if kind == "none":
        return None
    if kind == "registered":
        name = text_field(form, "registeredName", label="Registered target")
        if not name:
            raise FormError("target", "Pick a registered target (start the service with --app your.module to "
                                      "register some), or choose another kind of target")
        return {"type": "registered", "name": name}
    if kind == "http":
        target: dict[str, Any] = {"type": "http", "url": text_field(form, "httpUrl", label="URL", required=True,
                                                                     max_length=2000)}
        headers = json_field(form, "httpHeaders", label="Headers")
        if headers is not None:
            if not isinstance(headers, dict):
                raise FormError("httpHeaders", "Headers must be a JSON object of names to values")
            target["headers"] = headers
        if form.get("httpEnvelope"):
            target["envelope"] = True
        output_field = text_field(form, "httpOutputField", label="Output field")
        if output_field:
            target["outputField"] = output_field
        return target
    if kind == "openai":
        target = {"type": "openai",
                  "baseUrl": text_field(form, "openaiBaseUrl", label="Base URL", required=True, max_length=2000),
                  "model": text_field(form, "openaiModel", label="Model", required=True),
                  "promptTemplate": text_field(form, "openaiPrompt", label="Prompt template", required=True,
                                               max_length=100_000)}
        for name, key in (("openaiSystem", "system"), ("openaiApiKeyEnv", "apiKeyEnv")):
            value = text_field(form, name, label=key, max_length=100_000)
            if value:
                target[key] = value
        temperature = str(form.get("openaiTemperature") or "").strip()
        if temperature:
            try:
                target["temperature"] = float(temperature)
            except ValueError:
                raise FormError("openaiTemperature", f"Temperature must be a number, not {temperature!r}") from None
        if form.get("openaiJson"):
            target["responseFormat"] = "json"
        return target
    raise FormError("target", f"Unknown kind of target {kind!r}")


def _scorers(form: Any, ledger: Ledger) -> list[Any]:
    """Each checked scorer with the options typed for it (empty fields keep the defaults)."""
    declared = {s["name"]: {o["name"]: o for o in s["options"]} for s in describe_builtin_scorers()}
    specs: list[Any] = []
    for name in form.getlist("scorer"):
        name = str(name)
        spec: dict[str, Any] = {"name": name}
        scorer_id = text_field(form, f"scorerId.{name}", label=f"Id of {name}")
        if scorer_id:
            spec["id"] = scorer_id
        options: dict[str, Any] = {}
        for option_name, option in declared.get(name, {}).items():
            field = f"opt.{name}.{option_name}"
            text = str(form.get(field) or "").strip()
            if not text:
                continue
            if option["type"] == "boolean":
                options[option_name] = text == "true"
            elif option["type"] == "number":
                try:
                    options[option_name] = float(text)
                except ValueError:
                    raise FormError(field, f"{name}: {option_name} must be a number, not {text!r}") from None
            elif option["type"] == "object":
                options[option_name] = json_field(form, field, label=f"{name}: {option_name}")
            else:
                options[option_name] = text
        if options:
            spec["options"] = options
        specs.append(spec)
    return specs


def _validated(wire: dict[str, Any]) -> RunCreate:
    """The request checked by the API's own model (the same bounds on every field)."""
    try:
        return RunCreate.model_validate(wire)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "form"
        labels = {"maxConcurrency": "Concurrency", "itemTimeoutMs": "Timeout", "maxRetries": "Retries",
                  "repetitions": "Repetitions", "version": "Version", "name": "Name", "metadata": "Metadata"}
        raise FormError(field, f"{labels.get(field, field)}: {first['msg']}") from None


# -- one run ---------------------------------------------------------------------------------


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request,
    run_id: UUID,
    page: Page = 0,
    status: Annotated[str | None, Query(pattern="^(succeeded|failed)?$")] = None,
    scorer: Annotated[str | None, Query(max_length=200)] = None,
    min_text: Annotated[str, Query(alias="minScore", max_length=50)] = "",
    max_text: Annotated[str, Query(alias="maxScore", max_length=50)] = "",
    sort: Annotated[str, Query(pattern="^(dataset|latency|-latency|score|-score)$")] = "dataset",
    flagged: Annotated[str, Query(pattern="^(true)?$")] = "",
) -> HTMLResponse:
    ledger = ledger_of(request)
    filter_error = None
    try:
        min_score = _score_bound(min_text, "Score from")
        max_score = _score_bound(max_text, "Score to")
    except FormError as error:
        filter_error, min_score, max_score = error.message, None, None
    # A finished run is read from its row alone: the service's answer adds a score summary,
    # an aggregate over every result that a big run's page should not wait for.
    run = ledger.run_queries.get_run(run_id)
    if run.status not in FINISHED:
        run = ledger.run_service.get_run(run_id)
    scorer_ids = ledger.run_queries.result_scorer_ids(run_id)
    if not scorer_ids and run.caller_driven:  # the caller named its scorers in its results
        scorer_ids = list(ledger.run_queries.score_summary(run_id))
    if sort in ("score", "-score") and not scorer:
        scorer = scorer_ids[0] if scorer_ids else None
        if scorer is None:
            sort = "dataset"
    results, total = ledger.run_queries.filtered_results(
        run_id, page, RESULTS_PER_PAGE, status=status or None, scorer=scorer or None,
        min_score=min_score, max_score=max_score, sort=sort, flagged=True if flagged else None,
    )
    diffs = [output_diff(r.expected_output, r.output, failed=r.status == "failed") for r in results]
    dataset = _dataset_or_none(ledger, run.dataset_id)
    return templates.TemplateResponse(request, "runs/run.html", {
        "run": run, "dataset": dataset, "results": results, "diffs": diffs, "total": total, "page": page,
        "per_page": RESULTS_PER_PAGE, "has_more": (page + 1) * RESULTS_PER_PAGE < total,
        "filters": {"status": status or "", "scorer": scorer or "", "minScore": min_score, "maxScore": max_score,
                    "sort": sort, "flagged": bool(flagged)},
        "filtered": bool(status or scorer or min_score is not None or max_score is not None or flagged),
        "filter_error": filter_error, "scorer_ids": scorer_ids, "sorts": SORTS, "finished": run.status in FINISHED, "nav": "runs",
        "ms": charts.milliseconds,
    })


@router.post("/runs/{run_id}/results/{item_id}/review", response_class=HTMLResponse)
async def review_result(request: Request, run_id: UUID, item_id: UUID) -> HTMLResponse:
    """A review from the result panel (its buttons and keys): the verdict or flag of the
    button pressed, and the comment when it changed. Answers the result's rows again."""
    form = await request.form()
    ledger = ledger_of(request)
    try:
        repetition = _integer(form, "repetition", "Repetition") or 0
        index = _integer(form, "index", "Row") or 1
        before = await asyncio.to_thread(ledger.run_queries.get_result, run_id, item_id, repetition)
        comment = text_field(form, "comment", label="Comment", max_length=10_000)
        old_comment = (before.review or {}).get("comment") or ""
        verdict = str(form.get("verdict") or "") or None
        flagged = {"true": True, "false": False}.get(str(form.get("flagged") or ""))
    except FormError as error:
        return error_page(request, 422, error.message)
    error_text, status_code = None, 200
    try:
        await asyncio.to_thread(
            ledger.run_use_cases.review_result, run_id, item_id, repetition=repetition, verdict=verdict,
            comment=comment if comment != old_comment else None, flagged=flagged, actor=actor_of(request))
    except DomainError as error:
        if isinstance(error, NotFoundError):
            raise
        error_text, status_code = error.detail, 422
    result = await asyncio.to_thread(ledger.run_queries.get_result, run_id, item_id, repetition)
    run = ledger.run_queries.get_run(run_id)
    return templates.TemplateResponse(request, "runs/_result.html", {
        "r": result, "index": index, "run": run, "dataset": _dataset_or_none(ledger, run.dataset_id),
        "finished": run.status in FINISHED, "current": True, "review_error": error_text, "ms": charts.milliseconds,
    }, status_code=status_code)


def _dataset_or_none(ledger: Ledger, dataset_id: Any) -> Any:
    try:
        return ledger.dataset_queries.get_dataset(UUID(str(dataset_id)))
    except DomainError:  # deleted since: the run stays readable
        return None


@router.get("/runs/{run_id}/progress", response_class=HTMLResponse)
def run_progress(request: Request, run_id: UUID,
                 seen: Annotated[str, Query(pattern="^(pending|running|completed|failed|cancelled)$")] = "running",
                 ) -> HTMLResponse:
    """The live part of a run page, polled while the run goes on; once it has ended, the
    answer stops the polling and tells the page to reload its results and analytics."""
    run = ledger_of(request).run_service.get_run(run_id)
    response = templates.TemplateResponse(request, "runs/_progress.html", {
        "run": run, "finished": run.status in FINISHED})
    if run.status in FINISHED and seen not in FINISHED:
        response.headers["HX-Trigger"] = "run-finished"
    return response


@router.get("/runs/{run_id}/analytics", response_class=HTMLResponse)
def run_analytics(
    request: Request,
    run_id: UUID,
    threshold: Annotated[float, Query(ge=0.0, le=1.0)] = 0.5,
    group_by: Annotated[str | None, Query(alias="groupBy", max_length=200)] = None,
) -> HTMLResponse:
    """Per-scorer statistics and charts, latency percentiles and histogram, and a breakdown
    by a metadata field; loaded after the page, so a big run's page answers at once."""
    ledger = ledger_of(request)
    group_path = None
    error = None
    group_by = (group_by or "").strip().removeprefix("metadata.") or None
    if group_by is not None:
        parts = group_by.split(".")
        if not all(part and all(c.isalnum() or c in "_-" for c in part) for part in parts):
            error = f"“{group_by}” is not a metadata field path (letters, digits, _ and -, dot-separated)"
            group_by = None
        else:
            group_path = parts
    analytics = ledger.run_queries.analytics(run_id, threshold=threshold, group_by=group_path, item_limit=5)
    histograms = ledger.run_queries.score_histograms(run_id)
    latency = ledger.run_queries.latency_histogram(run_id)
    return templates.TemplateResponse(request, "runs/_analytics.html", {
        "run_id": run_id, "analytics": analytics, "threshold": threshold, "group_by": group_by or "",
        "group_error": error,
        "score_charts": {scorer: charts.score_histogram(counts, scorer) for scorer, counts in histograms.items()},
        "latency_chart": charts.latency_histogram(latency.low, latency.high, latency.counts),
        "ms": charts.milliseconds,
    }, status_code=422 if error else 200)


def _score_bound(text: str, label: str) -> float | None:
    """A score filter's bound as typed in the URL (empty: no bound)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FormError(label, f"{label} must be a number between 0 and 1, not {text!r}") from None
    if not 0 <= value <= 1:
        raise FormError(label, f"{label} must be between 0 and 1, not {text}")
    return value


@router.post("/runs/{run_id}/cancel")
async def cancel_run(request: Request, run_id: UUID) -> Response:
    form = await request.form()
    try:
        reason = text_field(form, "reason", label="Reason", max_length=2000) or None
    except FormError as error:
        return error_page(request, 422, error.message)
    await asyncio.to_thread(ledger_of(request).run_use_cases.cancel_run, run_id, actor=actor_of(request),
                            reason=reason)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)
