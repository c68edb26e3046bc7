"""The client's calls on runs: starting, following and cancelling them, their results,
comparisons, reviews and rescoring."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import orjson

from evalledger.api import models
from evalledger.client.transport import Transport, answer


class RunCalls(Transport):
    def create_run(self, dataset_id: UUID | str, *, target: dict[str, Any] | None = None,
                   scorers: list[str | dict[str, Any]] | None = None, version: int | None = None,
                   max_concurrency: int = 8, item_timeout_ms: int = 60_000, max_retries: int = 2,
                   repetitions: int = 1, name: str = "", metadata: dict[str, Any] | None = None,
                   run_id: UUID | str | None = None, reason: str | None = None,
                   tag: str | None = None, model: str | None = None, prompt: str | dict[str, Any] | None = None,
                   code_version: str | None = None, tags: list[str] | None = None) -> models.Run:
        """Start a run (without a target: a caller-driven run you submit results to) on a
        version (default: current), or on the version a dataset `tag` names. `model`,
        `prompt` (a template, or {"template", "version"}), `code_version` and `tags` are kept
        in its metadata, and runs are listed by them."""
        body = {"target": target, "scorers": scorers or [], "version": version, "maxConcurrency": max_concurrency,
                "itemTimeoutMs": item_timeout_ms, "maxRetries": max_retries, "repetitions": repetitions,
                "name": name, "metadata": metadata or {}, "runId": str(run_id) if run_id else None}
        if isinstance(prompt, str):
            prompt = {"template": prompt}
        for key, value in (("tag", tag), ("model", model), ("prompt", prompt), ("codeVersion", code_version),
                           ("tags", tags)):
            if value is not None:
                body[key] = value
        return self._send(models.Run, "POST", f"/api/datasets/{dataset_id}/runs", json=body, reason=reason)

    def get_run(self, run_id: UUID | str) -> models.Run:
        return self._get(models.Run, f"/api/datasets/runs/{run_id}")

    def list_runs(self, dataset_id: UUID | str, *, page: int = 0, per_page: int = 10,
                  tags: list[str] | None = None, model: str | None = None, code_version: str | None = None,
                  prompt_version: str | None = None, status: str | None = None) -> models.RunList:
        """A dataset's runs, newest first; only those with all `tags`, of a `model`, a
        `code_version` (or a prefix), a `prompt_version` or a `status`, when given."""
        return self._get(models.RunList, f"/api/datasets/{dataset_id}/runs", page=page, perPage=per_page, tag=tags,
                         model=model, codeVersion=code_version, promptVersion=prompt_version, status=status)

    def iter_runs(self, dataset_id: UUID | str, *, per_page: int = 100, **filters: Any) -> Iterator[models.Run]:
        """Every run of a dataset, newest first (with `list_runs`' filters), fetching pages as it goes."""
        yield from self._pages(lambda page: self.list_runs(dataset_id, page=page, per_page=per_page, **filters),
                               "runs")

    def list_results(self, run_id: UUID | str, *, page: int = 0, per_page: int = 50,
                     status: str | None = None) -> models.RunResultList:
        return self._get(models.RunResultList, f"/api/datasets/runs/{run_id}/results", page=page,
                         perPage=per_page, status=status)

    def iter_results(self, run_id: UUID | str, *, status: str | None = None,
                     per_page: int = 1000) -> Iterator[models.RunResult]:
        """Every result of a run in dataset order (optionally only succeeded or failed ones),
        fetching pages as it goes."""
        yield from self._pages(lambda page: self.list_results(run_id, page=page, per_page=per_page, status=status),
                               "results")

    def wait_for_run(self, run_id: UUID | str, *, timeout: float | None = None, poll: float = 0.5,
                     on_progress: Callable[[models.Run], None] | None = None) -> models.Run:
        """The run once it has finished (completed, failed or cancelled); TimeoutError if it
        has not after `timeout` seconds. `on_progress` is called with the run at each poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if on_progress is not None:
                on_progress(run)
            if run.status in ("completed", "failed", "cancelled"):
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout} s "
                                   f"({run.progress.done} of {run.progress.total} results)")
            time.sleep(poll)

    def run_and_wait(self, dataset_id: UUID | str, *, target: dict[str, Any], timeout: float | None = None,
                     poll: float = 0.5, on_progress: Callable[[models.Run], None] | None = None,
                     **options: Any) -> models.Run:
        """Start a run with a target (`create_run`'s options) and return it once finished."""
        run = self.create_run(dataset_id, target=target, **options)
        return self.wait_for_run(run.id, timeout=timeout, poll=poll, on_progress=on_progress)

    def cancel_run(self, run_id: UUID | str, *, reason: str | None = None) -> models.Run:
        return self._send(models.Run, "POST", f"/api/datasets/runs/{run_id}/cancel", reason=reason)

    def submit_results(self, run_id: UUID | str, results: list[dict[str, Any]]) -> models.ResultsAccepted:
        """Caller-driven runs: results are wire dicts (itemId, repetition, output, error, scores...)."""
        return self._send(models.ResultsAccepted, "POST", f"/api/datasets/runs/{run_id}/results",
                          json={"results": results})

    def finalize_run(self, run_id: UUID | str) -> models.Run:
        return self._send(models.Run, "POST", f"/api/datasets/runs/{run_id}/finalize")

    def run_events(self, run_id: UUID | str, *, page: int = 0, per_page: int = 50) -> models.EventList:
        """A run's own events, oldest first."""
        return self._get(models.EventList, f"/api/datasets/runs/{run_id}/events", page=page, perPage=per_page)

    def watch_run(self, run_id: UUID | str) -> Iterator[dict[str, Any]]:
        """The run's progress as the server streams it (server-sent events), until it ends."""
        with self.http.stream("GET", f"/api/datasets/runs/{run_id}/stream", timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                answer(response)
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield orjson.loads(line[6:])

    def analytics(self, run_id: UUID | str, *, threshold: float = 0.5, group_by: str | None = None,
                  item_limit: int = 100) -> models.RunAnalytics:
        return self._get(models.RunAnalytics, f"/api/datasets/runs/{run_id}/analytics", threshold=threshold,
                         groupBy=group_by, itemLimit=item_limit)

    def compare(self, baseline: UUID | str, candidate: UUID | str, *,
                thresholds: dict[str, dict[str, Any]] | None = None, alpha: float = 0.05,
                allow_partial: bool = False, items_page: int = 0, items_per_page: int = 100,
                item_status: str | None = None) -> models.Comparison:
        """Compare a candidate run with a baseline. thresholds: {scorerId: {"value", "direction"}}."""
        body = {"runIdA": str(baseline), "runIdB": str(candidate), "thresholds": thresholds or {},
                "alpha": alpha, "allowPartial": allow_partial, "itemsPage": items_page,
                "itemsPerPage": items_per_page, "itemStatus": item_status}
        return self._send(models.Comparison, "POST", "/api/datasets/compare", json=body)

    def compare_many(self, baseline: UUID | str, candidates: list[UUID | str], *,
                     thresholds: dict[str, dict[str, Any]] | None = None, alpha: float = 0.05,
                     items_per_page: int = 100) -> models.MultiComparison:
        body = {"runIdA": str(baseline), "candidates": [str(c) for c in candidates], "thresholds": thresholds or {},
                "alpha": alpha, "itemsPerPage": items_per_page}
        return self._send(models.MultiComparison, "POST", "/api/datasets/compare", json=body)

    def get_result(self, run_id: UUID | str, item_id: UUID | str, *, repetition: int = 0) -> models.ResultDetail:
        """One result: the scores that count, its reviews, score history and output diff."""
        return self._get(models.ResultDetail, f"/api/datasets/runs/{run_id}/results/{item_id}", repetition=repetition)

    def review_result(self, run_id: UUID | str, item_id: UUID | str, *, repetition: int = 0,
                      verdict: str | None = None, scores: dict[str, float | None] | None = None,
                      criteria: dict[str, float | None] | None = None, comment: str | None = None,
                      flagged: bool | None = None, reason: str | None = None) -> models.ResultDetail:
        """Review a finished run's result; only what is given changes (see README, Reviewing results)."""
        body: dict[str, Any] = {"repetition": repetition, "scores": scores or {}, "criteria": criteria or {}}
        for key, value in (("verdict", verdict), ("comment", comment), ("flagged", flagged)):
            if value is not None:
                body[key] = value
        return self._send(models.ResultDetail, "POST", f"/api/datasets/runs/{run_id}/results/{item_id}/review",
                          json=body, reason=reason)

    def review_queue(self, run_id: UUID | str, *, page: int = 0, per_page: int = 50) -> models.RunResultList:
        """The run's results flagged for follow-up."""
        return self._get(models.RunResultList, f"/api/datasets/runs/{run_id}/review-queue", page=page,
                         perPage=per_page)

    def rescore(self, run_id: UUID | str, scorers: list[Any], *, name: str = "", max_concurrency: int | None = None,
                item_timeout_ms: int | None = None, max_retries: int | None = None,
                reason: str | None = None) -> models.Run:
        """Apply scorers to a finished run's stored outputs in a derived run (no target call)."""
        body: dict[str, Any] = {"scorers": scorers, "name": name}
        for key, value in (("maxConcurrency", max_concurrency), ("itemTimeoutMs", item_timeout_ms),
                           ("maxRetries", max_retries)):
            if value is not None:
                body[key] = value
        return self._send(models.Run, "POST", f"/api/datasets/runs/{run_id}/rescore", json=body, reason=reason)
