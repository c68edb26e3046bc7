"""Runs server-side runs: defers their chunks to the job queue (`deferral.py`) and, in a
process that runs a worker, executes chunks taken from it (`chunks.py`), in one asyncio
loop in a thread of the process.

A run that cannot start or go on is tried again until it can (`retries.py`); a run that
waits because no worker is running says so too (`status_reason`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

from evalledger.domain.runs import FINISHED
from evalledger.execution.chunks import ChunkExecution
from evalledger.execution.deferral import ChunkDeferral
from evalledger.execution.jobs import FETCH_POLL, HEARTBEAT_SECONDS, QUEUE, STALLED_POLL, JobQueue
from evalledger.execution.progress import LiveProgress
from evalledger.execution.registry import Registry
from evalledger.execution.retries import RunRetries
from evalledger.execution.runner import error_text
from evalledger.projections.dataset_queries import DatasetQueries
from evalledger.projections.run_queries import RunQueries, StatusReason
from evalledger.service_layer.applications import Runs, Written

log = logging.getLogger(__name__)

# Seconds to wait for PostgreSQL to accept the run's lock connection.
CONNECT_TIMEOUT = 10


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
        queue: JobQueue,
        run_worker: bool = True,
        worker_concurrency: int = 4,
        chunk_items: int = 0,
        stalled_seconds: float = 10.0,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.runs = runs
        self.run_queries = run_queries
        self.queue = queue
        self.run_worker = run_worker
        self.worker_concurrency = max(1, worker_concurrency)
        self.stalled_seconds = stalled_seconds
        self.retries = RunRetries()
        self.chunks = ChunkExecution(
            runs=runs, run_queries=run_queries, dataset_queries=dataset_queries, registry=registry,
            http_allowlist=http_allowlist, conninfo=conninfo, on_written=on_written, retries=self.retries,
            connect_timeout=connect_timeout,
        )
        self.deferral = ChunkDeferral(runs=runs, run_queries=run_queries, queue=queue, chunk_items=chunk_items,
                                      on_written=on_written, retries=self.retries, chunks=self.chunks)
        self.worker_error: str | None = None  # why the worker is not taking jobs, if it is not
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def max_pause(self) -> float:
        """The longest pause between attempts (to start a run, or the worker again)."""
        return self.retries.max_pause

    @max_pause.setter
    def max_pause(self, value: float) -> None:
        self.retries.max_pause = value

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

    # -- the worker -------------------------------------------------------------------------

    async def _work(self) -> None:
        """procrastinate's worker, and beside it the stalled-chunk, sweep and cancellation
        loops; started again after a pause if the database stops it."""
        pause = 0.5
        while True:
            try:
                async with self.queue.app.open_async():
                    side = [asyncio.create_task(loop()) for loop in (self._recover_stalled, self.deferral.sweep_forever,
                                                                    self.chunks.watch_cancels)]
                    try:
                        self.worker_error = None
                        await self.queue.app.run_worker_async(
                            queues=[QUEUE], name="evalledger", concurrency=self.worker_concurrency,
                            install_signal_handlers=False, listen_notify=True,
                            fetch_job_polling_interval=FETCH_POLL, update_heartbeat_interval=HEARTBEAT_SECONDS,
                            stalled_worker_timeout=self.stalled_seconds,
                            additional_context={"handler": self.chunks.execute},
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

    # -- deferring runs ---------------------------------------------------------------------------

    def launch(self, run_id: UUID) -> None:
        """Put the run's chunks in the queue (in the background, retried until it works)."""
        if self._loop is None:
            self.start()
        assert self._loop is not None
        self.deferral.launch(run_id, self._loop)

    def resume_unfinished(self) -> list[UUID]:
        """Make sure every unfinished run with a target has its chunks in the queue."""
        run_ids = self.run_queries.unfinished_target_runs()
        if self._loop is None:
            self.start()
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.deferral.sweep(), self._loop)
        return run_ids

    # -- cancel, status, progress -----------------------------------------------------------------

    def cancel(self, run_id: UUID, *, actor: str, reason: str | None, timeout: float = 30.0) -> bool:
        """Cancel a run's chunks executing here and wait until the cancellation is recorded
        (chunks executing elsewhere stop when they see it). Returns False when no chunk
        of the run executes in this process."""
        executors = list(self.chunks.executors.get(run_id, ()))
        if not executors or self._loop is None:
            return False
        done = threading.Event()

        def request() -> None:
            self.chunks.stop_here(run_id, actor=actor, reason=reason)
            waits = [asyncio.ensure_future(executor.finished.wait()) for executor in executors]
            asyncio.ensure_future(asyncio.gather(*waits)).add_done_callback(lambda _: done.set())

        self._loop.call_soon_threadsafe(request)
        done.wait(timeout)
        return self.runs.get_run(run_id).status in FINISHED

    def status_reason(self, run_id: UUID) -> StatusReason | None:
        """Why the run is not going on: this process waits to try it again, or no worker
        is running to take its chunks."""
        waiting = self.retries.waiting.get(run_id)
        if waiting is not None:
            return replace(waiting)
        if self.run_worker and self.worker_error is None:
            return None
        if self.chunks.executors.get(run_id):
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
        return StatusReason(reason=reason, attempts=0, since=now, next_attempt_at=now)

    def progress(self, run_id: UUID) -> LiveProgress | None:
        return self.chunks.progress(run_id)
