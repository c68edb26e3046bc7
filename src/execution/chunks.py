"""Executing one chunk of a run: the job `jobs.py` hands to this process's worker.

A chunk holds a connection of its own while it executes (its chunk lock and the run's
slots, `slots.py`), so that no two processes execute one chunk at once and the run's
`maxConcurrency` holds across every worker. Chunks of one run executing here at once share
one executor (`local_run.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from evalledger.domain.runs import FINISHED, Run, RunFinishedError
from evalledger.execution.jobs import CANCEL_POLL
from evalledger.execution.local_run import LocalRun
from evalledger.execution.registry import Registry
from evalledger.execution.retries import RunRetries
from evalledger.execution.progress import LiveProgress, Progress
from evalledger.execution.recording import RunsSink
from evalledger.execution.runner import RunExecutor, error_text
from evalledger.execution.scorers import build_scorer
from evalledger.execution.slots import ChunkLease
from evalledger.execution.targets import build_target
from evalledger.projections.dataset_queries import DatasetQueries
from evalledger.projections.run_queries import RunQueries
from evalledger.service_layer.applications import Runs, Written

log = logging.getLogger(__name__)

# A chunk that is executing in this process already (its job given again).
DUPLICATE: list[tuple[dict[str, Any], int]] = []


class RunInterruptedError(RuntimeError):
    """The executor stopped before the run was finished (it could not record how it ended)."""


def finish_if_done(runs: Runs, run_id: UUID, on_written: Callable[[Written], None]) -> bool:
    """Record the run's end once every (item, repetition) has its result. True when it is
    finished (by this call or before)."""
    run = runs.get_run(run_id)
    if run.status in FINISHED:
        return True
    if len(run.outcomes) < run.expected_results:
        return False
    try:
        on_written(runs.finish_run(run_id))
    except RunFinishedError:
        pass
    return True


class ChunkSink(RunsSink):
    """A chunk's sink: the service's sink (RunsSink) for one of the run's chunks. Other
    chunks write to the same run, from this process or others: the run's end is recorded by
    whichever chunk sees every result recorded, and a run that ended meanwhile (cancelled
    elsewhere) takes nothing more, silently."""

    def _write(self, command: Callable[[], Written]) -> None:
        try:
            super()._write(command)
        except RunFinishedError:
            pass

    def finish(self, error: str | None = None) -> None:
        if error is not None:
            super().finish(error)
        else:
            finish_if_done(self.runs, self.run_id, self.on_written)


class ChunkExecution:
    """The chunks executing in this process, and what executes the next one."""

    def __init__(self, *, runs: Runs, run_queries: RunQueries, dataset_queries: DatasetQueries, registry: Registry,
                 http_allowlist: Sequence[str], conninfo: str, on_written: Callable[[Written], None],
                 retries: RunRetries, connect_timeout: float) -> None:
        self.runs = runs
        self.run_queries = run_queries
        self.dataset_queries = dataset_queries
        self.registry = registry
        self.http_allowlist = list(http_allowlist)
        self.conninfo = conninfo
        self.on_written = on_written
        self.retries = retries
        self.connect_timeout = connect_timeout
        # The chunks executing in this process, per run.
        self.executors: dict[UUID, set[RunExecutor]] = {}
        # Runs cancelled here (actor, reason): a retry records the cancellation, never runs them again.
        self.cancelling: dict[UUID, tuple[str, str | None]] = {}
        # Per run executing here: its live progress, and what stops its waiting chunks.
        self.progresses: dict[UUID, Progress] = {}
        self.stops: dict[UUID, asyncio.Event] = {}
        # Per run executing here: the executor its chunks share (local_run.py).
        self.locals: dict[UUID, LocalRun] = {}

    def stop_here(self, run_id: UUID, *, actor: str, reason: str | None) -> None:
        """Stop the run's chunks executing (or waiting for slots) in this process."""
        stop = self.stops.get(run_id)
        if stop is not None:
            stop.set()
        for executor in list(self.executors.get(run_id, ())):
            executor.cancel(actor=actor, reason=reason)

    async def watch_cancels(self) -> None:
        """A run that finished elsewhere (cancelled, most often) stops here within CANCEL_POLL."""
        while True:
            await asyncio.sleep(CANCEL_POLL)
            for run_id in list(set(self.executors) | set(self.stops)):
                try:
                    status = (await asyncio.to_thread(self.run_queries.run_row, run_id))["status"]
                except Exception:  # noqa: BLE001 - looked at again shortly
                    continue
                if status in FINISHED:
                    self.stop_here(run_id, actor="runner", reason=None)

    def progress(self, run_id: UUID) -> LiveProgress | None:
        executors = self.executors.get(run_id)
        progress = self.progresses.get(run_id)
        if not executors or progress is None:
            return None
        return progress.snapshot(next(iter(executors)).expected_results)

    # -- executing a chunk (the job) ------------------------------------------------------------

    async def execute(self, run_id: UUID, chunk: int, size: int) -> None:
        """Execute one chunk, trying again after whatever stops it that may pass."""
        async for attempt in self.retries.retrying(run_id):
            with attempt:
                await self._execute_once(run_id, chunk, size)

    async def _execute_once(self, run_id: UUID, chunk: int, size: int) -> None:
        run = await asyncio.to_thread(self.runs.get_run, run_id)
        if run.status in FINISHED or run.target is None:
            return
        if run_id in self.cancelling:  # cancelled here, but that could not be recorded
            actor, reason = self.cancelling[run_id]
            self.on_written(await asyncio.to_thread(self.runs.cancel_run, run_id, actor=actor, reason=reason))
            return
        local = self.locals.get(run_id)
        if local is not None and local.taking:
            joined = await self._join(local, run_id, run, chunk, size)
            if joined is None:
                return  # another process executes the chunk
            if joined is not False:
                if joined or joined is DUPLICATE:
                    await local.done.wait()
                    await self._check_recorded(run_id, chunk, joined)
                return
        todo = await self._execute_local(run_id, run, chunk, size)
        if todo:
            await self._check_recorded(run_id, chunk, todo)
        self.cancelling.pop(run_id, None)

    async def _page(self, run: Run, chunk: int, size: int) -> list[tuple[dict[str, Any], int]]:
        """The chunk's (item, repetition) pairs not recorded yet."""
        page, _ = await asyncio.to_thread(self.dataset_queries.list_items, UUID(run.dataset_id),
                                          run.dataset_version, chunk, size)
        return [(item, repetition) for repetition in range(run.run_settings.repetitions) for item in page
                if f"{item.id}#{repetition}" not in run.outcomes]

    async def _join(self, local: LocalRun, run_id: UUID, run: Run, chunk: int,
                    size: int) -> list[tuple[dict[str, Any], int]] | None | bool:
        """Hand the chunk to the run's executor in this process: its pairs once they are
        queued there (DUPLICATE if it is there already), None when another process executes
        the chunk, False when that executor no longer takes work (the chunk then opens its own)."""
        await local.opened.wait()
        lease = local.lease
        if lease is None or not local.taking:
            return False
        if chunk in local.chunks:  # the same chunk twice (a job given again): it is executing here
            return DUPLICATE
        if not await lease.lock_chunk(chunk):
            log.info("run %s: chunk %d is executed by another process", run_id, chunk)
            return None
        todo = await self._page(run, chunk, size)
        if not local.add(todo):
            await lease.unlock_chunk(chunk)
            return False
        local.chunks.add(chunk)
        limit = run.run_settings.max_concurrency
        extra = 0
        if local.executing:
            extra = await lease.take_free(min(limit - len(lease.slots), local.pending()), limit)
        if extra and not local.add_slots(extra):
            for _ in range(extra):
                await lease.release_one()
        return todo

    async def _check_recorded(self, run_id: UUID, chunk: int, todo: list[tuple[dict[str, Any], int]]) -> None:
        """The chunk's results are recorded, or the run has ended; else it stopped short."""
        after = await asyncio.to_thread(self.runs.get_run, run_id)
        if after.status not in FINISHED and any(
                f"{item.id}#{repetition}" not in after.outcomes for item, repetition in todo):
            raise RunInterruptedError(f"chunk {chunk} of the run stopped before its items were recorded")

    async def _execute_local(self, run_id: UUID, run: Run, chunk: int,
                             size: int) -> list[tuple[dict[str, Any], int]]:
        """Open the run's executor in this process with this chunk (chunks of the run that
        start meanwhile join it) and execute until it ends. Returns the chunk's pairs."""
        local = self.locals[run_id] = LocalRun()
        todo: list[tuple[dict[str, Any], int]] = []
        executor: RunExecutor | None = None
        stop = self.stops.setdefault(run_id, asyncio.Event())
        try:
            lease = await ChunkLease.open(self.conninfo, run_id, chunk, connect_timeout=self.connect_timeout)
            if lease is None:
                log.info("run %s: chunk %d is executed by another process", run_id, chunk)
                return []
            local.lease = lease
            local.chunks.add(chunk)
            local.opened.set()
            todo = await self._page(run, chunk, size)
            local.add(todo)
            if not local.pending():
                await asyncio.to_thread(finish_if_done, self.runs, run_id, self.on_written)
                return todo
            limit = run.run_settings.max_concurrency
            taken = await lease.acquire(min(limit, local.pending()), limit, stop=stop)
            if not taken:
                return todo  # the run ended meanwhile
            try:
                executor = self._executor(run_id, run, taken, lease, local)
            except Exception as error:  # noqa: BLE001 - e.g. its target is no longer registered
                log.exception("run %s cannot start", run_id)
                try:
                    self.on_written(await asyncio.to_thread(self.runs.finish_run, run_id, error=error_text(error)))
                except RunFinishedError:
                    pass
                return todo
            local.executing = True
            self.retries.waiting.pop(run_id, None)
            self.executors.setdefault(run_id, set()).add(executor)
            executor.progress = self.progresses.setdefault(run_id, Progress())
            try:
                await executor.run()
            finally:
                running = self.executors.get(run_id, set())
                running.discard(executor)
                if not running:
                    self.executors.pop(run_id, None)
                    self.progresses.pop(run_id, None)
                if executor.cancel_requested.is_set() and executor.cancel_actor != "runner":
                    self.cancelling[run_id] = (executor.cancel_actor, executor.cancel_reason)
        finally:
            local.close()
            if self.locals.get(run_id) is local:
                del self.locals[run_id]
            if local.lease is not None:
                await local.lease.close()
            if run_id not in self.executors and run_id not in self.locals:
                self.stops.pop(run_id, None)
        return todo

    def _executor(self, run_id: UUID, run: Run, slots: int, lease: ChunkLease, local: LocalRun) -> RunExecutor:
        dataset_id = UUID(run.dataset_id)
        return RunExecutor(
            run_id=run_id,
            dataset_id=dataset_id,
            dataset_version=run.dataset_version,
            settings=dataclasses.replace(run.run_settings, max_concurrency=slots),
            target=build_target(run.target or {}, self.registry, http_allowlist=self.http_allowlist,
                                result_row=self.run_queries.result_row),
            scorers=[build_scorer(spec, self.registry, http_allowlist=self.http_allowlist) for spec in run.scorers],
            sink=ChunkSink(self.runs, run_id, self.on_written),
            item_pages=lambda: iter(()),
            more_work=local.more_work,
            expected_results=run.expected_results,
            on_worker_done=lease.release_one,
        )
