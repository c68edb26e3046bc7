"""Terminal views of a run for the CLI: a live progress bar and a summary table (rich)."""

from __future__ import annotations

import time
from collections import defaultdict
from uuid import UUID

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from evalledger.api import models
from evalledger.client import Client

FINISHED = ("completed", "failed", "cancelled")


def follow_run(client: Client, run_id: UUID, console: Console, poll: float = 0.25) -> models.Run:
    """Show done/total, failures, items/s and ETA until the run ends; return the final run."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("{task.fields[rate]:.1f} items/s"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False) as progress:
        run = client.get_run(run_id)
        task = progress.add_task("running", total=run.expected_results, failed=0, rate=0.0)
        while True:
            done = run.progress.done
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=done, failed=run.failed_count, rate=rate, description=run.status)
            if run.status in FINISHED:
                return run
            time.sleep(poll)
            run = client.get_run(run_id)


def summarise_run(client: Client, run: models.Run, console: Console) -> None:
    table = Table(title=f"run {run.id} — {run.status}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("succeeded", str(run.succeeded_count))
    table.add_row("failed", str(run.failed_count))
    table.add_row("skipped", str(run.skipped_count))
    if run.started_at and run.finished_at:
        table.add_row("duration (s)", f"{(run.finished_at - run.started_at).total_seconds():.2f}")
    for scorer_id, (total, count, errors) in _scorer_means(client, run.id).items():
        mean = f"{total / count:.3f}" if count else "-"
        table.add_row(f"mean {scorer_id}", mean + (f" ({errors} errors)" if errors else ""))
    for label, value in usage_rows(client.analytics(run.id).usage):
        table.add_row(label, value)
    if run.error:
        table.add_row("error", run.error)
    console.print(table)


def usage_rows(usage: models.Usage | None) -> list[tuple[str, str]]:
    """What a run used, as summary rows: the target's tokens and cost (totals and per
    result), each scorer's cost, the whole cost (none when nothing reported usage)."""
    if usage is None or (usage.results == 0 and not usage.scorers):
        return []
    rows = []
    if usage.results:
        per = usage.per_item
        rows.append(("tokens in / out", f"{_count(usage.input_tokens)} / {_count(usage.output_tokens)}"
                     f" ({_mean(per.input_tokens)} / {_mean(per.output_tokens)} per item)"))
        if usage.cost is not None:
            rows.append(("cost", f"{usage.cost:.4f} ({_money(per.cost)} per item)"))
        if usage.models:
            rows.append(("models", ", ".join(usage.models)))
    for scorer_id, used in usage.scorers.items():
        rows.append((f"scoring {scorer_id}", f"{_count(used.input_tokens)} / {_count(used.output_tokens)} tokens"
                     + (f", cost {used.cost:.4f}" if used.cost is not None else "")))
    if usage.total_cost is not None and usage.scorers:
        rows.append(("total cost", f"{usage.total_cost:.4f}"))
    return rows


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _mean(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _scorer_means(client: Client, run_id: UUID) -> dict[str, tuple[float, int, int]]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0])
    page = 0
    while True:
        listing = client.list_results(run_id, page=page, per_page=1000)
        for result in listing.results:
            for score in result.scores:
                entry = sums[score.scorer_id]
                if score.score is None:
                    entry[2] += 1
                else:
                    entry[0] += score.score
                    entry[1] += 1
        if not listing.pagination.has_more:
            break
        page += 1
    return {key: (value[0], int(value[1]), int(value[2])) for key, value in sums.items()}
