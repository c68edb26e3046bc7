"""Drives one run: items -> target -> scorers -> batched result events.

Shape (all in one asyncio loop):
- a producer pages through the pinned version's items and queues (item, repetition)
  pairs not yet recorded — a bounded queue, so memory stays flat however many items;
- `maxConcurrency` workers each take a pair, call the target (per-item timeout enforced
  by not waiting any longer — a target that ignores cancellation cannot hold the run;
  retries with exponential backoff and jitter for transient errors only, see
  `targets.is_transient`), then run every scorer concurrently, each within its own timeout
  (a failing or overrunning scorer gives `score: null` with its error);
- one writer batches finished results and hands each batch to the run's `ResultSink`
  (one writer per run: no optimistic-concurrency conflicts; one save per batch, not per
  item). In the service the sink is `RunsSink` (recording.py: `ResultsRecorded` events of the Runs
  application); `evaluate()` in a caller's process has one that submits to the
  caller-driven results API (evalledger.sdk.sinks), so both run the same code.

Cancelling stops the producer, abandons in-flight calls, records what finished, then
records the cancellation. A run that was interrupted (the process died) is started
again by the scheduler; the aggregate knows which (item, repetition) are recorded, so
none is executed again once recorded, and none is recorded twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from evalledger.domain.runs import RunSettings
from evalledger.domain.storable import problems
from evalledger.execution.progress import Progress
from evalledger.execution.recording import ExecutedResult, ResultSink
from evalledger.execution.registry import TargetContext
from evalledger.execution.scorers import ScoreInput, Scorer
from evalledger.execution import tracing
from evalledger.execution.targets import Target, TargetOutput, TargetTimeoutError, is_transient, read_usage

log = logging.getLogger(__name__)

# Results per event, and the longest a finished result waits before it is written.
FLUSH_SIZE = 500
FLUSH_INTERVAL = 0.2
BACKOFF_BASE = 0.1
BACKOFF_CAP = 5.0


@dataclass(slots=True)
class RunItem:
    """What the runner reads of an item. The service hands it the projection's ItemView,
    which has these fields and more; the SDK builds these from a remote dataset's items."""

    id: Any
    input: Any
    expected_output: Any
    metadata: dict[str, Any] | None


ItemPages = Callable[[], Iterator[list[Any]]]  # pages of RunItem-like items
# More (item, repetition) pairs for a running executor and how many more workers to run
# them with; called in the executor's loop, it answers ([], 0) once, when it takes no more
# (the scheduler's chunks of one run share one executor this way, see local_run.py).
MoreWork = Callable[[], tuple[list[tuple[Any, int]], int]]


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter: up to base * 2**attempt, capped."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)


def error_text(error: BaseException) -> str:
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class ScorerTimeoutError(Exception):
    pass


