"""Applications: their methods are the commands. They load an aggregate, ask it to
decide, and save the events it produced.

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
from typing import Any, TypeVar
from uuid import UUID
from weakref import WeakValueDictionary

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import EventStore, IntegrityError, Mapper, Recording, Transcoder
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_before_delay, wait_random_exponential

from evalledger.domain import schemas
from evalledger.domain.datasets import Dataset, ImportOutcome, Item, ItemChange, NewItem
from evalledger.domain.errors import (
    ConflictError,
    DatasetNotFoundError,
    DomainError,
    ItemNotFoundError,
    SchemaViolationError,
    WriteContentionError,
)
from evalledger.domain.runs import Run, RunNotFoundError, RunSettings
from evalledger.domain.storable import ensure_storable
from evalledger.adapters.transcoding import OrjsonTranscoder
from evalledger.adapters.item_keys import ItemKeys
from evalledger.adapters.persistence import LedgerEventStore
from evalledger.adapters.sealing import ItemPurgedDuringWrite, SealingMapper, strip_purged_results

T = TypeVar("T")

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

    def __init__(self, env: dict[str, str] | None = None, *, item_keys: ItemKeys | None = None) -> None:
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
        return aggregate, outcome, recordings


def _last_notification_id(recordings: list[Recording[UUID]]) -> int | None:
    return recordings[-1].notification.id if recordings else None


class Datasets(LedgerApplication):
    """Commands on datasets and their items."""

    def _load(self, dataset_id: UUID) -> Dataset:
        dataset = self._load_including_deleted(dataset_id)
        if dataset.is_deleted:
            raise DatasetNotFoundError(f"dataset {dataset_id} not found")
        return dataset

    def get_dataset(self, dataset_id: UUID, *, aggregate_version: int | None = None) -> Dataset:
        """The aggregate, replayed from its events (to `aggregate_version` if given).
        Callers must not change it."""
        if aggregate_version is None:
            with self._lock_for(dataset_id):
                return self._load(dataset_id)
        try:
            dataset = self.repository.get(dataset_id, version=aggregate_version)
        except AggregateNotFoundError:
            raise DatasetNotFoundError(f"dataset {dataset_id} not found") from None
        if not isinstance(dataset, Dataset):
            raise DatasetNotFoundError(f"dataset {dataset_id} not found")
        return dataset

    def _written(self, dataset: Dataset, recordings: list[Recording[UUID]], **extra: Any) -> Written:
        return Written(
            aggregate_id=dataset.id,
            aggregate_version=dataset.version,
            notification_id=_last_notification_id(recordings),
            recordings=recordings,
            dataset_version=dataset.dataset_version,
            changed=bool(recordings),
            **extra,
        )

    # -- commands -------------------------------------------------------------------

    def create_dataset(
        self,
        *,
        name: str,
        description: str = "",
        metadata: dict[str, Any] | None = None,
        input_schema: dict[str, Any] | None = None,
        expected_output_schema: dict[str, Any] | None = None,
        dataset_id: UUID | None = None,
        project_id: UUID | None = None,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        ensure_storable({"name": name, "description": description, "metadata": metadata,
                         "inputSchema": input_schema, "expectedOutputSchema": expected_output_schema})
        schemas.check_schema("inputSchema", input_schema)
        schemas.check_schema("expectedOutputSchema", expected_output_schema)
        dataset = Dataset.create(
            name=name,
            description=description,
            metadata=metadata,
            input_schema=input_schema,
            expected_output_schema=expected_output_schema,
            dataset_id=dataset_id,
            project_id=project_id,
            actor=actor,
            reason=reason,
        )
        recordings = self.save(dataset)
        return self._written(dataset, recordings)

    def change_details(
        self,
        dataset_id: UUID,
        changes: dict[str, Any],
        *,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        ensure_storable(changes)
        for wire_name in ("inputSchema", "expectedOutputSchema"):
            if wire_name in changes:
                schemas.check_schema(wire_name, changes[wire_name])

        def decide(dataset: Dataset) -> bool:
            input_schema = changes.get("inputSchema", dataset.input_schema)
            output_schema = changes.get("expectedOutputSchema", dataset.expected_output_schema)
            if input_schema != dataset.input_schema or output_schema != dataset.expected_output_schema:
                _check_current_items(dataset, input_schema, output_schema)
            return dataset.change_details(changes, actor=actor, reason=reason)

        dataset, _, recordings = self._command(dataset_id, decide)
        return self._written(dataset, recordings)

    def add_items(
        self,
        dataset_id: UUID,
        new_items: list[NewItem],
        *,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        _ensure_items_storable((index, new.content, new.external_id) for index, new in enumerate(new_items))

        def decide(dataset: Dataset) -> list[Item]:
            _check_items_against_schemas(
                dataset, ((index, new.content) for index, new in enumerate(new_items))
            )
            return dataset.add_items(new_items, actor=actor, reason=reason)

        dataset, items, recordings = self._command(dataset_id, decide)
        return self._written(dataset, recordings, items=items)

    def update_items(
        self,
        dataset_id: UUID,
        changes: list[ItemChange],
        *,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        """Partial updates of one or more items: one version, or none when nothing changes."""
        ensure_storable({
            f"items/{index}/{name}": value
            for index, change in enumerate(changes)
            for name, value in (("input", change.input), ("expectedOutput", change.expected_output),
                                ("metadata", change.metadata), ("externalId", change.external_id))
            if name in change.fields
        })

        def decide(dataset: Dataset) -> list[Item]:
            new_states = dataset.changed_items(changes)
            positions = {change.item_id: index for index, change in enumerate(changes)}
            _check_items_against_schemas(
                dataset, ((positions[item.id], item.content) for item in new_states)
            )
            if new_states:
                dataset.update_items(new_states, actor=actor, reason=reason)
            # The caller gets every item it named, changed or not.
            return [dataset.items[change.item_id] for change in changes]

        dataset, items, recordings = self._command(dataset_id, decide)
        return self._written(dataset, recordings, items=items)

    def delete_items(
        self,
        dataset_id: UUID,
        item_ids: list[str],
        *,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        dataset, _, recordings = self._command(
            dataset_id, lambda dataset: dataset.delete_items(item_ids, actor=actor, reason=reason)
        )
        return self._written(dataset, recordings)

    def import_items(
        self,
        dataset_id: UUID,
        rows: list[NewItem],
        *,
        mode: str = "append",
        actor: str = "anonymous",
        reason: str | None = None,
        checked: bool = False,
    ) -> tuple[Written, ImportOutcome]:
        """A whole import as one version (see Dataset.import_items). `checked`: every row
        already passed `storable.problems` (the importer checks each row as it reads it)."""
        if not checked:
            _ensure_items_storable((index, row.content, row.external_id) for index, row in enumerate(rows))

        def decide(dataset: Dataset) -> ImportOutcome:
            _check_items_against_schemas(dataset, ((index, row.content) for index, row in enumerate(rows)))
            return dataset.import_items(rows, mode=mode, actor=actor, reason=reason)

        dataset, outcome, recordings = self._command(dataset_id, decide)
        return self._written(dataset, recordings, items=outcome.added), outcome

    def purge_item(
        self, dataset_id: UUID, item_id: str, *, actor: str = "anonymous", reason: str | None = None
    ) -> Written:
        """Erase an item's content from the whole history (crypto-shredding).

        The key is destroyed first, so once this returns the content is unreadable even
        if recording the `ItemPurged` event then fails (purging again records it). Works
        on deleted items and on deleted datasets."""
        with self._lock_for(dataset_id):
            dataset = self._load_including_deleted(dataset_id)
            if item_id not in dataset.known_item_ids:
                raise ItemNotFoundError(f"item {item_id} not found in dataset {dataset_id}")
            self.item_keys.destroy(item_id)
            self._evict(dataset_id)  # the cached aggregate holds the plain content
            dataset, _, recordings = self._command(
                dataset_id,
                lambda dataset: dataset.purge_item(item_id, actor=actor, reason=reason),
                load=self._load_including_deleted,
            )
        self.item_keys.vacuum()
        return self._written(dataset, recordings)

    def _load_including_deleted(self, dataset_id: UUID) -> Dataset:
        try:
            dataset = self.repository.get(dataset_id)
        except AggregateNotFoundError:
            raise DatasetNotFoundError(f"dataset {dataset_id} not found") from None
        if not isinstance(dataset, Dataset):
            raise DatasetNotFoundError(f"dataset {dataset_id} not found")
        return dataset

    def delete_dataset(self, dataset_id: UUID, *, actor: str = "anonymous", reason: str | None = None) -> Written:
        dataset, _, recordings = self._command(
            dataset_id, lambda dataset: dataset.delete(actor=actor, reason=reason)
        )
        self._evict(dataset_id)
        return self._written(dataset, recordings)


def _ensure_items_storable(entries: Any) -> None:
    ensure_storable({
        f"items/{index}/{name}": value
        for index, content, external_id in entries
        for name, value in (("input", content.input), ("expectedOutput", content.expected_output),
                            ("metadata", content.metadata), ("externalId", external_id))
    })


def _item_violations(
    dataset_input_schema: dict[str, Any] | None,
    dataset_output_schema: dict[str, Any] | None,
    content: Any,
    prefix: str,
) -> list[dict[str, str]]:
    found = schemas.violations(f"{prefix}input", dataset_input_schema, content.input)
    if dataset_output_schema is not None and content.expected_output is not None:
        found += schemas.violations(f"{prefix}expectedOutput", dataset_output_schema, content.expected_output)
    return found


def _check_items_against_schemas(dataset: Dataset, indexed_contents: Any) -> None:
    if dataset.input_schema is None and dataset.expected_output_schema is None:
        return
    errors: list[dict[str, str]] = []
    for index, content in indexed_contents:
        errors += _item_violations(
            dataset.input_schema, dataset.expected_output_schema, content, f"items/{index}/"
        )
        if len(errors) >= 100:
            break
    if errors:
        raise SchemaViolationError(
            f"{len(errors)} schema violation(s); first: {errors[0]['field']}: {errors[0]['message']}",
            errors=errors,
        )


def _check_current_items(
    dataset: Dataset,
    input_schema: dict[str, Any] | None,
    output_schema: dict[str, Any] | None,
) -> None:
    """Refuse a schema change that current items would violate, naming up to 10 of them."""
    failing = []
    for item in dataset.items.values():
        found = _item_violations(input_schema, output_schema, item.content, "")
        if found:
            failing.append({"itemId": item.id, "externalId": item.external_id, "errors": found[:5]})
            if len(failing) >= 10:
                break
    if failing:
        raise SchemaViolationError(
            f"the new schema would be violated by current items (showing {len(failing)})",
            errors=[
                {"field": f"items/{f['itemId']}/{e['field']}", "message": e["message"]}
                for f in failing
                for e in f["errors"]
            ],
            failingItems=failing,
        )


class Runs(LedgerApplication):
    """Commands on runs. Each run has one writer at a time (its executor, or the group
    committer for caller-driven submissions), so saves rarely conflict; when they do, the
    command is retried on the fresh aggregate."""

    def _load(self, run_id: UUID) -> Run:
        try:
            run = self.repository.get(run_id)
        except AggregateNotFoundError:
            raise RunNotFoundError(f"run {run_id} not found") from None
        if not isinstance(run, Run):
            raise RunNotFoundError(f"run {run_id} not found")
        return run

    def get_run(self, run_id: UUID) -> Run:
        """The current aggregate (callers must not change it)."""
        with self._lock_for(run_id):
            return self._load(run_id)

    def _written(self, run: Run, recordings: list[Recording[UUID]]) -> Written:
        return Written(
            aggregate_id=run.id,
            aggregate_version=run.version,
            notification_id=_last_notification_id(recordings),
            recordings=recordings,
            changed=bool(recordings),
        )

    def create_run(
        self,
        *,
        run_id: UUID,
        dataset_id: UUID,
        dataset_version: int,
        target: dict[str, Any] | None,
        scorers: list[Any],
        settings: RunSettings,
        name: str,
        metadata: dict[str, Any],
        total_items: int,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        """Create a run; creating the same run again (same id, same definition) is a no-op,
        the same id with a different definition is a conflict."""
        ensure_storable({"target": target, "scorers": scorers, "name": name, "metadata": metadata})
        with self._lock_for(run_id):
            try:
                existing = self._load(run_id)
            except RunNotFoundError:
                existing = None
            if existing is not None:
                same = (
                    existing.dataset_id == str(dataset_id)
                    and existing.dataset_version == dataset_version
                    and existing.target == target
                    and existing.scorers == scorers
                    and existing.settings == settings.as_wire()
                    and existing.name == name
                    and existing.metadata == metadata
                )
                if not same:
                    raise ConflictError(f"run {run_id} already exists with a different definition")
                return self._written(existing, [])
            run = Run.create(
                run_id=run_id,
                dataset_id=dataset_id,
                dataset_version=dataset_version,
                target=target,
                scorers=scorers,
                settings=settings,
                name=name,
                metadata=metadata,
                total_items=total_items,
                actor=actor,
                reason=reason,
            )
            try:
                recordings = self.save(run)
            except IntegrityError:
                raise ConflictError(f"run {run_id} was created concurrently; retry to compare") from None
            return self._written(run, recordings)

    def start_run(self, run_id: UUID, *, actor: str = "runner") -> Written:
        run, _, recordings = self._command(run_id, lambda run: run.start(actor=actor))
        return self._written(run, recordings)

    def record_results(
        self, run_id: UUID, results: list[dict[str, Any]], *, upsert: bool, actor: str = "runner"
    ) -> Written:
        # Results for items purged meanwhile keep their statistics but none of their texts.
        results = strip_purged_results(self.item_keys, results)
        try:
            run, _, recordings = self._command(
                run_id, lambda run: run.record_results(results, upsert=upsert, actor=actor)
            )
        except ItemPurgedDuringWrite:  # purged between the check and the save
            results = strip_purged_results(self.item_keys, results)
            run, _, recordings = self._command(
                run_id, lambda run: run.record_results(results, upsert=upsert, actor=actor)
            )
        return self._written(run, recordings)

    def finish_run(self, run_id: UUID, *, error: str | None = None, actor: str = "runner") -> Written:
        run, _, recordings = self._command(run_id, lambda run: run.finish(actor=actor, error=error))
        return self._written(run, recordings)

    def finalize_run(self, run_id: UUID, *, actor: str = "anonymous") -> Written:
        """Finish a caller-driven run; again on a finished one: nothing recorded (idempotent)."""
        run, _, recordings = self._command(run_id, lambda run: run.finalize(actor=actor))
        return self._written(run, recordings)

    def cancel_run(self, run_id: UUID, *, actor: str = "anonymous", reason: str | None = None) -> Written:
        run, _, recordings = self._command(run_id, lambda run: run.cancel(actor=actor, reason=reason))
        return self._written(run, recordings)

    def review_result(self, run_id: UUID, *, item_id: str, repetition: int, verdict: str | None,
                      scores: dict[str, float | None], criteria: dict[str, float | None], comment: str | None,
                      flagged: bool | None, actor: str = "anonymous", reason: str | None = None) -> Written:
        run, _, recordings = self._command(run_id, lambda run: run.review(
            item_id=item_id, repetition=repetition, verdict=verdict, scores=scores, criteria=criteria,
            comment=comment, flagged=flagged, actor=actor, reason=reason))
        return self._written(run, recordings)
