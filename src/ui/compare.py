"""The comparison page: a baseline run against one or more candidates, per scorer with
significance, thresholds editable in the URL, per-item deltas as a chart and a table."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from evalledger.analysis.comparison import STATUS_ORDER, CompareOptions, ComparisonItem, Threshold
from evalledger.bootstrap import Ledger
from evalledger.domain.errors import ConflictError, DomainError
from evalledger.projections.run_queries import RunView
from evalledger.ui import charts
from evalledger.ui.app import PageRoute, error_page
from evalledger.ui.templating import templates
from evalledger.ui.session import principal_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ITEMS_PER_PAGE = 50
DIRECTIONS = ("higher-is-better", "lower-is-better")
STATUS_LABELS = {"regressed": "Regressed", "improved": "Improved", "unchanged": "Unchanged",
                 "onlyInA": "Only in baseline", "onlyInB": "Only in candidate"}


def ledger_of(request: Request) -> Ledger:
    return request.app.state.ledger


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    baseline: UUID | None = None,
    candidates: Annotated[list[UUID], Query(alias="candidate", max_length=20)] = [],  # noqa: B006 - FastAPI copies
    runs: Annotated[list[UUID], Query(alias="run", max_length=21)] = [],  # noqa: B006
    alpha: Annotated[str, Query(max_length=20)] = "0.05",
    partial: Annotated[str, Query(max_length=5)] = "",
    focus: UUID | None = None,
    status: Annotated[str, Query(pattern="^(regressed|improved|unchanged|onlyInA|onlyInB)?$")] = "",
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    ledger = ledger_of(request)
    ledger.scope.runs_of_one_project(principal_of(request), [*runs, baseline, *candidates])
    if runs:
        return _from_selection(request, ledger, runs)
    if baseline is None or not candidates:
        return error_page(request, 422, "A comparison needs a baseline run and at least one candidate: check two "
                                        "or more runs in a run history and press Compare.")
    rows = {run_id: ledger.run_service.get_run(run_id) for run_id in [baseline, *candidates]}
    focus = focus if focus in candidates else candidates[0]
    errors: list[str] = []
    alpha_value = _alpha(alpha, errors)
    thresholds, typed = _thresholds(request, errors)
    options = CompareOptions(thresholds=thresholds, alpha=alpha_value, allow_partial=bool(partial),
                             items_page=page, items_per_page=ITEMS_PER_PAGE, item_status=status or None)
    context: dict[str, Any] = {
        "baseline": rows[baseline], "candidates": [rows[c] for c in candidates], "runs": rows, "focus": focus,
        "alpha": alpha if errors and alpha_value != _float(alpha) else alpha_value, "partial": bool(partial),
        "status": status, "page": page, "per_page": ITEMS_PER_PAGE, "errors": errors, "typed": typed,
        "directions": DIRECTIONS, "status_labels": STATUS_LABELS, "statuses": STATUS_ORDER, "nav": "runs",
        "ms": charts.milliseconds, "datasets": _dataset_names(ledger, rows.values()),
    }
    try:
        answer = ledger.run_use_cases.compare(baseline, candidates=list(candidates), options=options)
    except ConflictError as error:
        context.update(conflict=error.detail, comparisons=[], scorers=[])
        return templates.TemplateResponse(request, "runs/compare.html", context, status_code=409)
    comparisons = answer.comparisons
    focused = next(c for c in comparisons if c.run_id_b == focus)
    scorers = sorted({s for c in comparisons for s in c.scorers})
    context.update(
        comparisons=comparisons, focused=focused, scorers=scorers, has_regression=answer.has_regression,
        delta_charts=_delta_charts(ledger, baseline, focus, thresholds),
        inputs=_inputs(ledger, rows[baseline], rows[focus], focused.items),
        has_more=(page + 1) * ITEMS_PER_PAGE < focused.items_total, total=focused.items_total,
    )
    return templates.TemplateResponse(request, "runs/compare.html", context, status_code=422 if errors else 200)


def _from_selection(request: Request, ledger: Ledger, runs: list[UUID]) -> Response:
    """Runs checked in a history: the oldest is the baseline, the others its candidates."""
    unique = list(dict.fromkeys(runs))
    if len(unique) < 2:
        return error_page(request, 422, "Select two or more different runs to compare.")
    rows = sorted((ledger.run_queries.get_run(run_id) for run_id in unique), key=lambda r: (r.created_at, str(r.id)))
    query = urlencode([("baseline", str(rows[0].id))] + [("candidate", str(r.id)) for r in rows[1:]])
    return RedirectResponse(f"/compare?{query}", status_code=303)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _alpha(text: str, errors: list[str]) -> float:
    value = _float(text.strip())
    if value is None or not 0 < value < 0.5:
        errors.append(f"Significance level must be a number between 0 and 0.5 (e.g. 0.05), not {text!r}; "
                      "compared at 0.05")
        return 0.05
    return value


def _thresholds(request: Request, errors: list[str]) -> tuple[dict[str, Threshold], dict[str, dict[str, str]]]:
    """Per scorer, from `t.<scorer>` (smallest difference that counts) and `dir.<scorer>`."""
    typed: dict[str, dict[str, str]] = {}
    for key, value in request.query_params.multi_items():
        for prefix, part in (("t.", "value"), ("dir.", "direction")):
            if key.startswith(prefix) and len(key) > len(prefix):
                typed.setdefault(key[len(prefix):], {})[part] = value
    thresholds = {}
    for scorer, given in typed.items():
        text = given.get("value", "").strip()
        direction = given.get("direction") or DIRECTIONS[0]
        if direction not in DIRECTIONS:
            errors.append(f"{scorer}: direction must be higher-is-better or lower-is-better, not {direction!r}")
            continue
        value = _float(text) if text else 0.0
        if value is None or value < 0:
            errors.append(f"{scorer}: threshold must be a number ≥ 0, not {text!r}; ignored")
            continue
        thresholds[scorer] = Threshold(value, direction)  # type: ignore[arg-type]
    return thresholds, typed


def _delta_charts(ledger: Ledger, baseline: UUID, candidate: UUID, thresholds: dict[str, Threshold]) -> dict[str, Any]:
    deltas: dict[str, list[float]] = {}
    for _, scorer, a, b in ledger.run_queries.paired_scores(baseline, candidate):
        if a is not None and b is not None:
            deltas.setdefault(scorer, []).append(b - a)
    return {scorer: charts.delta_histogram(
        values, scorer, lower_is_better=thresholds.get(scorer, Threshold()).direction == "lower-is-better")
        for scorer, values in sorted(deltas.items())}


def _inputs(ledger: Ledger, a: RunView, b: RunView, items: list[ComparisonItem]) -> dict[Any, Any]:
    ids = [item.item_id for item in items]
    if not ids:
        return {}
    inputs = ledger.run_queries.item_inputs(b.dataset_id, b.dataset_version, ids)
    missing = [i for i in ids if i not in inputs]
    if missing:
        inputs.update(ledger.run_queries.item_inputs(a.dataset_id, a.dataset_version, missing))
    return inputs


def _dataset_names(ledger: Ledger, runs: Any) -> dict[Any, str]:
    names = {}
    for run in runs:
        if run.dataset_id not in names:
            try:
                names[run.dataset_id] = ledger.dataset_queries.get_dataset(run.dataset_id).name
            except DomainError:  # a deleted dataset: its runs stay comparable
                names[run.dataset_id] = "deleted dataset"
    return names
