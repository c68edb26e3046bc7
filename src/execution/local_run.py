"""The chunks of one run that execute in this process at the same time share one executor.

The first chunk of a run to start here opens the run's `LocalRun`: one lock connection
(`slots.ChunkLease`), the run's slots it holds, and one `RunExecutor` (one writer, one
`start`, one `finish`). A chunk of the same run that starts while that executor still
takes work joins it instead of opening a connection and an executor of its own: it takes
its chunk lock on the shared connection, hands its (item, repetition) pairs to the
executor, takes any slots free for them without waiting (each one more worker), and waits
until the executor has ended. A chunk that comes after the executor stopped taking work
opens a new `LocalRun`.

So a run executed by one process behaves as one executor with `maxConcurrency` workers
(what a single process did before the job queue), while chunks executing in other
processes still share the run's slots through PostgreSQL (`slots.py`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from evalledger.execution.slots import ChunkLease

Pair = tuple[dict[str, Any], int]


class LocalRun:
    def __init__(self) -> None:
        self.lease: ChunkLease | None = None
        self.opened = asyncio.Event()  # the lease is open (or opening failed: then `taking` is False)
        self.done = asyncio.Event()  # the executor has ended (or never started)
        self.taking = True  # the executor still takes more pairs
        # The executor runs: from now on a joining chunk takes free slots for its pairs
        # (before, the first chunk takes them for every pair queued by then).
        self.executing = False
        self.chunks: set[int] = set()
        self._pairs: deque[Pair] = deque()
        self._slots = 0  # slots taken by joining chunks, not yet given workers

    def add(self, pairs: list[Pair]) -> bool:
        """Queue pairs for the executor; False once it takes no more."""
        if not self.taking:
            return False
        self._pairs.extend(pairs)
        return True

    def pending(self) -> int:
        return len(self._pairs)

    def add_slots(self, count: int) -> bool:
        if not self.taking:
            return False
        self._slots += count
        return True

    def more_work(self) -> tuple[list[Pair], int]:
        """The executor's `more_work`: what was queued since; once nothing was, it stops
        taking (in the loop's one thread, so no chunk joins in between)."""
        pairs, self._pairs = list(self._pairs), deque()
        slots, self._slots = self._slots, 0
        if not pairs and not slots:
            self.taking = False
        return pairs, slots

    def close(self) -> None:
        self.taking = False
        self.opened.set()
        self.done.set()
