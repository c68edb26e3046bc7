"""The base of the applications: one event store, the aggregate cache, and commands that
retry when another process saved the same aggregate first.

All applications share one event store (`evalledger_events`), so the notification log
orders dataset and run events in one sequence: one subscription feeds every projection,
and the audit feed is one ordered log.

Aggregates are cached in memory (a 100,000-item dataset takes a while to replay) and
are *not* deep-copied out of the cache: a command holds the dataset's lock, decides
before it changes anything, and evicts the cached copy whenever something goes wrong
after a change, so the cache never holds state that was not saved. A write from
another process is picked up by the repository's fast-forward (one indexed query).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID
from weakref import WeakValueDictionary

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import EventStore, IntegrityError, Mapper, Recording, Transcoder
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_before_delay, wait_random_exponential

from evalledger.adapters.item_keys import ItemKeys, MemoryItemKeys
from evalledger.adapters.persistence import LedgerEventStore
from evalledger.adapters.sealing import SealingMapper
from evalledger.adapters.transcoding import OrjsonTranscoder
from evalledger.domain.errors import DomainError, WriteContentionError

if TYPE_CHECKING:
    from evalledger.domain.datasets import Item

T = TypeVar("T")
A = TypeVar("A")

EVENT_STORE_NAME = "evalledger"
# How long a command is retried when another process saved the same aggregate first, and
# the longest pause between attempts. The pauses are random and grow, so writers in
# different processes do not keep colliding in step; past the deadline the command is
# refused (503, retry later) rather than holding its caller any longer.
CONFLICT_DEADLINE = 5.0
CONFLICT_MAX_PAUSE = 0.25


@dataclass(frozen=True)
class Written:
    """What a command tells its caller: the versions it produced and where its events are
    in the notification log (for read-your-writes)."""

    aggregate_id: UUID
    aggregate_version: int
    notification_id: int | None
    recordings: list[Recording[UUID]] = field(repr=False)
    dataset_version: int = 0
    changed: bool = True
    items: list[Item] = field(default_factory=list, repr=False)


class LedgerApplication(Application[UUID]):
    name = EVENT_STORE_NAME
    env = {
        "AGGREGATE_CACHE_MAXSIZE": "32",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Keep one name (so one events table and one notification log) for all subclasses.
        cls.name = EVENT_STORE_NAME
        super().__init_subclass__(**kwargs)

    def __init__(self, env: dict[str, str] | None = None, *,
                 item_keys: ItemKeys | MemoryItemKeys | None = None) -> None:
        super().__init__(env)
        self._locks_guard = threading.Lock()
        self._locks: WeakValueDictionary[UUID, threading.RLock] = WeakValueDictionary()
        # Item content is sealed in stored events with per-item keys (see sealing.py).
        # Applications sharing the event store share one key store.
        self.item_keys = item_keys or ItemKeys(self.factory.datastore)  # type: ignore[attr-defined]
        assert isinstance(self.mapper, SealingMapper)
        self.mapper.keys = self.item_keys

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()

    def construct_mapper(self) -> Mapper[UUID]:
        return SealingMapper(transcoder=self.construct_transcoder())

    def construct_event_store(self) -> EventStore[UUID]:
        return LedgerEventStore(mapper=self.mapper, recorder=self.recorder)

    def _lock_for(self, aggregate_id: UUID) -> threading.RLock:
        with self._locks_guard:
            lock = self._locks.get(aggregate_id)
            if lock is None:
                lock = threading.RLock()
                self._locks[aggregate_id] = lock
            return lock

    def _evict(self, aggregate_id: UUID) -> None:
        cache = self.repository.cache
        if cache is not None:
            try:
                cache.get(aggregate_id, evict=True)
            except KeyError:
                pass

    def _load(self, aggregate_id: UUID) -> Any:
        raise NotImplementedError

    def _get(self, aggregate_id: UUID, kind: type[A], not_found: type[DomainError], what: str,
             version: int | None = None) -> A:
        """The aggregate of type `kind` (at `version` if given); `not_found` when there is
        none, or when the id is another kind's (ids are not typed in the shared store)."""
        try:
            aggregate = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, kind):
            raise not_found(f"{what} {aggregate_id} not found")
        return aggregate

    def _command(
        self, aggregate_id: UUID, decide: Callable[[Any], T], *, load: Callable[[UUID], Any] | None = None
    ) -> tuple[Any, T, list[Recording[UUID]]]:
        """Run `decide` on the current aggregate and save what it triggered, retrying when
        another process saved the same aggregate in between."""
        lock = self._lock_for(aggregate_id)
        load = load or self._load
        # The deadline counts the wait for this process's earlier writers too, so that no
        # caller waits much longer than CONFLICT_DEADLINE however many are queued.
        deadline = time.monotonic() + CONFLICT_DEADLINE
        if not lock.acquire(timeout=CONFLICT_DEADLINE):
            raise WriteContentionError(f"{aggregate_id} was busy with other writes for {CONFLICT_DEADLINE:g} s; "
                                       "nothing was changed, send the request again")
        try:
            retrying = Retrying(
                retry=retry_if_exception_type(IntegrityError),
                wait=wait_random_exponential(multiplier=0.005, max=CONFLICT_MAX_PAUSE),
                stop=stop_before_delay(max(0.0, deadline - time.monotonic())),
            )
            for attempt in retrying:
                with attempt:
                    return self._attempt(aggregate_id, decide, load)
        except RetryError as error:
            raise WriteContentionError(
                f"other writers kept changing {aggregate_id} first for {CONFLICT_DEADLINE:g} s; "
                "nothing was changed, send the request again"
            ) from error.last_attempt.exception()
        finally:
            lock.release()
        raise AssertionError("unreachable")

    def _attempt(
        self, aggregate_id: UUID, decide: Callable[[Any], T], load: Callable[[UUID], Any]
    ) -> tuple[Any, T, list[Recording[UUID]]]:
        aggregate = load(aggregate_id)
        try:
            outcome = decide(aggregate)
            recordings = self.save(aggregate) if aggregate.pending_events else []
        except DomainError:
            if aggregate.pending_events:
                self._evict(aggregate_id)
            raise
        except BaseException:  # a conflict (IntegrityError) included: reload on the next attempt
            self._evict(aggregate_id)
            raise
        return AsSaved(aggregate), outcome, recordings


class AsSaved:
    """An aggregate as this command left it: its versions are read while the command still
    holds the aggregate's lock, so the answer states the versions this write made, even when
    another writer changes the shared cached aggregate right after the lock is released.
    Anything else is read from the aggregate itself."""

    def __init__(self, aggregate: Any) -> None:
        self._aggregate = aggregate
        self.id = aggregate.id
        self.version = aggregate.version
        if hasattr(aggregate, "dataset_version"):
            self.dataset_version = aggregate.dataset_version

    def __getattr__(self, name: str) -> Any:
        return getattr(self._aggregate, name)


def last_notification_id(recordings: list[Recording[UUID]]) -> int | None:
    return recordings[-1].notification.id if recordings else None
