"""A running executor's live counters: what it has done, how fast, and how long it expects to
go on. The service shows them on the run (`progress`, while this process executes it) ahead
of the read model, which lags by a flush; `evaluate()` shows them as a bar."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Live counters of a running executor (the read model lags by a flush)."""

    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    # Results recorded before this executor started (a resumed run): part of `done`, but
    # not of the rate, which is this executor's own.
    done_before: int = 0

    def resume(self, done: int, failed: int) -> None:
        """Start counting, with `done` results (`failed` of them failed) already recorded."""
        self.done = self.done_before = done
        self.failed = failed
        self.started = time.monotonic()

    def snapshot(self, total: int) -> LiveProgress:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (self.done - self.done_before) / elapsed
        remaining = max(0, total - self.done)
        return LiveProgress(done=self.done, failed=self.failed, total=total,
                            fraction=self.done / total if total else 1.0, items_per_second=round(rate, 2),
                            eta_seconds=round(remaining / rate, 1) if rate > 0 else None)


@dataclass(slots=True)
class LiveProgress:
    """Where a running executor is: its counters, its rate and the time it expects to need."""

    done: int
    failed: int
    total: int
    fraction: float
    items_per_second: float
    eta_seconds: float | None
