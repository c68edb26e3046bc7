"""Runs server-side runs: defers their chunks to the job queue (`jobs.py`) and, in a
process that runs a worker, executes chunks taken from it, in one asyncio loop in a
thread of the process.

A chunk holds a connection of its own while it executes (its chunk lock and the run's
slots, `slots.py`), so that no two processes execute one chunk at once and the run's
`maxConcurrency` holds across every worker.

A run that cannot start or go on (the database refuses a connection, say) is not given
up: the failure is logged, shown on the run (`statusReason`) and tried again after a
random, growing pause, for as long as it takes. A run that waits because no worker is
running says that too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import dataclasses

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from evalledger.service_layer.applications import Runs, Written
from evalledger.domain.errors import DomainError
from evalledger.domain.runs import FINISHED, Run, RunFinishedError
from evalledger.execution.jobs import (
    CANCEL_POLL, FETCH_POLL, HEARTBEAT_SECONDS, QUEUE, STALLED_POLL, SWEEP_SECONDS, JobQueue, chunk_count,
    chunk_items,
)
from evalledger.execution.registry import Registry
from evalledger.execution.progress import LiveProgress, Progress
from evalledger.execution.recording import RunsSink
from evalledger.execution.runner import RunExecutor, error_text
from evalledger.execution.local_run import LocalRun
from evalledger.execution.slots import ChunkLease
from evalledger.execution.scorers import build_scorer
from evalledger.execution.targets import build_target
from evalledger.projections.dataset_queries import DatasetQueries
from evalledger.projections.run_queries import RunQueries

log = logging.getLogger(__name__)

# The longest pause between attempts to start (or go on with) a run.
RETRY_MAX_PAUSE = 30.0
# Seconds to wait for PostgreSQL to accept the run's lock connection.
CONNECT_TIMEOUT = 10


# A chunk that is executing in this process already (its job given again).
DUPLICATE: list[tuple[dict[str, Any], int]] = []


class RunInterruptedError(RuntimeError):
    """The executor stopped before the run was finished (it could not record how it ended)."""


def _worth_retrying(error: BaseException) -> bool:
    """Anything that stops an execution may pass, but a refusal of the domain's (no such
    run, say), which would only be refused again, and a cancellation (stop())."""
    return isinstance(error, Exception) and not isinstance(error, DomainError)


async def _cancel_everything() -> None:
    """Cancel every other task of the loop and let them unwind (their lock connections
    closed, their retries ended) while the loop still runs."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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


