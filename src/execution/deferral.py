"""Deferring a run's chunks to the job queue (`jobs.py`): each chunk that has no job
waiting, running or done gets one, at the run's start and at every sweep, so that a run
whose jobs were lost (or that a process left unfinished) goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future
from uuid import UUID

from evalledger.domain.errors import DomainError
from evalledger.domain.runs import FINISHED
from evalledger.execution.chunks import ChunkExecution, finish_if_done
from evalledger.execution.jobs import SWEEP_SECONDS, JobQueue, chunk_count, chunk_items
from evalledger.execution.retries import RunRetries
from evalledger.projections.run_queries import RunQueries
from evalledger.service_layer.applications import Runs, Written

log = logging.getLogger(__name__)


class ChunkDeferral:
    def __init__(self, *, runs: Runs, run_queries: RunQueries, queue: JobQueue, chunk_items: int,
                 on_written: Callable[[Written], None], retries: RunRetries, chunks: ChunkExecution) -> None:
        self.runs = runs
        self.run_queries = run_queries
        self.queue = queue
        self.chunk_items = chunk_items
        self.on_written = on_written
        self.retries = retries
        self.chunks = chunks
        # The runs being deferred in the background (launch()), which the sweep leaves to it.
        self.futures: dict[UUID, Future[None]] = {}

    def launch(self, run_id: UUID, loop: asyncio.AbstractEventLoop) -> None:
        """Put the run's chunks in the queue (in the background, retried until it works)."""
        if run_id in self.futures and not self.futures[run_id].done():
            return
        future = asyncio.run_coroutine_threadsafe(self._enqueue(run_id), loop)
        future.add_done_callback(lambda done: self._ended(run_id, done))
        self.futures[run_id] = future

    def _ended(self, run_id: UUID, future: Future[None]) -> None:
        """Log how an attempt ended if it failed: nobody else reads the future."""
        self.futures.pop(run_id, None)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.retries.waiting.pop(run_id, None)
            log.error("run %s: it could not be queued and is not tried again", run_id, exc_info=error)

    async def _enqueue(self, run_id: UUID) -> None:
        async for attempt in self.retries.retrying(run_id):
            with attempt:
                await asyncio.to_thread(self.defer_missing, run_id)
        if not self.chunks.executors.get(run_id):
            self.retries.waiting.pop(run_id, None)

    def defer_missing(self, run_id: UUID) -> None:
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

    async def sweep(self) -> None:
        for run_id in await asyncio.to_thread(self.run_queries.unfinished_target_runs):
            if run_id in self.futures:
                continue
            try:
                await asyncio.to_thread(self.defer_missing, run_id)
            except DomainError:
                continue

    async def sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - tried again at the next sweep
                log.exception("the sweep of unfinished runs failed")
            await asyncio.sleep(SWEEP_SECONDS)
