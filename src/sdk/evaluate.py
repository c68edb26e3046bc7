"""`evaluate()`: run the caller's own function over a stored dataset version, from the
caller's process, and record it as a caller-driven run of the service.

The items are executed by the service's own `RunExecutor` (timeouts, retries of
transient errors, repetitions, concurrency: one implementation), whose batches go to the
caller-driven results API instead of the Runs application (`CallerDrivenSink`). The run
declares its scorer ids when it is created, so analytics and comparisons know them.

Interrupted (Ctrl-C, a KeyboardInterrupt from the task, a crash), the run stays open with
what finished recorded; `evaluate(..., resume=run_id)` executes only what is missing.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from uuid import UUID

from evalledger.domain.runs import FINISHED, RunSettings, described_metadata
from evalledger.execution.runner import RunExecutor
from evalledger.sdk.backends import Backend, choose_backend
from evalledger.sdk.code_version import git_commit, where_the_code_is
from evalledger.sdk.functions import TaskTarget, build_scorers
from evalledger.sdk.progress import make_display
from evalledger.sdk.result import EvalResult
from evalledger.sdk.sinks import CallerDrivenSink

if TYPE_CHECKING:
    from evalledger.bootstrap import Ledger
    from evalledger.settings import Settings

TICK = 0.1  # seconds between progress updates


class EvaluationInterrupted(KeyboardInterrupt):
    """evaluate() was stopped; `run_id` is the run to resume."""

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


def evaluate(
    dataset: str | UUID,
    task: Callable[..., Any],
    scorers: Sequence[Any] = (),
    *,
    version: int | None = None,
    tag: str | None = None,
    name: str = "",
    metadata: dict[str, Any] | None = None,
    model: str | None = None,
    prompt: str | dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    code_version: str | bool | None = None,
    max_concurrency: int = 8,
    item_timeout_ms: int = 60_000,
    max_retries: int = 2,
    repetitions: int = 1,
    resume: str | UUID | None = None,
    compare_to: str | UUID | dict[str, str] | None = None,
    alpha: float = 0.05,
    url: str | None = None,
    settings: Settings | None = None,
    ledger: Ledger | None = None,
    progress: bool | None = None,
    http_allowlist: Sequence[str] | None = None,
) -> EvalResult:
    """Run `task` over every item of `dataset` (an id or a name; `version` pins one, `tag`
    the one a dataset tag names, recorded as metadata.datasetTag; else the latest) in this
    process, score each output, record it all as a run, and return an `EvalResult`.

    - task: a sync or async function of the item's input (and the `TargetContext`, if it
      takes a second argument); what it returns is the output.
    - scorers: built-in names or specs (`"exact-match"`, `{"name": "contains", "id": "has-4",
      "options": {...}}`), registered scorers (by name or function), plain functions naming
      what they need among input, output, expected_output (or expected), metadata, error,
      or (name, function) pairs; they answer a number from 0 to 1, a bool or
      {"score", "reason"}.
    - max_concurrency, item_timeout_ms, max_retries (transient errors only, as for server
      runs), repetitions, name, metadata: as for a run the service executes.
    - model, prompt (a template text, or {"template", "version"}), tags: recorded in the
      run's metadata, so runs can be found by them; code_version: the git commit of the
      task's code (default, when it is in a git repository; `-dirty` with uncommitted
      changes), a text of yours, or False for none.
    - resume: the id of an interrupted evaluate() run; only its missing results are executed,
      with the run's own settings (concurrency, timeout, retries, repetitions).
    - compare_to: a baseline run id, or {"tag": X}: the latest completed run on this dataset
      whose metadata has tag X (`metadata={"tag": X}` or `{"tags": [..., X]}`); the result
      holds the comparison (`result.assert_no_regression()`).
    - url (else EVALLEDGER_URL): the service; without one, or with `settings` or `ledger`,
      the database is used in this process through the same use cases (no server needed).
    - progress: show a progress bar (default: when in a terminal or Jupyter).
    """
    session = _Session()
    call = session.evaluate(dataset, task, scorers, version=version, tag=tag, name=name, metadata=metadata,
                            model=model, prompt=prompt, tags=tags, code_version=code_version,
                            max_concurrency=max_concurrency, item_timeout_ms=item_timeout_ms,
                            max_retries=max_retries, repetitions=repetitions, resume=resume, compare_to=compare_to,
                            alpha=alpha, url=url, settings=settings, ledger=ledger, progress=progress,
                            http_allowlist=http_allowlist)
    try:
        in_a_loop = asyncio.get_running_loop() is not None
    except RuntimeError:
        in_a_loop = False
    if not in_a_loop:
        try:
            return asyncio.run(call)
        except EvaluationInterrupted:
            raise
        except KeyboardInterrupt:  # Ctrl-C: asyncio.run raises a bare one; say which run to resume
            if session.interrupted is None:
                raise
            raise EvaluationInterrupted(*session.interrupted) from None
    # Inside a running loop (Jupyter): our own loop in a thread of our own.
    with ThreadPoolExecutor(1, thread_name_prefix="evalledger-evaluate") as pool:
        future = pool.submit(asyncio.run, call)
        try:
            return future.result()
        except KeyboardInterrupt:
            session.stop_from_outside()
            return future.result()


async def aevaluate(dataset: str | UUID, task: Callable[..., Any], scorers: Sequence[Any] = (),
                    **options: Any) -> EvalResult:
    """`evaluate()` for async code (a notebook cell can `await` it): same arguments."""
    return await _Session().evaluate(dataset, task, scorers, **options)


class _Session:
    """One evaluate() call: its loop and executor, so that a stop from another thread
    (Ctrl-C in Jupyter) can reach them."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.executor: RunExecutor | None = None
        self.stop: BaseException | None = None
        self.interrupted: tuple[str, str] | None = None  # (message, run id) once stopped by Ctrl-C
        self.ready = threading.Event()

    def stop_from_outside(self) -> None:
        self.ready.wait(5)
        if self.loop is not None and self.executor is not None:
            self.loop.call_soon_threadsafe(self._stop, KeyboardInterrupt())

    def _stop(self, reason: BaseException) -> None:
        if self.stop is None:
            self.stop = reason
        if self.executor is not None:
            self.executor.cancel(actor="evaluate", reason=f"interrupted ({type(reason).__name__})")

    async def evaluate(
        self, dataset: str | UUID, task: Callable[..., Any], scorers: Sequence[Any] = (), *,
        version: int | None = None, tag: str | None = None, name: str = "",
        metadata: dict[str, Any] | None = None, model: str | None = None,
        prompt: str | dict[str, Any] | None = None, tags: Sequence[str] | None = None,
        code_version: str | bool | None = None, max_concurrency: int = 8, item_timeout_ms: int = 60_000,
        max_retries: int = 2, repetitions: int = 1,
        resume: str | UUID | None = None, compare_to: str | UUID | dict[str, str] | None = None,
        alpha: float = 0.05, url: str | None = None, settings: Settings | None = None, ledger: Ledger | None = None,
        progress: bool | None = None, http_allowlist: Sequence[str] | None = None,
    ) -> EvalResult:
        self.loop = asyncio.get_running_loop()
        target = TaskTarget(task, self._stop)
        if http_allowlist is None:
            from evalledger.settings import Settings as EnvSettings

            http_allowlist = (settings or EnvSettings.from_env()).http_allowlist
        built = build_scorers(list(scorers), http_allowlist=http_allowlist)
        scorer_ids = [s.id for s in built]
        if code_version is None or code_version is True:
            code_version = await asyncio.to_thread(git_commit, where_the_code_is(task))
        described = described_metadata(metadata, model=model, prompt=prompt, tags=list(tags) if tags else None,
                                       code_version=code_version or None)
        backend = await asyncio.to_thread(choose_backend, url=url, settings=settings, ledger=ledger)
        try:
            found = await asyncio.to_thread(backend.find_dataset, str(dataset))
            if resume is not None:
                run = await asyncio.to_thread(_resumable, backend, str(resume), str(found["id"]), scorer_ids)
            else:
                run = await asyncio.to_thread(
                    backend.create_run, str(found["id"]), scorers=scorer_ids, version=version, tag=tag,
                    name=name, metadata=described,
                    settings=RunSettings(max_concurrency=max_concurrency, item_timeout_ms=item_timeout_ms,
                                         max_retries=max_retries, repetitions=repetitions))
            run_id = str(run["id"])
            if run["status"] not in FINISHED:
                await self._execute(backend, run, target, built, progress, title=name or str(found["name"]))
            return await asyncio.to_thread(_result, backend, run_id, scorer_ids, compare_to, alpha)
        finally:
            await asyncio.to_thread(backend.close)

    async def _execute(self, backend: Backend, run: dict[str, Any], target: TaskTarget, scorers: list[Any],
                       show: bool | None, title: str) -> None:
        run_id, dataset_id, version = str(run["id"]), str(run["datasetId"]), int(run["datasetVersion"])
        sink = CallerDrivenSink(backend, run_id)
        self.executor = executor = RunExecutor(
            run_id=UUID(run_id), dataset_id=UUID(dataset_id), dataset_version=version,
            settings=RunSettings.from_wire(run["settings"]), target=target, scorers=scorers, sink=sink,
            item_pages=lambda: backend.item_pages(dataset_id, version), expected_results=int(run["expectedResults"]),
        )
        self.ready.set()
        display = make_display(title, show)
        ticker = asyncio.create_task(_tick(executor, display))
        execution = asyncio.ensure_future(executor.run())
        try:
            await asyncio.shield(execution)
        except asyncio.CancelledError:  # Ctrl-C under asyncio.run: record what finished, then stop
            self._stop(KeyboardInterrupt())
            await execution
            self.interrupted = (_interrupted(executor, run_id), run_id)
            print(self.interrupted[0], file=sys.stderr)
            raise
        finally:
            ticker.cancel()
            display.close(executor.progress.snapshot(executor.expected_results))
        if self.stop is not None:
            message = _interrupted(executor, run_id)
            print(message, file=sys.stderr)
            if isinstance(self.stop, SystemExit):
                raise self.stop
            raise EvaluationInterrupted(message, run_id)
        if sink.error is not None:
            raise RuntimeError(f"evaluate() could not go on: {sink.error}; what finished is recorded in run "
                               f"{run_id}; go on with evaluate(..., resume={run_id!r})")


