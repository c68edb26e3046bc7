"""Commands on runs: run (start and follow one), runs list|show|results|cancel|export,
compare (a baseline with one or more candidates, as a CI gate), and review (judge a
result, read one, list the flagged ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from evalledger.cli.common import (
    DEFAULT_URL,
    AsJson,
    ServiceUrl,
    cli,
    client,
    console,
    out,
    print_json,
    refused,
    short,
)
from evalledger.cli.datasets import download

runs_cli = typer.Typer(help="Runs: list a dataset's, show one, its results; cancel; export.", no_args_is_help=True)
cli.add_typer(runs_cli, name="runs")

RunId = Annotated[str, typer.Argument(help="Run id.")]


def _spec(value: str, *, kind: str) -> dict[str, Any] | str:
    """A target or scorer given on the command line: JSON, a URL (targets), or a name."""
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"{kind} is not valid JSON: {error}") from None
    if kind == "target" and value.startswith(("http://", "https://")):
        return {"type": "http", "url": value}
    return {"type": "registered", "name": value} if kind == "target" else value


@cli.command()
def run(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    target: Annotated[str, typer.Option(help="Registered target name, an http(s) URL, or a JSON target spec.")],
    scorer: Annotated[list[str] | None, typer.Option(help="Scorer name or JSON spec; repeat for several.")] = None,
    version: Annotated[int | None, typer.Option(help="Dataset version (default: current).")] = None,
    concurrency: Annotated[int, typer.Option(help="Items in flight at once.")] = 8,
    timeout_ms: Annotated[int, typer.Option(help="Per-item timeout.")] = 60_000,
    retries: Annotated[int, typer.Option(help="Retries for transient errors.")] = 2,
    repetitions: Annotated[int, typer.Option(help="Times each item runs.")] = 1,
    name: Annotated[str, typer.Option(help="Run name.")] = "",
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Start a run, show its progress live, then a summary. Exits 1 if the run failed, 2 if refused."""
    from evalledger.cli_progress import follow_run, summarise_run

    with client(url) as api:
        with refused("Run refused", code=2):
            started = api.create_run(
                dataset,
                target=_spec(target, kind="target"),  # type: ignore[arg-type]
                scorers=[_spec(s, kind="scorer") for s in scorer or []],
                version=version,
                max_concurrency=concurrency,
                item_timeout_ms=timeout_ms,
                max_retries=retries,
                repetitions=repetitions,
                name=name,
            )
        console.print(f"run {started.id} on dataset {dataset} version {started.dataset_version}: "
                      f"{started.expected_results} result(s) to produce")
        finished = follow_run(api, started.id, console)
        summarise_run(api, finished, console)
        if finished.status != "completed":
            raise typer.Exit(code=1)


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@runs_cli.command("list")
def runs_list(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    page: Annotated[int, typer.Option(help="Page (0-based).")] = 0,
    per_page: Annotated[int, typer.Option(help="Rows per page.")] = 20,
    as_json: AsJson = False,
    url: ServiceUrl = DEFAULT_URL,
    tag: Annotated[list[str] | None, typer.Option(help="Only runs with this tag; repeat for all of several.")] = None,
    model: Annotated[str | None, typer.Option(help="Only runs of this model.")] = None,
    code_version: Annotated[str | None, typer.Option(help="Only runs of this code version (or a prefix: a short "
                                                     "commit).")] = None,
    prompt_version: Annotated[str | None, typer.Option(help="Only runs with this prompt version.")] = None,
) -> None:
    """A dataset's runs, newest first (filtered by tag, model, code or prompt version)."""
    with client(url) as api, refused("Cannot list runs"):
        listing = api.list_runs(dataset, page=page, per_page=per_page, tags=tag, model=model,
                                code_version=code_version, prompt_version=prompt_version)
    if as_json:
        return print_json(listing)
    table = Table("id", "name", "status", "version", "succeeded", "failed", "skipped", "model", "code", "tags",
                  "created", title=f"runs of {dataset} ({listing.pagination.total})")
    for each in listing.runs:
        meta = each.metadata
        tags = meta.get("tags") if isinstance(meta.get("tags"), list) else []
        table.add_row(str(each.id), each.name, each.status, str(each.dataset_version), str(each.succeeded_count),
                      str(each.failed_count), str(each.skipped_count),
                      str(meta.get("model") or (each.target or {}).get("model") or ""),
                      str(meta.get("codeVersion") or "")[:12], ", ".join(map(str, tags)), _when(each.created_at))
    out.print(table)
    if listing.pagination.has_more:
        console.print(f"{listing.pagination.total} runs in all; next: --page {page + 1}")


