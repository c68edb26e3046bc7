"""Where an executor learns what is recorded and records what it does: what one item and
repetition came to (`ExecutedResult`), the `ResultSink` protocol, and the service's sink,
`RunsSink` (commands of the Runs application). `evaluate()` in a caller's process has a sink
of its own (evalledger.sdk.sinks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from evalledger.service_layer.applications import Runs, Written


@dataclass(slots=True)
class ExecutedResult:
    """One item and repetition as the executor ran it: the target's output or error, how
    long it took, and each scorer's answer (as the events keep scores: `scorerId`, `score`,
    `reason`, `error`, and a judge's `usage`)."""

    item_id: str
    repetition: int
    output: Any
    error: str | None
    latency_ms: float
    attempts: int
    retry_errors: list[str]
    trace_id: str | None
    usage: dict[str, Any] | None
    started_at: datetime
    scores: list[dict[str, Any]]
    span_id: str | None = None  # with tracing on: the item's span (and `trace_id` its trace)

    def recorded(self) -> dict[str, Any]:
        """The result as a `ResultsRecorded` event keeps it (no span: no `spanId` key, as
        before spans existed)."""
        result = {"itemId": self.item_id, "repetition": self.repetition, "output": self.output, "error": self.error,
                  "latencyMs": self.latency_ms, "attempts": self.attempts, "retryErrors": self.retry_errors,
                  "traceId": self.trace_id, "usage": self.usage, "startedAt": self.started_at.isoformat(),
                  "scores": self.scores}
        if self.span_id is not None:
            result["spanId"] = self.span_id
        return result


class ResultSink(Protocol):
    """Where an executor learns what is recorded and records what it does. Every method
    is blocking; the executor calls them in a worker thread."""

    def recorded(self) -> dict[str, bool]:
        """The results recorded so far: "itemId#repetition" -> succeeded."""
        ...

    def start(self) -> None: ...

    def record(self, results: list[ExecutedResult]) -> None: ...

    def finish(self, error: str | None = None) -> None:
        """The run is done (`error`: it could not go on)."""
        ...

    def cancel(self, actor: str, reason: str | None) -> None: ...


@dataclass
class RunsSink:
    """The service's sink: commands of the Runs application, each write handed to
    `on_written` (the projections catch up with it). A target-driven run keeps the first
    result per (item, repetition), so a resumed run never records one twice."""

    runs: Runs
    run_id: UUID
    on_written: Callable[[Written], None]

    def _write(self, command: Callable[[], Written]) -> None:
        self.on_written(command())

    def recorded(self) -> dict[str, bool]:
        return dict(self.runs.get_run(self.run_id).outcomes)

    def start(self) -> None:
        self._write(lambda: self.runs.start_run(self.run_id))

    def record(self, results: list[ExecutedResult]) -> None:
        recorded = [result.recorded() for result in results]
        self._write(lambda: self.runs.record_results(self.run_id, recorded, upsert=False))

    def finish(self, error: str | None = None) -> None:
        self._write(lambda: self.runs.finish_run(self.run_id, error=error))

    def cancel(self, actor: str, reason: str | None) -> None:
        self._write(lambda: self.runs.cancel_run(self.run_id, actor=actor, reason=reason))
