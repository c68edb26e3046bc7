"""The result sink of `evaluate()`: the runner's batches go to the caller-driven results
API (over HTTP or in process, see backends.py), the run is finalized when every item is
done.

A run that stops early (Ctrl-C, a crash) is left open rather than cancelled or failed,
so that `evaluate(..., resume=run_id)` can go on with it: what was recorded stays, the
rest is executed then.
"""

from __future__ import annotations

from typing import Any

from evalledger.execution.recording import ExecutedResult
from evalledger.sdk.backends import Backend


def as_submission(result: ExecutedResult) -> dict[str, Any]:
    """A runner result as the results API takes it."""
    return {"itemId": result.item_id, "repetition": result.repetition, "output": result.output,
            "error": result.error, "latencyMs": result.latency_ms, "attempt": result.attempts,
            "traceId": result.trace_id, "spanId": result.span_id, "scores": result.scores,
            "usage": result.usage}


class CallerDrivenSink:
    def __init__(self, backend: Backend, run_id: str) -> None:
        self.backend = backend
        self.run_id = run_id
        self.finished = False
        self.error: str | None = None  # why the executor could not go on
        self.stopped: tuple[str, str | None] | None = None  # (actor, reason) of an early stop

    def recorded(self) -> dict[str, bool]:
        return {f"{r['itemId']}#{r['repetition']}": r["error"] is None
                for page in self.backend.result_pages(self.run_id) for r in page}

    def start(self) -> None:
        """Nothing to record: the first results mark a caller-driven run as running."""

    def record(self, results: list[ExecutedResult]) -> None:
        self.backend.submit(self.run_id, [as_submission(r) for r in results])

    def finish(self, error: str | None = None) -> None:
        if error is not None:
            self.error = error
            return
        self.backend.finalize(self.run_id)
        self.finished = True

    def cancel(self, actor: str, reason: str | None) -> None:
        self.stopped = (actor, reason)