@runs_cli.command("show")
def runs_show(run_id: RunId, as_json: AsJson = False, url: ServiceUrl = DEFAULT_URL) -> None:
    """A run: its definition, counts, what it used (tokens, cost) and per-scorer statistics (every declared
    scorer)."""
    from evalledger.cli_progress import usage_rows

    with client(url) as api, refused("Cannot show the run"):
        details = api.get_run(run_id)
        analytics = api.analytics(run_id)
    if as_json:
        return print_json({"run": details.model_dump(mode="json", by_alias=True),
                           "analytics": analytics.model_dump(mode="json", by_alias=True)})
    table = Table("field", "value", title=f"run {details.name or details.id}", show_header=False)
    for label, value in (
        ("id", details.id), ("status", details.status), ("dataset", f"{details.dataset_id} v{details.dataset_version}"),
        ("target", short(details.target, 100) if details.target else "none (caller-driven)"),
        ("scorers", short(details.scorers, 100)), ("settings", short(details.settings, 100)),
        ("progress", f"{details.progress.done} of {details.progress.total}"),
        ("succeeded / failed / skipped", f"{details.succeeded_count} / {details.failed_count} / {details.skipped_count}"),
        ("latency p50 / p95 (ms)", f"{_number(analytics.latency_ms.p50, 1)} / {_number(analytics.latency_ms.p95, 1)}"),
        ("created", _when(details.created_at)), ("finished", _when(details.finished_at)),
        ("error", details.error or ""),
    ):
        table.add_row(label, str(value))
    for label, value in usage_rows(analytics.usage):
        table.add_row(label, value)
    out.print(table)
    scorers = Table("scorer", "count", "mean", "median", "min", "max", "pass rate", "errors", title="scorers")
    for scorer_id, stats in analytics.scorers.items():
        scorers.add_row(scorer_id, str(stats.count), _number(stats.mean), _number(stats.median), _number(stats.min),
                        _number(stats.max), _number(stats.pass_rate), str(stats.error_count))
    out.print(scorers)