class RunScheduler:
    def __init__(
        self,
        *,
        runs: Runs,
        run_queries: RunQueries,
        dataset_queries: DatasetQueries,
        registry: Registry,
        http_allowlist: Sequence[str],
        conninfo: str,
        on_written: Callable[[Written], None],
        queue: JobQueue,
        run_worker: bool = True,
        worker_concurrency: int = 4,
        chunk_items: int = 0,
        stalled_seconds: float = 10.0,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.runs = runs
        self.run_queries = run_queries
        self.dataset_queries = dataset_queries
        self.registry = registry
        self.http_allowlist = list(http_allowlist)
        self.conninfo = conninfo
        self.on_written = on_written
        self.queue = queue
        self.run_worker = run_worker
        self.worker_concurrency = max(1, worker_concurrency)
        self.chunk_items = chunk_items
        self.stalled_seconds = stalled_seconds
        self.connect_timeout = connect_timeout
        # The chunks executing in this process, per run.
        self.executors: dict[UUID, set[RunExecutor]] = {}
        self.futures: dict[UUID, Future[None]] = {}
        self.max_pause = RETRY_MAX_PAUSE
        # Why a run is not going on, while it waits to be tried again (`statusReason`).
        self.waiting: dict[UUID, dict[str, Any]] = {}
        # Runs cancelled here (actor, reason): a retry records the cancellation, never runs them again.
        self.cancelling: dict[UUID, tuple[str, str | None]] = {}
        # Per run executing here: its live progress, and what stops its waiting chunks.
        self.progresses: dict[UUID, Progress] = {}
        self.stops: dict[UUID, asyncio.Event] = {}
        # Per run executing here: the executor its chunks share (local_run.py).
        self.locals: dict[UUID, LocalRun] = {}
        self.worker_error: str | None = None  # why the worker is not taking jobs, if it is not
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._serve, name="run-scheduler", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def start_worker(self) -> None:
        """Take chunks from the queue in this process (until stop())."""
        self.start()
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._work(), self._loop)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        """Stop executing (unfinished chunks go back to the queue and resume on the next start)."""
        loop = self._loop
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_cancel_everything(), loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - stopping goes on regardless
            log.exception("run executions did not all stop in time")
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None
        self._thread = None
        self._ready.clear()

    def _retrying(self, run_id: UUID) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception(_worth_retrying),
            wait=wait_random_exponential(multiplier=0.25, max=self.max_pause),
            before_sleep=lambda state: self._note_waiting(run_id, state),
            reraise=True,
        )

    # -- the worker -------------------------------------------------------------------------

    async def _work(self) -> None:
        """procrastinate's worker, and beside it the stalled-chunk, sweep and cancellation
        loops; started again after a pause if the database stops it."""
        pause = 0.5
        while True:
            try:
                async with self.queue.app.open_async():
                    side = [asyncio.create_task(loop()) for loop in (self._recover_stalled, self._sweep_forever,
                                                                    self._watch_cancels)]
                    try:
                        self.worker_error = None
                        await self.queue.app.run_worker_async(
                            queues=[QUEUE], name="evalledger", concurrency=self.worker_concurrency,
                            install_signal_handlers=False, listen_notify=True,
                            fetch_job_polling_interval=FETCH_POLL, update_heartbeat_interval=HEARTBEAT_SECONDS,
                            stalled_worker_timeout=self.stalled_seconds,
                            additional_context={"handler": self.execute_chunk},
                        )
                    finally:
                        for task in side:
                            task.cancel()
                        await asyncio.gather(*side, return_exceptions=True)
                pause = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the worker goes on once the cause has gone
                self.worker_error = error_text(error)
                log.warning("the run worker stopped (%s); starting again in %.1f s", self.worker_error, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.max_pause)

    async def _recover_stalled(self) -> None:
        while True:
            await asyncio.sleep(STALLED_POLL)
            try:
                await self.queue.retry_stalled(self.stalled_seconds)
            except Exception:  # noqa: BLE001 - tried again in a second
                log.exception("looking for stalled chunks failed")

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - tried again at the next sweep
                log.exception("the sweep of unfinished runs failed")
            await asyncio.sleep(SWEEP_SECONDS)

    async def _watch_cancels(self) -> None:
        """A run that finished elsewhere (cancelled, most often) stops here within CANCEL_POLL."""
        while True:
            await asyncio.sleep(CANCEL_POLL)
            for run_id in list(set(self.executors) | set(self.stops)):
                try:
                    status = (await asyncio.to_thread(self.run_queries.run_row, run_id))["status"]
                except Exception:  # noqa: BLE001 - looked at again shortly
                    continue
                if status in FINISHED:
                    self._stop_local(run_id, actor="runner", reason=None)

    def _stop_local(self, run_id: UUID, *, actor: str, reason: str | None) -> None:
        stop = self.stops.get(run_id)
        if stop is not None:
            stop.set()
        for executor in list(self.executors.get(run_id, ())):
            executor.cancel(actor=actor, reason=reason)

    # -- deferring runs ---------------------------------------------------------------------------

    def launch(self, run_id: UUID) -> None:
        """Put the run's chunks in the queue (in the background, retried until it works)."""
        if self._loop is None:
            self.start()
        assert self._loop is not None
        if run_id in self.futures and not self.futures[run_id].done():
            return
        future = asyncio.run_coroutine_threadsafe(self._enqueue(run_id), self._loop)
        future.add_done_callback(lambda done: self._ended(run_id, done))
        self.futures[run_id] = future

    def _ended(self, run_id: UUID, future: Future[None]) -> None:
        """Log how an attempt ended if it failed: nobody else reads the future."""
        self.futures.pop(run_id, None)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.waiting.pop(run_id, None)
            log.error("run %s: it could not be queued and is not tried again", run_id, exc_info=error)

    async def _enqueue(self, run_id: UUID) -> None:
        async for attempt in self._retrying(run_id):
            with attempt:
                await asyncio.to_thread(self._defer_missing, run_id)
        if not self.executors.get(run_id):
            self.waiting.pop(run_id, None)

    def _defer_missing(self, run_id: UUID) -> None:
        """Defer each chunk of the run that has no job waiting, running or done; finish the
        run if every chunk is done."""
        run = self.runs.get_run(run_id)
        if run.status in FINISHED or run.target is None:
            return
        with self.runs.factory.datastore.get_connection() as conn:
            jobs = self.queue.chunk_jobs(conn, run_id)
        size = jobs[0][1] if jobs else chunk_items(run.total_items, self.chunk_items)
        count = chunk_count(run.total_items, size)
        covered = {chunk for chunk, each, status in jobs if each == size and status in ("todo", "doing", "succeeded")}
        missing = [chunk for chunk in range(count) if chunk not in covered]
        if missing:
            if len(missing) == count or not all(status == "succeeded" for _, _, status in jobs):
                self.queue.defer_chunks(run_id, missing, size)
                return
        if not finish_if_done(self.runs, run_id, self.on_written) and not any(
                status in ("todo", "doing") for _, _, status in jobs):
            # Every chunk ran, yet results are missing: run them all again (recorded ones are skipped).
            self.queue.defer_chunks(run_id, list(range(count)), size)

    def resume_unfinished(self) -> list[UUID]:
        """Make sure every unfinished run with a target has its chunks in the queue."""
        run_ids = self.run_queries.unfinished_target_runs()
        if self._loop is None:
            self.start()
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.sweep(), self._loop)
        return run_ids

    async def sweep(self) -> None:
        for run_id in await asyncio.to_thread(self.run_queries.unfinished_target_runs):
            if run_id in self.futures:
                continue
            try:
                await asyncio.to_thread(self._defer_missing, run_id)
            except DomainError:
                continue

    # -- executing a chunk (the job) ------------------------------------------------------------

    async def execute_chunk(self, run_id: UUID, chunk: int, size: int) -> None:
        """Execute one chunk, trying again after whatever stops it that may pass."""
        async for attempt in self._retrying(run_id):
            with attempt:
                await self._execute_chunk_once(run_id, chunk, size)

    def _note_waiting(self, run_id: UUID, state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        error = state.outcome.exception()
        pause = state.next_action.sleep
        now = datetime.now(UTC)
        reason = f"{type(error).__name__}: {error}".strip()
        log.warning("run %s could not start or go on (attempt %d): %s; trying again in %.1f s",
                    run_id, state.attempt_number, reason, pause, exc_info=error if state.attempt_number == 1 else None)
        previous = self.waiting.get(run_id, {})
        self.waiting[run_id] = {"reason": reason, "attempts": max(state.attempt_number, previous.get("attempts", 0)),
                                "since": previous.get("since", now.isoformat()),
                                "nextAttemptAt": (now + timedelta(seconds=pause)).isoformat()}

    async def _execute_chunk_once(self, run_id: UUID, chunk: int, size: int) -> None:
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
            self.waiting.pop(run_id, None)
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

    # -- cancel, status, progress -----------------------------------------------------------------

    def cancel(self, run_id: UUID, *, actor: str, reason: str | None, timeout: float = 30.0) -> bool:
        """Cancel a run's chunks executing here and wait until the cancellation is recorded
        (chunks executing elsewhere stop when they see it). Returns False when no chunk
        of the run executes in this process."""
        executors = list(self.executors.get(run_id, ()))
        if not executors or self._loop is None:
            return False
        done = threading.Event()

        def request() -> None:
            self._stop_local(run_id, actor=actor, reason=reason)
            waits = [asyncio.ensure_future(executor.finished.wait()) for executor in executors]
            asyncio.ensure_future(asyncio.gather(*waits)).add_done_callback(lambda _: done.set())

        self._loop.call_soon_threadsafe(request)
        done.wait(timeout)
        return self.runs.get_run(run_id).status in FINISHED

    def status_reason(self, run_id: UUID) -> dict[str, Any] | None:
        """Why the run is not going on: this process waits to try it again, or no worker
        is running to take its chunks."""
        reason = self.waiting.get(run_id)
        if reason is not None:
            return dict(reason)
        if self.run_worker and self.worker_error is None:
            return None
        if self.executors.get(run_id):
            return None
        now = datetime.now(UTC)
        try:
            with self.runs.factory.datastore.get_connection() as conn:
                if self.queue.live_workers(conn, self.stalled_seconds):
                    return None
            reason = ("no worker is running to take the run's chunks: start `evalledger worker` (or `evalledger "
                      "serve` without --no-worker); the run goes on when one starts")
        except Exception as error:  # noqa: BLE001 - the answer says what it can
            reason = f"the job queue cannot be read: {error_text(error)}"
        # Looked at again on every read of the run.
        return {"reason": reason, "attempts": 0, "since": now.isoformat(), "nextAttemptAt": now.isoformat()}

    def progress(self, run_id: UUID) -> LiveProgress | None:
        executors = self.executors.get(run_id)
        progress = self.progresses.get(run_id)
        if not executors or progress is None:
            return None
        return progress.snapshot(next(iter(executors)).expected_results)