def _interrupted(executor: RunExecutor, run_id: str) -> str:
    return (f"evaluate() was interrupted: {executor.progress.done} of {executor.expected_results} results are "
            f"recorded in run {run_id}; go on with evaluate(..., resume={run_id!r})")


async def _tick(executor: RunExecutor, display: Any) -> None:
    while True:
        display.update(executor.progress.snapshot(executor.expected_results))
        await asyncio.sleep(TICK)


def _resumable(backend: Backend, run_id: str, dataset_id: str, scorer_ids: list[str]) -> dict[str, Any]:
    run = backend.get_run(run_id)
    if not run["callerDriven"]:
        raise ValueError(f"run {run_id} is executed by the service; only an evaluate() run can be resumed here")
    if str(run["datasetId"]) != dataset_id:
        raise ValueError(f"run {run_id} is a run of dataset {run['datasetId']}, not of {dataset_id}")
    if run["status"] == "cancelled":
        raise ValueError(f"run {run_id} was cancelled; it cannot be resumed")
    if list(run["scorers"]) != scorer_ids:
        raise ValueError(f"run {run_id} was made with scorers {run['scorers']}, not {scorer_ids}; "
                         "resume it with the same scorers")
    return run


def _result(backend: Backend, run_id: str, scorer_ids: list[str], compare_to: Any, alpha: float) -> EvalResult:
    run = backend.get_run(run_id)
    results = [r for page in backend.result_pages(run_id) for r in page]
    result = EvalResult(run_id=run_id, run=run, analytics=backend.analytics(run_id), results=results,
                        url=f"{backend.ui_base}/runs/{run_id}" if backend.ui_base else None, scorer_ids=scorer_ids)
    if compare_to is not None:
        baseline = baseline_run(backend, run, compare_to)
        result.baseline_run_id = baseline
        result.comparison = backend.compare(baseline, run_id, alpha)
    return result


def baseline_run(backend: Backend, run: dict[str, Any], compare_to: Any) -> str:
    """A run id, or {"tag": X}: the latest completed run of the dataset tagged X in its metadata."""
    if not isinstance(compare_to, dict):
        return str(compare_to)
    if set(compare_to) != {"tag"}:
        raise ValueError(f"compare_to is a run id or {{'tag': ...}}, not {compare_to!r}")
    tag = compare_to["tag"]
    for page in backend.run_pages(str(run["datasetId"])):  # newest first
        for other in page:
            meta = other.get("metadata") or {}
            tagged = meta.get("tag") == tag or tag in (meta.get("tags") or [])
            if tagged and other["status"] == "completed" and other["id"] != run["id"]:
                return str(other["id"])
    raise LookupError(f"no completed run of dataset {run['datasetId']} has the tag {tag!r} in its metadata")