@runs_cli.command("results")
def runs_results(
    run_id: RunId,
    status: Annotated[str | None, typer.Option(help="succeeded or failed.")] = None,
    page: Annotated[int, typer.Option(help="Page (0-based).")] = 0,
    per_page: Annotated[int, typer.Option(help="Rows per page.")] = 20,
    as_json: AsJson = False,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """A run's results in dataset order: input, expected and actual output, error, scores."""
    with client(url) as api, refused("Cannot list results"):
        listing = api.list_results(run_id, page=page, per_page=per_page, status=status)
    if as_json:
        return print_json(listing)
    table = Table("item", "rep", "status", "input", "expected", "output", "error", "ms", "scores",
                  title=f"results of run {run_id} ({listing.pagination.total})")
    for result in listing.results:
        scores = ", ".join(f"{s.scorer_id}={_number(s.score, 2) if s.error is None else 'error'}"
                           for s in result.scores)
        table.add_row(str(result.item_id), str(result.repetition), result.status, short(result.input, 30),
                      short(result.expected_output, 30), short(result.output, 30), short(result.error, 30),
                      _number(result.latency_ms, 0), scores)
    out.print(table)
    if listing.pagination.has_more:
        console.print(f"{listing.pagination.total} results in all; next: --page {page + 1}")


@runs_cli.command("cancel")
def runs_cancel(run_id: RunId, url: ServiceUrl = DEFAULT_URL) -> None:
    """Cancel a run: no new work starts; what finished is kept."""
    with client(url) as api, refused("Not cancelled"):
        cancelled = api.cancel_run(run_id)
    console.print(f"run {run_id} is {cancelled.status}")


@runs_cli.command("export")
def runs_export(
    run_id: RunId,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    file_format: Annotated[str, typer.Option("--format", help="csv (a column per scorer field) or jsonl.")] = "csv",
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Export a run's results to a file."""
    download(f"{url}/api/datasets/runs/{run_id}/results/export", {"format": file_format}, output, "Export")
    console.print(f"wrote {output}")


@cli.command()
def rescore(
    run_id: RunId,
    scorer: Annotated[list[str], typer.Option(help="Scorer name or JSON spec (give a new version the old `id` to "
                                                   "compare); repeat for several.")],
    concurrency: Annotated[int | None, typer.Option(help="Items in flight at once (default: the run's).")] = None,
    timeout_ms: Annotated[int | None, typer.Option(help="Per-item timeout (default: the run's).")] = None,
    retries: Annotated[int | None, typer.Option(help="Retries (default: the run's).")] = None,
    name: Annotated[str, typer.Option(help="Name of the derived run.")] = "",
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Apply scorers to a finished run's stored outputs (its target is not called) in a derived run; show its
    progress live, then a summary. Compare the two runs to see the drift. Exits 1 if it failed, 2 if refused."""
    from evalledger.cli_progress import follow_run, summarise_run

    with client(url) as api:
        with refused("Re-score refused", code=2):
            started = api.rescore(run_id, [_spec(s, kind="scorer") for s in scorer], name=name,
                                  max_concurrency=concurrency, item_timeout_ms=timeout_ms, max_retries=retries)
        console.print(f"run {started.id} re-scores run {run_id}: {started.expected_results} result(s)")
        finished = follow_run(api, started.id, console)
        summarise_run(api, finished, console)
        console.print(f"compare: evalledger compare {run_id} {started.id}")
        if finished.status != "completed":
            raise typer.Exit(code=1)


# -- review ---------------------------------------------------------------------------------

review_cli = typer.Typer(help="Review a finished run's results: judge one, show one, list the flagged.",
                         no_args_is_help=True)
cli.add_typer(review_cli, name="review")
ItemId = Annotated[str, typer.Argument(help="Item id of the result.")]
Repetition = Annotated[int, typer.Option(help="Repetition of the item.")]


def _scores(values: list[str] | None, what: str) -> dict[str, float | None]:
    """`name=0.8` pairs (`name=none` takes an override back)."""
    parsed: dict[str, float | None] = {}
    for value in values or []:
        name, sep, number = value.rpartition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{what} {value!r} is not name=score")
        try:
            parsed[name] = None if number.lower() in ("none", "null") else float(number)
        except ValueError:
            raise typer.BadParameter(f"{what} {value!r}: {number!r} is not a number") from None
    return parsed


@review_cli.command("set")
def review_set(
    run_id: RunId,
    item: ItemId,
    verdict: Annotated[str | None, typer.Option(help="pass or fail.")] = None,
    score: Annotated[list[str] | None, typer.Option(help="scorer=0.8 overrides that scorer's score (=none: back "
                                                         "to the automatic score); repeat for several.")] = None,
    criterion: Annotated[list[str] | None, typer.Option(help="name=0.8, a score of your own; repeatable.")] = None,
    comment: Annotated[str | None, typer.Option(help="A comment (empty: remove it).")] = None,
    flag: Annotated[bool | None, typer.Option("--flag/--unflag", help="Flag for follow-up, or clear it.")] = None,
    repetition: Repetition = 0,
    as_json: AsJson = False,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Review a result: only what is given changes. Exits 1 if refused."""
    scores, criteria = _scores(score, "--score"), _scores(criterion, "--criterion")
    with client(url) as api, refused("Review not recorded"):
        detail = api.review_result(run_id, item, repetition=repetition, verdict=verdict, scores=scores,
                                   criteria=criteria, comment=comment, flagged=flag)
    if as_json:
        return print_json(detail)
    _show_result(detail)


@review_cli.command("show")
def review_show(run_id: RunId, item: ItemId, repetition: Repetition = 0, as_json: AsJson = False,
                url: ServiceUrl = DEFAULT_URL) -> None:
    """A result: its scores, review, score history and output diff."""
    with client(url) as api, refused("Cannot show the result"):
        detail = api.get_result(run_id, item, repetition=repetition)
    if as_json:
        return print_json(detail)
    _show_result(detail)


@review_cli.command("queue")
def review_queue(run_id: RunId, page: Annotated[int, typer.Option(help="Page (0-based).")] = 0,
                 per_page: Annotated[int, typer.Option(help="Rows per page.")] = 20, as_json: AsJson = False,
                 url: ServiceUrl = DEFAULT_URL) -> None:
    """The run's results flagged for follow-up."""
    with client(url) as api, refused("Cannot list the review queue"):
        listing = api.review_queue(run_id, page=page, per_page=per_page)
    if as_json:
        return print_json(listing)
    table = Table("item", "rep", "verdict", "comment", "output", title=f"flagged in run {run_id} "
                  f"({listing.pagination.total})")
    for result in listing.results:
        review = result.review or {}
        table.add_row(str(result.item_id), str(result.repetition), review.get("verdict") or "",
                      short(review.get("comment"), 40), short(result.output, 40))
    out.print(table)


def _show_result(detail: Any) -> None:
    review = detail.review or {}
    console.print(f"result {detail.item_id}#{detail.repetition}: {detail.status}; verdict "
                  f"{review.get('verdict') or '-'}{' (flagged)' if detail.flagged else ''}"
                  f"{'; comment: ' + review['comment'] if review.get('comment') else ''}")
    history = Table("scorer", "score", "source", "by", "at", title="score history")
    for entry in detail.score_history:
        history.add_row(entry.scorer_id, _number(entry.score), entry.source, entry.actor or "", _when(entry.at))
    out.print(history)
    diff = detail.output_diff
    if diff.kind == "text" and not diff.equal:
        style = {"equal": "", "del": "red strike", "add": "green underline"}
        console.print("output diff (expected [red strike]struck[/], output [green underline]underlined[/]): " + "".join(
            f"[{style[s['op']]}]{escape(s['text'])}[/]" if style[s["op"]] else escape(s["text"])
            for s in diff.segments or []))
    elif diff.kind == "json" and not diff.equal:
        for change in diff.changes or []:
            console.print(f"{change['field']}: {short(change.get('before'), 40)} -> {short(change.get('after'), 40)}")
    else:
        console.print(f"output diff: {'identical' if diff.equal else diff.kind}")


# -- compare --------------------------------------------------------------------------------


@cli.command()
def compare(
    baseline: Annotated[str, typer.Argument(help="Baseline run id (A).")],
    candidates: Annotated[list[str], typer.Argument(help="Candidate run id(s) (B); several are each compared "
                                                    "with the baseline.")],
    threshold: Annotated[
        list[str] | None,
        typer.Option(help="SCORER=VALUE, or SCORER=VALUE:lower for lower-is-better scorers; repeatable."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    url: ServiceUrl = DEFAULT_URL,
) -> None:
    """Compare candidate runs with a baseline; exits 1 when any regresses (a CI gate), 2 on bad input."""
    thresholds: dict[str, dict[str, Any]] = {}
    for spec in threshold or []:
        scorer_id, _, rest = spec.partition("=")
        value, _, direction = rest.partition(":")
        try:
            thresholds[scorer_id] = {"value": float(value),
                                     "direction": "lower-is-better" if direction == "lower" else "higher-is-better"}
        except ValueError:
            raise typer.BadParameter(f"--threshold {spec!r}: expected SCORER=VALUE[:lower]") from None
    with client(url) as api, refused("Cannot compare", code=2):
        if len(candidates) == 1:
            comparisons = [api.compare(baseline, candidates[0], thresholds=thresholds, alpha=alpha,
                                       items_per_page=1)]
        else:
            comparisons = api.compare_many(baseline, candidates, thresholds=thresholds, alpha=alpha,
                                           items_per_page=1).comparisons
    for candidate, result in zip(candidates, comparisons, strict=True):
        _show_comparison(baseline, candidate, result)
    regressed = [c for c, result in zip(candidates, comparisons, strict=True) if result.has_regression]
    if regressed:
        console.print(f"[bold red]regression found[/] in {', '.join(regressed)}")
        raise typer.Exit(code=1)


def _show_comparison(baseline: str, candidate: str, result: Any) -> None:
    table = Table(title=f"{candidate} vs baseline {baseline} ({result.paired_items} paired items)")
    for column in ("scorer", "mean A", "mean B", "delta", "CI", "p", "better", "worse", "verdict"):
        table.add_column(column, justify="left" if column in ("scorer", "verdict") else "right")
    for scorer_id, block in result.scorers.items():
        colour = {"regressed": "red", "improved": "green"}.get(block.verdict, "white")
        ci = block.confidence_interval
        table.add_row(scorer_id, _number(block.mean_a), _number(block.mean_b), _number(block.delta),
                      f"[{_number(ci.get('low'))}, {_number(ci.get('high'))}]",
                      "-" if block.p_value is None else f"{block.p_value:.2g}", str(block.improved),
                      str(block.regressed), f"[{colour}]{block.verdict}[/]")
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning['message']}")
    latency = result.latency.get("delta", {})
    console.print(f"latency p50 delta {_number(latency.get('p50'), 1)} ms, "
                  f"p95 delta {_number(latency.get('p95'), 1)} ms")
    usage = result.usage
    if usage is not None and (usage.a.results or usage.b.results or usage.a.scorers or usage.b.scorers):
        d = usage.delta
        console.print(f"cost A {_number(usage.a.total_cost, 4)}, B {_number(usage.b.total_cost, 4)} "
                      f"(delta {_signed(d.total_cost, 4)}); per item: cost delta {_signed(d.per_item.cost, 6)}, "
                      f"tokens in {_signed(d.per_item.input_tokens, 1)}, out {_signed(d.per_item.output_tokens, 1)}")


def _signed(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"
