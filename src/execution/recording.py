"""Where an executor learns what is recorded and records what it does: the `ResultSink`
protocol, and the service's sink, `RunsSink` (commands of the Runs application). `evaluate()`
in a caller's process has a sink of its own (evalledger.sdk.sinks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from evalledger.service_layer.applications import Runs, Written


class ResultSink(Protocol):
    """Where an executor learns what is recorded and records what it does. Every method
    is blocking; the executor calls them in a worker thread."""

    def recorded(self) -> dict[str, bool]:
        """The results recorded so far: "itemId#repetition" -> succeeded."""
        ...

    def start(self) -> None: ...

    def record(self, results: list[dict[str, Any]]) -> None: ...

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

    def record(self, results: list[dict[str, Any]]) -> None:
        self._write(lambda: self.runs.record_results(self.run_id, results, upsert=False))

    def finish(self, error: str | None = None) -> None:
        self._write(lambda: self.runs.finish_run(self.run_id, error=error))

    def cancel(self, actor: str, reason: str | None) -> None:
        self._write(lambda: self.runs.cancel_run(self.run_id, actor=actor, reason=reason))
