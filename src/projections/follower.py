"""Follows the application's notification log into a view, in batches.

Two ways in:
- `catch_up(until=N, recordings=...)` runs in the caller's thread. A command calls it
  right after saving, so the read model holds the write before the HTTP answer goes out
  (read-your-writes without polling). When the command's own recordings are exactly the
  next notifications, they are applied as they are, without reading them back.
- A background thread LISTENs on the event table's channel and catches up whenever any
  process writes (and once a second regardless), so writes from other processes, and
  events written before a crash, reach the read model by themselves. One thread and one
  connection (`FollowingThread`) serve every follower of the log, not one each, and of
  all the processes on one database only the leader of a read model (the one holding its
  advisory lock on that connection) follows it so; the others try to take over every
  second.

The library's own runner applies one event per transaction (about 1.4k events/s here);
this one applies up to `batch_size` events per transaction.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Recording, Tracking
from psycopg.sql import SQL, Identifier

from evalledger.projections.view import BatchingView, ViewBehind
from evalledger.projections.status import ProjectionStatus

log = logging.getLogger(__name__)

# A read of the log asks for this many notifications first, and then adapts (see below).
FIRST_READ = 64
# About how many bytes of stored events one batch may hold.
READ_BYTES = 16 * 2**20
# How long the background follower waits after a notification before it reads the log: a
# command in this process applies its own events meanwhile, as they are in memory,
# without reading and decoding them again.
SETTLE_SECONDS = 0.05


def next_read_limit(limit: int, size: int, most: int) -> int:
    """How many notifications to ask for next, when `limit` of them came to `size` bytes:
    fewer when that was more than READ_BYTES, twice as many (up to `most`) when it was
    well under."""
    if size > READ_BYTES:
        return max(1, limit * READ_BYTES // size)
    if size < READ_BYTES // 4:
        return min(most, limit * 2)
    return limit


@contextmanager
def quick_thread_switches(interval: float = 0.001) -> Iterator[None]:
    """Threads hand the GIL over every `interval` seconds instead of every 5 ms, while a
    bulk replay keeps one thread busy in Python: a thread waiting on PostgreSQL (a writer's
    COPY, a statement) then gets the GIL back within a millisecond, not five, after each
    answer, so a rebuild's dozen statements and COPYs beside a busy reader wait much less
    (benchmarks/README.md, "Quick thread switches")."""
    global _quick_switchers, _switch_interval_before
    with _switching:
        if _quick_switchers == 0:
            _switch_interval_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_interval_before, interval))
        _quick_switchers += 1
    try:
        yield
    finally:
        with _switching:  # the last of several at once (two rebuilds) puts the interval back
            _quick_switchers -= 1
            if _quick_switchers == 0:
                sys.setswitchinterval(_switch_interval_before)


_switching = threading.Lock()
_quick_switchers = 0
_switch_interval_before = sys.getswitchinterval()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector paused for a bulk replay (a rebuild, an audit). Decoding
    thousands of events allocates millions of objects, and each full collection walks all
    the live ones: about a third of an audit's time and a tenth of a rebuild's here.
    Reference counting still frees everything that is not in a cycle meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ProjectionFollower:
    def __init__(
        self,
        *,
        name: str,
        app: Application[UUID],
        view: BatchingView,
        topics: Sequence[str],
        conninfo: str,
        batch_size: int = 500,
    ) -> None:
        self.name = name
        self.app = app
        self.view = view
        self.topics = list(topics)
        self.conninfo = conninfo
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._position: int | None = None  # last notification id known to be applied
        self._thread: threading.Thread | None = None  # the FollowingThread's, while it runs
        # Whether this process follows the view in the background (FollowingThread holds its
        # leadership lock); the others apply only their own commands' writes.
        self.leader = False
        self.last_error: str | None = None
        self.applied = 0  # events applied by this follower (a rebuild reports it)
        # How many notifications the next read asks for: it starts small and doubles up to
        # `batch_size` while batches stay small, and shrinks when they are big (5,000-item
        # import events), so one batch holds about READ_BYTES of stored events at most.
        self._read_limit = min(FIRST_READ, batch_size)

    # -- position ---------------------------------------------------------------------

    def position(self) -> int:
        """The last notification id the view has applied (0 for none), from the database."""
        return self.view.max_tracking_id(self.app.name) or 0

    # -- catching up --------------------------------------------------------------------

    def catch_up(self, until: int | None = None, recordings: Sequence[Recording[UUID]] = ()) -> int:
        """Apply everything after the view's position (up to `until`, when that is already
        reached nothing is read). Returns the position afterwards."""
        with self._lock:
            if self._position is None:
                self._position = self.position()
            if until is not None and self._position >= until:
                return self._position
            if recordings and recordings[0].notification.id == self._position + 1:
                events = [(r.domain_event, r.notification.id) for r in recordings]
                try:
                    self._apply(events, recordings[-1].notification.id)
                except ViewBehind as behind:
                    self._position = behind.position  # read what lies between, below
                if until is not None and self._position >= until:
                    return self._position
            # Another process (the leader, or a writer elsewhere) has most likely applied
            # what lies between: start from the recorded position, not from this process's
            # last one, which in a process that does not lead can be far behind (or ahead,
            # when another process has rebuilt the view meanwhile).
            self._position = self.position()
            if until is not None and self._position >= until:
                return self._position
            while True:
                head = self.app.recorder.max_notification_id() or 0
                if head <= self._position:
                    return self._position
                limit = self._read_limit
                notifications = self.app.recorder.select_notifications(
                    start=self._position,
                    limit=limit,
                    stop=head,
                    topics=self.topics,
                    inclusive_of_start=False,
                )
                self._adapt_read_limit(sum(len(n.state) for n in notifications))
                events = [(self.app.mapper.to_domain_event(n), n.id) for n in notifications]
                # Fewer than asked for: everything up to `head` has been seen.
                last = head if len(notifications) < limit else notifications[-1].id
                del notifications
                try:
                    self._apply(events, last)
                except ViewBehind as behind:
                    self._position = behind.position
                    continue
                del events
                if until is not None and self._position >= until:
                    return self._position

    def _adapt_read_limit(self, size: int) -> None:
        self._read_limit = next_read_limit(self._read_limit, size, self.batch_size)

    def _apply(self, events: list[tuple[Any, int]], last: int) -> None:
        try:
            self.applied += self.view.process(events, Tracking(self.app.name, last), follows=self._position)
        except BaseException:
            # Another process may have moved on, or the transaction failed: re-read.
            self._position = None
            raise
        self._position = last

    def _notice_rebuild(self) -> None:
        """Forget the cached position if the view's tables are behind it (another process
        rebuilt them); the writers' cached position is otherwise left alone."""
        recorded = self.position()
        with self._lock:
            if self._position is not None and recorded < self._position:
                self._position = None

    def forget_position(self) -> None:
        """Read the position from the database next time (call holding `paused()`)."""
        self._position = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No catch-up in this process while the block runs (a rebuild switches tables)."""
        with self._lock:
            yield

    def status(self) -> ProjectionStatus:
        head = self.app.recorder.max_notification_id() or 0
        position = self.position()
        return ProjectionStatus(name=self.name, position=position, head=head, lag=max(0, head - position),
                                running=self._thread is not None and self._thread.is_alive(), leader=self.leader,
                                last_error=self.last_error)



class FollowingThread:
    """Keeps several followers of the same notification log up, in one background thread
    on one LISTEN connection (each process then holds one connection for its projections,
    not one per projection).

    Leadership: a follower is followed here only while this connection holds the view's
    session-level advisory lock (`leader_key`), so each read model is applied in the
    background by one process of a deployment, not read and decoded by all of them. The
    others try to take the lock every RETRY_SECONDS; when the leader dies its connection
    goes, with the lock, and one of them takes over. Correctness does not depend on it:
    every batch still takes the view's transaction-scoped lock and skips what is recorded,
    so two leaders at once (a partition) only duplicate work."""

    RETRY_SECONDS = 1.0

    def __init__(self, followers: Sequence[ProjectionFollower], conninfo: str, *, connect_timeout: float = 10.0) -> None:
        self.followers = list(followers)
        self.conninfo = conninfo
        self.connect_timeout = connect_timeout
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.followers:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._follow, name="follow-projections", daemon=True)
        for follower in self.followers:
            follower._thread = self._thread  # noqa: SLF001 - status() reports it running
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for follower in self.followers:
            follower._thread = None  # noqa: SLF001
            follower.leader = False

    def _take_leadership(self, conn: psycopg.Connection[Any]) -> None:
        """Try (without waiting) to lead each follower this process does not lead yet."""
        for follower in self.followers:
            if not follower.leader:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (follower.view.leader_key,)).fetchone()
                if row is not None and row[0]:
                    follower.leader = True
                    log.info("this process now leads the %s read model", follower.name)

    def _catch_up_led(self) -> None:
        for follower in self.followers:
            if not follower.leader:
                continue
            try:
                follower._notice_rebuild()  # noqa: SLF001
                follower.catch_up()
                follower.last_error = None
            except Exception as error:
                follower.last_error = f"{type(error).__name__}: {error}"
                raise

    def _follow(self) -> None:
        channel = getattr(self.followers[0].app.recorder, "channel_name", None)
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True,
                                     connect_timeout=max(1, round(self.connect_timeout))) as conn:
                    self._follow_on(conn, channel)
                    backoff = 0.1
            except Exception:  # noqa: BLE001 - keep following; each follower's status says why
                log.exception("projections failed; retrying in %.1fs", backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                # The connection, and with it every lock it held, is gone.
                for follower in self.followers:
                    follower.leader = False
        log.debug("projections stopped")

    def _follow_on(self, conn: psycopg.Connection[Any], channel: str | None) -> None:
        # A leader whose machine vanishes (no FIN, no RST) holds its locks until the server
        # notices the connection is dead: with these, in about half a minute, not in two
        # hours (the usual kernel default). Ignored on a Unix socket.
        conn.execute("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
                     "SET tcp_keepalives_count = 3")
        listening = False
        retry_at = 0.0
        while not self._stopping.is_set():
            if time.monotonic() >= retry_at and not all(f.leader for f in self.followers):
                self._take_leadership(conn)
                retry_at = time.monotonic() + self.RETRY_SECONDS
            if channel and not listening and any(f.leader for f in self.followers):
                conn.execute(SQL("LISTEN {}").format(Identifier(channel)))
                listening = True
            self._catch_up_led()
            if listening:
                # A leader catches up on every notification, and once a second regardless.
                for _ in conn.notifies(timeout=self.RETRY_SECONDS, stop_after=1):
                    self._stopping.wait(SETTLE_SECONDS)
            else:
                # Leads nothing (yet): wait and try again; a dead connection shows on the
                # next try, which reconnects.
                self._stopping.wait(max(0.0, retry_at - time.monotonic()))