async def within(seconds: float, awaitable: Any, timeout_error: type[Exception], what: str) -> Any:
    """Await `awaitable` for at most `seconds`; past that, cancel it and stop waiting even
    if it refuses to stop."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:  # the run was cancelled: abandon the call too
        task.cancel()
        task.add_done_callback(_consume_result)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_consume_result)
        raise timeout_error(f"{what} timed out after {int(seconds * 1000)} ms")
    return task.result()


def _consume_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class RunExecutor:
    def __init__(
        self,
        *,
        run_id: UUID,
        dataset_id: UUID,
        dataset_version: int,
        settings: RunSettings,
        target: Target,
        scorers: list[Scorer],
        sink: ResultSink,
        item_pages: ItemPages,
        expected_results: int,
        on_worker_done: Callable[[], Awaitable[None]] | None = None,
        more_work: MoreWork | None = None,
    ) -> None:
        self.run_id = run_id
        self.dataset_id = dataset_id
        self.dataset_version = dataset_version
        self.settings = settings
        self.target = target
        self.scorers = scorers
        self.sink = sink
        self.item_pages = item_pages
        self.expected_results = expected_results
        # Called as each of the `maxConcurrency` workers finds no more work (a chunk gives
        # its slot back to the run at once, see slots.py).
        self.on_worker_done = on_worker_done
        # Asked, once the pages are queued, for more pairs and more workers (slots) until it
        # answers nothing (see MoreWork).
        self.more_work = more_work
        self._workers: list[asyncio.Task[None]] = []
        self.progress = Progress()
        self.cancel_requested = asyncio.Event()
        self.cancel_reason: str | None = None
        self.cancel_actor = "anonymous"
        self.finished = asyncio.Event()

    # -- the whole run ----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except Exception as error:  # noqa: BLE001 - record the failure on the run itself
            log.exception("run %s crashed", self.run_id)
            text = error_text(error)
            try:
                await asyncio.to_thread(self.sink.finish, text)
            except Exception:  # noqa: BLE001
                log.exception("run %s: could not record the failure", self.run_id)
        finally:
            await self._close()
            self.finished.set()

    async def _run(self) -> None:
        outcomes = await asyncio.to_thread(self.sink.recorded)
        recorded = set(outcomes)
        self.progress.resume(len(recorded), sum(1 for ok in outcomes.values() if not ok))
        await asyncio.to_thread(self.sink.start)

        pairs: asyncio.Queue[tuple[Any, int] | None] = asyncio.Queue(
            maxsize=self.settings.max_concurrency * 4
        )
        results: asyncio.Queue[ExecutedResult | None] = asyncio.Queue()
        self._workers = [asyncio.create_task(self._work(pairs, results))
                         for _ in range(self.settings.max_concurrency)]
        producer = asyncio.create_task(self._produce(pairs, results, recorded))
        writer = asyncio.create_task(self._write_results(results))
        cancel_wait = asyncio.create_task(self.cancel_requested.wait())

        everything = asyncio.ensure_future(self._until_done(producer))
        await asyncio.wait({everything, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
        if self.cancel_requested.is_set():
            producer.cancel()
            for worker in self._workers:
                worker.cancel()
            everything.cancel()
            await asyncio.gather(everything, producer, *self._workers, return_exceptions=True)
        else:
            cancel_wait.cancel()
            everything.result()
        await results.put(None)
        await writer
        if self.cancel_requested.is_set():
            await asyncio.to_thread(self.sink.cancel, self.cancel_actor, self.cancel_reason)
        else:
            await asyncio.to_thread(self.sink.finish, None)

    def cancel(self, *, actor: str, reason: str | None) -> None:
        """Ask the run to stop (call in the executor's loop)."""
        self.cancel_actor = actor
        self.cancel_reason = reason
        self.cancel_requested.set()

    async def _close(self) -> None:
        for resource in (self.target, *self.scorers):
            close = getattr(resource, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # noqa: BLE001
                    log.exception("run %s: closing %s failed", self.run_id, resource)

    # -- producer, workers, writer -------------------------------------------------------------

    async def _until_done(self, producer: asyncio.Task[None]) -> None:
        """Until the producer and every worker (those it added too) are done; the first
        failure of any of them is raised at once."""
        while True:
            tasks = [producer, *self._workers]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    task.result()
            if not pending and len(tasks) == 1 + len(self._workers):
                return

    async def _produce(self, pairs: asyncio.Queue[tuple[Any, int] | None],
                       results: asyncio.Queue[ExecutedResult | None], recorded: set[str]) -> None:
        pages = self.item_pages()
        while True:
            page = await asyncio.to_thread(next, pages, None)
            if page is None:
                break
            for repetition in range(self.settings.repetitions):
                for item in page:
                    if f"{item.id}#{repetition}" not in recorded:
                        await pairs.put((item, repetition))
        while self.more_work is not None:
            more, workers = self.more_work()
            for _ in range(workers):
                self._workers.append(asyncio.create_task(self._work(pairs, results)))
            if not more and not workers:
                break
            for item, repetition in more:
                if f"{item.id}#{repetition}" not in recorded:
                    await pairs.put((item, repetition))
        for _ in range(len(self._workers)):
            await pairs.put(None)

    async def _work(self, pairs: asyncio.Queue[tuple[Any, int] | None],
                    results: asyncio.Queue[ExecutedResult | None]) -> None:
        while True:
            pair = await pairs.get()
            if pair is None:
                if self.on_worker_done is not None:
                    await self.on_worker_done()
                return
            item, repetition = pair
            result = await self.execute(item, repetition)
            await results.put(result)

    async def _write_results(self, results: asyncio.Queue[ExecutedResult | None]) -> None:
        batch: list[ExecutedResult] = []
        deadline = time.monotonic() + FLUSH_INTERVAL
        closing = False
        while not closing:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                result = await asyncio.wait_for(results.get(), timeout=timeout)
            except TimeoutError:
                result = ...
            if result is None:
                closing = True
            elif result is not ...:
                batch.append(result)
            if batch and (closing or len(batch) >= FLUSH_SIZE or time.monotonic() >= deadline):
                chunk, batch = batch, []
                await asyncio.to_thread(self.sink.record, chunk)
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + FLUSH_INTERVAL

    # -- one item ----------------------------------------------------------------------------------

    async def execute(self, item: Any, repetition: int) -> ExecutedResult:
        """One item and repetition, in a span of its own (tracing.py) whose ids the result keeps."""
        attributes = {"evalledger.run_id": str(self.run_id), "evalledger.dataset_id": str(self.dataset_id),
                      "evalledger.dataset_version": self.dataset_version, "evalledger.item_id": str(item.id),
                      "evalledger.repetition": repetition}
        with tracing.span("evalledger.item", attributes) as item_span:
            result = await self._execute(item, repetition)
            if result.error is not None:
                tracing.failed(item_span, result.error)
        trace_id, span_id = tracing.span_ids(item_span)
        if trace_id is not None:
            result.trace_id, result.span_id = trace_id, span_id
        return result

    async def _execute(self, item: Any, repetition: int) -> ExecutedResult:
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        timeout = self.settings.item_timeout_ms / 1000
        output: TargetOutput | None = None
        error: str | None = None
        retry_errors: list[str] = []
        attempts = 0
        for attempt in range(self.settings.max_retries + 1):
            attempts = attempt + 1
            context = TargetContext(
                run_id=str(self.run_id),
                dataset_id=str(self.dataset_id),
                dataset_version=self.dataset_version,
                item_id=str(item.id),
                repetition=repetition,
                attempt=attempts,
                expected_output=item.expected_output,
                metadata=item.metadata or {},
            )
            try:
                with tracing.span("evalledger.target", {"evalledger.attempt": attempts}):
                    output = await within(timeout, self.target.invoke(item.input, context), TargetTimeoutError,
                                          "target")
                error = None
                break
            except Exception as failure:  # noqa: BLE001 - the target's error is the item's answer
                error = error_text(failure)
                if not is_transient(failure):
                    break
                if attempt < self.settings.max_retries:
                    retry_errors.append(error)
                    await asyncio.sleep(backoff_delay(attempt))
        latency_ms = (time.perf_counter() - started) * 1000
        if output is not None and (unstorable := problems(output.output, "output")):
            output, error = None, f"the target's output cannot be stored: {unstorable[0]['message']}"
        usage = None
        if output is not None:
            try:
                usage = read_usage(output.usage)
            except ValueError as invalid:
                output, error = None, f"the target's usage cannot be recorded: {invalid}"
        scores = await self._score(item, output.output if output is not None else None, error, timeout)
        scores = [s if not problems(s, "score") else {**s, "reason": None, "error": "the scorer's answer cannot be "
                  "stored", "score": None} for s in scores]
        self.progress.done += 1
        if error is not None:
            self.progress.failed += 1
        return ExecutedResult(
            item_id=str(item.id), repetition=repetition, output=output.output if output is not None else None,
            error=error, latency_ms=round(latency_ms, 3), attempts=attempts, retry_errors=retry_errors,
            trace_id=output.trace_id if output is not None else None, usage=usage, started_at=started_at,
            scores=scores,
        )

    async def _score(self, item: Any, output: Any, error: str | None, timeout: float) -> list[dict[str, Any]]:
        if not self.scorers:
            return []
        question = ScoreInput(
            input=item.input,
            output=output,
            expected_output=item.expected_output,
            metadata=item.metadata or {},
            error=error,
        )

        async def one(scorer: Scorer) -> dict[str, Any]:
            own = getattr(scorer, "timeout_ms", None)
            with tracing.span("evalledger.scorer", {"evalledger.scorer_id": scorer.id,
                                                    "evalledger.scorer": getattr(scorer, "name", None)}) as scoring:
                try:
                    answer = await within(own / 1000 if own else timeout, scorer.score(question), ScorerTimeoutError,
                                          f"scorer {scorer.id}")
                except Exception as failure:  # noqa: BLE001 - a failing scorer only affects itself
                    tracing.failed(scoring, error_text(failure))
                    return {"scorerId": scorer.id, "score": None, "reason": None, "error": error_text(failure)}
            scored = {"scorerId": scorer.id, "score": answer.score, "reason": answer.reason, "error": None}
            if getattr(answer, "usage", None) is not None:  # what scoring used (an LLM judge's tokens, cost)
                scored["usage"] = answer.usage
            return scored

        if len(self.scorers) == 1:
            return [await one(self.scorers[0])]
        return list(await asyncio.gather(*(one(scorer) for scorer in self.scorers)))
