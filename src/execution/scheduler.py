"""Runs executors in the background: one asyncio loop in a thread of the service.

Each executing run holds a PostgreSQL advisory lock on a connection of its own for as
long as it runs, so that when several service processes resume unfinished runs after a
restart, each run is executed by exactly one of them.

A run that cannot start or go on (the database refuses a connection, say) is not given
up: the failure is logged, shown on the run (`statusReason`) and tried again after a
random, growing pause, for as long as it takes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from evalledger.service_layer.applications import Runs, Written
from evalledger.domain.errors import DomainError
from evalledger.domain.runs import FINISHED, Run
from evalledger.execution.registry import Registry
from evalledger.execution.runner import RunExecutor, RunsSink, error_text
from evalledger.execution.scorers import build_scorer
from evalledger.execution.targets import build_target
from evalledger.projections.dataset_queries import DatasetQueries
from evalledger.projections.run_queries import RunQueries

log = logging.getLogger(__name__)

# The longest pause between attempts to start (or go on with) a run.
RETRY_MAX_PAUSE = 30.0
# Seconds to wait for PostgreSQL to accept the run's lock connection.
CONNECT_TIMEOUT = 10


class RunInterruptedError(RuntimeError):
    """The executor stopped before the run was finished (it could not record how it ended)."""


def _lock_key(run_id: UUID) -> int:
    return zlib.crc32(b"evalledger-run:" + run_id.bytes) - 2**31


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
    ) -> None:
        self.runs = runs
        self.run_queries = run_queries
        self.dataset_queries = dataset_queries
        self.registry = registry
        self.http_allowlist = list(http_allowlist)
        self.conninfo = conninfo
        self.on_written = on_written
        self.executors: dict[UUID, RunExecutor] = {}
        self.futures: dict[UUID, Future[None]] = {}
        self.max_pause = RETRY_MAX_PAUSE
        # Why a run is not going on, while it waits to be tried again (`statusReason`).
        self.waiting: dict[UUID, dict[str, Any]] = {}
        # Runs cancelled here (actor, reason): a retry records the cancellation, never runs them again.
        self.cancelling: dict[UUID, tuple[str, str | None]] = {}
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

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        """Stop executing (unfinished runs stay unfinished and resume on the next start)."""
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

    # -- runs -------------------------------------------------------------------------------

    def launch(self, run_id: UUID) -> None:
        if self._loop is None:
            self.start()
        assert self._loop is not None
        if run_id in self.futures and not self.futures[run_id].done():
            return
        future = asyncio.run_coroutine_threadsafe(self._execute(run_id), self._loop)
        future.add_done_callback(lambda done: self._ended(run_id, done))
        self.futures[run_id] = future

    def _ended(self, run_id: UUID, future: Future[None]) -> None:
        """Log how an execution ended if it failed: nobody else reads the future."""
        self.waiting.pop(run_id, None)
        self.cancelling.pop(run_id, None)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.error("run %s: its execution ended with an error and is not tried again", run_id,
                      exc_info=error)

    def resume_unfinished(self) -> list[UUID]:
        run_ids = self.run_queries.unfinished_target_runs()
        for run_id in run_ids:
            self.launch(run_id)
        return run_ids

    async def _execute(self, run_id: UUID) -> None:
        """Execute the run, trying again after whatever stops it that may pass."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(_worth_retrying),
            wait=wait_random_exponential(multiplier=0.25, max=self.max_pause),
            before_sleep=lambda state: self._note_waiting(run_id, state),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._execute_once(run_id)

    def _note_waiting(self, run_id: UUID, state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        error = state.outcome.exception()
        pause = state.next_action.sleep
        now = datetime.now(UTC)
        reason = f"{type(error).__name__}: {error}".strip()
        log.warning("run %s could not start or go on (attempt %d): %s; trying again in %.1f s",
                    run_id, state.attempt_number, reason, pause, exc_info=error if state.attempt_number == 1 else None)
        since = self.waiting.get(run_id, {}).get("since", now.isoformat())
        self.waiting[run_id] = {"reason": reason, "attempts": state.attempt_number, "since": since,
                                "nextAttemptAt": (now + timedelta(seconds=pause)).isoformat()}

    async def _execute_once(self, run_id: UUID) -> None:
        lock_conn = await asyncio.to_thread(psycopg.connect, self.conninfo, autocommit=True,
                                            connect_timeout=CONNECT_TIMEOUT)
        try:
            got = await asyncio.to_thread(
                lambda: lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(run_id),)).fetchone())
            if not got or not got[0]:
                log.info("run %s is executed by another process", run_id)
                return
            run = await asyncio.to_thread(self.runs.get_run, run_id)
            if run.status in FINISHED or run.target is None:
                return
            if run_id in self.cancelling:  # cancelled here, but that could not be recorded
                actor, reason = self.cancelling[run_id]
                self.on_written(await asyncio.to_thread(self.runs.cancel_run, run_id, actor=actor, reason=reason))
                return
            try:
                executor = self._executor(run_id, run)
            except Exception as error:  # noqa: BLE001 - e.g. its target is no longer registered
                log.exception("run %s cannot start", run_id)
                written = await asyncio.to_thread(self.runs.finish_run, run_id, error=error_text(error))
                self.on_written(written)
                return
            self.waiting.pop(run_id, None)
            self.executors[run_id] = executor
            try:
                await executor.run()
            finally:
                self.executors.pop(run_id, None)
                if executor.cancel_requested.is_set():
                    self.cancelling[run_id] = (executor.cancel_actor, executor.cancel_reason)
            # The executor records how the run ended, unless that failed too.
            if (await asyncio.to_thread(self.runs.get_run, run_id)).status not in FINISHED:
                raise RunInterruptedError("the run's executor stopped before the run finished")
        finally:
            await asyncio.to_thread(lock_conn.close)

    def _executor(self, run_id: UUID, run: Run) -> RunExecutor:
        dataset_id = UUID(run.dataset_id)
        return RunExecutor(
            run_id=run_id,
            dataset_id=dataset_id,
            dataset_version=run.dataset_version,
            settings=run.run_settings,
            target=build_target(run.target or {}, self.registry, http_allowlist=self.http_allowlist,
                                result_row=self.run_queries.result_row),
            scorers=[build_scorer(spec, self.registry, http_allowlist=self.http_allowlist) for spec in run.scorers],
            sink=RunsSink(self.runs, run_id, self.on_written),
            item_pages=lambda: self.dataset_queries.iter_item_pages(dataset_id, run.dataset_version),
            expected_results=run.expected_results,
        )

    def cancel(self, run_id: UUID, *, actor: str, reason: str | None, timeout: float = 30.0) -> bool:
        """Cancel a run executing here and wait until the cancellation is recorded.
        Returns False when the run is not executing in this process."""
        executor = self.executors.get(run_id)
        if executor is None or self._loop is None:
            return False
        done = threading.Event()

        def request() -> None:
            executor.cancel(actor=actor, reason=reason)
            asyncio.ensure_future(executor.finished.wait()).add_done_callback(lambda _: done.set())

        self._loop.call_soon_threadsafe(request)
        done.wait(timeout)
        return True

    def status_reason(self, run_id: UUID) -> dict[str, Any] | None:
        """Why the run is not going on, while this process waits to try it again."""
        reason = self.waiting.get(run_id)
        return None if reason is None else dict(reason)

    def progress(self, run_id: UUID) -> dict[str, Any] | None:
        executor = self.executors.get(run_id)
        if executor is None:
            return None
        return executor.progress.as_wire(executor.expected_results)
