"""A run's `maxConcurrency` across every process that executes it: a PostgreSQL
semaphore of advisory locks.

A run has `maxConcurrency` slots, the session advisory locks (run key, 0 .. n-1). A chunk
that executes holds one connection of its own (`ChunkLease`) on which it first takes its
chunk's lock (run key, -1 - chunk), so no two processes execute the same chunk at once,
and then as many free slots as it may use; it runs one item at a time per slot held, and
gives a slot back as soon as it has no more work for it. So the run never has more than
`maxConcurrency` target calls in flight, however many workers share it, and when a worker
dies its connection goes and PostgreSQL frees its locks at once.

Slots freed in this process wake its waiting chunks at once; chunks in other processes
look again every `POLL` seconds.
"""

from __future__ import annotations

import asyncio
import zlib
from uuid import UUID

import psycopg

POLL = 0.05


def run_key(run_id: UUID) -> int:
    """The first half of a run's advisory lock keys (a signed 32-bit integer)."""
    return zlib.crc32(b"evalledger-run-slots:" + run_id.bytes) - 2**31


# Per run, what wakes this process's chunks waiting for a slot.
_freed: dict[UUID, asyncio.Event] = {}


def _event(run_id: UUID) -> asyncio.Event:
    event = _freed.get(run_id)
    if event is None:
        event = _freed[run_id] = asyncio.Event()
    return event


class ChunkLease:
    """One chunk's hold on its run: its chunk lock and the slots it has taken."""

    def __init__(self, conn: psycopg.Connection, run_id: UUID) -> None:
        self.conn = conn
        self.run_id = run_id
        self.key = run_key(run_id)
        self.slots: list[int] = []
        self._lock = asyncio.Lock()  # one statement at a time on the connection

    @classmethod
    async def open(cls, conninfo: str, run_id: UUID, chunk: int, *, connect_timeout: float) -> ChunkLease | None:
        """A lease on the chunk, or None when another process executes it now."""
        conn = await asyncio.to_thread(psycopg.connect, conninfo, autocommit=True,
                                       connect_timeout=max(1, round(connect_timeout)))
        lease = cls(conn, run_id)
        try:
            row = await asyncio.to_thread(
                lambda: conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (lease.key, -1 - chunk)).fetchone())
        except BaseException:
            await lease.close()
            raise
        if not row or not row[0]:
            await lease.close()
            return None
        return lease

    async def lock_chunk(self, chunk: int) -> bool:
        """Take another chunk's lock on this connection (a chunk joining the run's local
        executor, see local_run.py); False when another process executes it now."""
        async with self._lock:
            row = await asyncio.to_thread(
                lambda: self.conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (self.key, -1 - chunk)).fetchone())
        return bool(row and row[0])

    async def unlock_chunk(self, chunk: int) -> None:
        async with self._lock:
            try:
                await asyncio.to_thread(self.conn.execute, "SELECT pg_advisory_unlock(%s, %s)", (self.key, -1 - chunk))
            except psycopg.Error:
                pass  # the connection is gone: PostgreSQL freed every lock it held

    async def take_free(self, want: int, limit: int) -> int:
        """Take up to `want` of the run's `limit` slots that are free now, without waiting."""
        if want <= 0:
            return 0
        return await self._take(want, limit)

    async def _take(self, want: int, limit: int) -> int:
        async with self._lock:
            held = self.slots
            rows = await asyncio.to_thread(lambda: self.conn.execute(
                "SELECT s FROM generate_series(0, %s - 1) AS s WHERE NOT (s = ANY(%s))"
                " AND pg_try_advisory_lock(%s, s) LIMIT %s",
                (limit, held, self.key, want)).fetchall())
        taken = [row[0] for row in rows]
        self.slots.extend(taken)
        return len(taken)

    async def acquire(self, want: int, limit: int, *, stop: asyncio.Event | None = None) -> int:
        """Take up to `want` of the run's `limit` slots, waiting until at least one is free
        (or `stop` is set: then 0)."""
        event = _event(self.run_id)
        while True:
            event.clear()
            taken = await self._take(want, limit)
            if taken:
                return taken
            if stop is not None and stop.is_set():
                return 0
            try:
                await asyncio.wait_for(event.wait(), POLL)
            except TimeoutError:
                pass

    async def release_one(self) -> None:
        if not self.slots:
            return
        slot = self.slots.pop()
        async with self._lock:
            try:
                await asyncio.to_thread(self.conn.execute, "SELECT pg_advisory_unlock(%s, %s)", (self.key, slot))
            except psycopg.Error:
                pass  # the connection is gone: PostgreSQL freed every lock it held
        _event(self.run_id).set()

    async def close(self) -> None:
        """Give everything back (closing the session frees its locks)."""
        had = bool(self.slots)
        self.slots = []
        await asyncio.to_thread(self.conn.close)
        if had:
            _event(self.run_id).set()
