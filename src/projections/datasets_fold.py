"""The datasets read model as one fold: `Dataset` events applied to the rows they touch, in
memory, with no I/O.

This is the only place that says what an event does to the `datasets`, `dataset_items`,
`dataset_versions` and `dataset_tags` rows (projections/datasets.py has the tables). Live
catch-up reads the rows a batch touches (`touched`), folds the batch into them and writes
the changed ones back; a rebuild folds the log into empty state and COPYs the rows out
(datasets_bulk.py).

An item revision keeps the content as the event carries it (`content`: the plain JSON
object, or `Sealed` JSON texts not yet parsed), so that writing many new revisions costs no
parse and re-encode; `content_values` gives the column values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple
from uuid import UUID

from evalledger.domain.content import Sealed
from evalledger.domain.datasets import DETAIL_ATTRIBUTES, Dataset, project_of
from evalledger.projections.folding import fold_events



class StoredContent(NamedTuple):
    """A revision's content as the table holds it (read back, or purged)."""

    input: Any
    expected_output: Any
    metadata: Any


def content_values(content: Any) -> StoredContent:
    """The input, expected_output and metadata columns of a revision's content: an event's
    content (JSON null input or expected output is NULL, null metadata is {}), a stored
    one, or None (a deletion marker: no content)."""
    if content is None:
        return StoredContent(None, None, None)
    if isinstance(content, StoredContent):
        return content
    if isinstance(content, Sealed):
        content = content.open()
    return StoredContent(content["input"], content.get("expectedOutput"), content.get("metadata") or {})


@dataclass(slots=True)
class DatasetRow:
    """A row of `datasets`."""

    dataset_id: UUID
    name: str
    description: str
    metadata: Any
    input_schema: Any
    expected_output_schema: Any
    version: int
    item_count: int
    next_seq: int
    aggregate_version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    project_id: UUID


@dataclass(slots=True)
class VersionRow:
    """A row of `dataset_versions`. An import's several events of one version add to one
    row, which keeps the time, actor and reason of the first."""

    dataset_id: UUID
    version: int
    aggregate_version: int
    created_at: datetime
    added: int
    updated: int
    removed: int
    item_count: int
    actor: str
    reason: str | None


@dataclass(slots=True)
class TagRow:
    """A row of `dataset_tags`."""

    dataset_id: UUID
    tag: str
    version: int
    aggregate_version: int
    tagged_at: datetime
    actor: str
    reason: str | None


@dataclass(slots=True)
class ItemRevision:
    """A row of `dataset_items`: valid for dataset versions `valid_from <= v < valid_to`
    (`valid_to` None: still open); `deleted`: a deletion marker, with no content."""

    dataset_id: UUID
    item_id: str
    valid_from: int
    valid_to: int | None
    seq: int
    deleted: bool
    external_id: str | None
    content: Any  # see content_values
    source: Any
    created_at: datetime
    updated_at: datetime
    purged_at: datetime | None = None
    # Read from the table (a change is an UPDATE of it), not made by this fold (an INSERT).
    stored: bool = field(default=False, compare=False)

    @property
    def key(self) -> tuple[UUID, str, int]:
        return (self.dataset_id, self.item_id, self.valid_from)


ItemKey = tuple[UUID, str]  # dataset id, item id
RevisionKey = tuple[UUID, str, int]  # dataset id, item id, valid_from


@dataclass
class DatasetsState:
    """The rows the fold works on, keyed, and which of them it changed. Live catch-up seeds
    it with the rows a batch touches (`seed_*`); a rebuild starts it empty. Revisions are
    kept by dataset, then by item: an event's items are all of one dataset, so its id is
    looked up once per event rather than hashed into a key per item."""

    datasets: dict[UUID, DatasetRow] = field(default_factory=dict)
    versions: dict[tuple[UUID, int], VersionRow] = field(default_factory=dict)
    tags: dict[tuple[UUID, str], TagRow | None] = field(default_factory=dict)  # None: deleted
    # Each item's revisions the state holds (a purge changes them all), by dataset and item id.
    revisions_of: dict[UUID, dict[str, list[ItemRevision]]] = field(default_factory=dict)
    # Each item's open, not deleted revision (the one an update or deletion closes).
    current: dict[UUID, dict[str, ItemRevision]] = field(default_factory=dict)
    changed_datasets: set[UUID] = field(default_factory=set)
    changed_versions: set[tuple[UUID, int]] = field(default_factory=set)
    changed_tags: set[tuple[UUID, str]] = field(default_factory=set)
    # By dataset, then (item id, valid_from), in the order made.
    changed: dict[UUID, dict[tuple[str, int], ItemRevision]] = field(default_factory=dict)

    @property
    def revisions(self) -> dict[RevisionKey, ItemRevision]:
        """Every revision the state holds, by key."""
        return {row.key: row for items in self.revisions_of.values() for rows in items.values() for row in rows}

    @property
    def changed_revisions(self) -> dict[RevisionKey, ItemRevision]:
        """The revisions the fold made or changed, by key."""
        return {(dataset_id, *key): row for dataset_id, rows in self.changed.items() for key, row in rows.items()}

    def seed_revision(self, row: ItemRevision) -> None:
        """Add a revision read from the table (or replace the one with its key)."""
        rows = self.revisions_of.setdefault(row.dataset_id, {}).setdefault(row.item_id, [])
        rows[:] = [other for other in rows if other.valid_from != row.valid_from]
        rows.append(row)
        if row.valid_to is None and not row.deleted:
            self.current.setdefault(row.dataset_id, {})[row.item_id] = row

    def of_dataset(self, dataset_id: UUID) -> tuple[dict[str, list[ItemRevision]], dict[str, ItemRevision],
                                                    dict[tuple[str, int], ItemRevision]]:
        """The dataset's revisions by item, its items' current revisions, and its changed
        revisions, for a fold to work on."""
        revisions_of = self.revisions_of.get(dataset_id)
        if revisions_of is None:
            revisions_of = self.revisions_of[dataset_id] = {}
        current = self.current.get(dataset_id)
        if current is None:
            current = self.current[dataset_id] = {}
        changed = self.changed.get(dataset_id)
        if changed is None:
            changed = self.changed[dataset_id] = {}
        return revisions_of, current, changed

    def _changed(self, row: ItemRevision) -> None:
        self.changed.setdefault(row.dataset_id, {})[(row.item_id, row.valid_from)] = row


# -- the fold, one function per event class --------------------------------------------------


def _touch(state: DatasetsState, e: Any) -> DatasetRow | None:
    """The event's dataset, moved on to the event's aggregate version and time (None: the
    read model has no row for it, and the event changes nothing)."""
    dataset = state.datasets.get(e.originator_id)
    if dataset is not None:
        dataset.aggregate_version = e.originator_version
        dataset.updated_at = e.timestamp
        state.changed_datasets.add(e.originator_id)
    return dataset


def _new_version(state: DatasetsState, dataset: DatasetRow, e: Any, *, added: int = 0, updated: int = 0,
                 removed: int = 0) -> None:
    """Move the dataset on to the event's dataset version, and count what the event did
    in that version's row."""
    dataset.version = e.dataset_version
    dataset.item_count += added - removed
    dataset.next_seq += added
    key = (dataset.dataset_id, e.dataset_version)
    row = state.versions.get(key)
    if row is None:
        row = state.versions[key] = VersionRow(
            dataset_id=dataset.dataset_id, version=e.dataset_version, aggregate_version=e.originator_version,
            created_at=e.timestamp, added=0, updated=0, removed=0, item_count=0, actor=e.actor, reason=e.reason)
    row.added += added
    row.updated += updated
    row.removed += removed
    row.aggregate_version = e.originator_version
    row.item_count = dataset.item_count
    state.changed_versions.add(key)


def _created(state: DatasetsState, e: Dataset.Created) -> None:
    state.datasets[e.originator_id] = DatasetRow(
        dataset_id=e.originator_id, name=e.name, description=e.description, metadata=e.metadata,
        input_schema=e.input_schema, expected_output_schema=e.expected_output_schema, version=0, item_count=0,
        next_seq=0, aggregate_version=e.originator_version, created_at=e.timestamp, updated_at=e.timestamp,
        deleted_at=None, project_id=project_of(e.project_id))
    state.changed_datasets.add(e.originator_id)
    key = (e.originator_id, 0)
    state.versions[key] = VersionRow(
        dataset_id=e.originator_id, version=0, aggregate_version=e.originator_version, created_at=e.timestamp,
        added=0, updated=0, removed=0, item_count=0, actor=e.actor, reason=e.reason)
    state.changed_versions.add(key)


def _details_changed(state: DatasetsState, e: Dataset.DetailsChanged) -> None:
    dataset = _touch(state, e)
    if dataset is not None:
        for wire_name, value in e.changes.items():
            setattr(dataset, DETAIL_ATTRIBUTES[wire_name], value)  # its column's name


def _deleted(state: DatasetsState, e: Dataset.Deleted) -> None:
    dataset = _touch(state, e)
    if dataset is not None:
        dataset.deleted_at = e.timestamp


def _items_added(state: DatasetsState, e: Dataset.ItemsAdded) -> None:
    dataset = _touch(state, e)
    if dataset is None:  # its items are left out
        return
    seq = dataset.next_seq
    _new_version(state, dataset, e, added=len(e.items))
    dataset_id, version, ts = dataset.dataset_id, e.dataset_version, e.timestamp
    revisions_of, current, changed = state.of_dataset(dataset_id)
    for entry in e.items:  # (positional: this loop is the cost of adding many items)
        seq += 1
        # An id added again (after its deletion) gets a new seq; its marker stays open.
        item_id = entry["id"]
        row = ItemRevision(dataset_id, item_id, version, None, seq, False, entry.get("externalId"), entry["content"],
                           entry.get("source"), ts, ts)
        rows = revisions_of.get(item_id)
        if rows is None:
            revisions_of[item_id] = [row]
        else:
            rows.append(row)
        changed[(item_id, version)] = row
        current[item_id] = row


def _close_and_follow(state: DatasetsState, e: Dataset.ItemsUpdated | Dataset.ItemsDeleted, entries: list[Any],
                      id_of: Callable[[Any], str], follow: Callable[[Any, ItemRevision], ItemRevision], *,
                      updated: int = 0, removed: int = 0) -> None:
    """Move the dataset on to the event's version; close there the open revision of each
    entry's item, and add the revision `follow(entry, closed)` makes to follow it (the
    item's current one unless it is a deletion marker). Items deleted or never added are
    passed over: there is nothing to change."""
    dataset = _touch(state, e)
    if dataset is None:
        return
    _new_version(state, dataset, e, updated=updated, removed=removed)
    version = e.dataset_version
    revisions_of, current, changed = state.of_dataset(dataset.dataset_id)
    for entry in entries:
        item_id = id_of(entry)
        before = current.pop(item_id, None)
        if before is None:
            continue
        before.valid_to = version
        changed[(item_id, before.valid_from)] = before
        row = follow(entry, before)
        revisions_of[item_id].append(row)
        changed[(item_id, version)] = row
        if not row.deleted:
            current[item_id] = row


def _items_updated(state: DatasetsState, e: Dataset.ItemsUpdated) -> None:
    def follow(entry: Any, before: ItemRevision) -> ItemRevision:
        source = entry.get("source")
        return ItemRevision(
            dataset_id=before.dataset_id, item_id=before.item_id, valid_from=e.dataset_version, valid_to=None,
            seq=before.seq, deleted=False, external_id=entry.get("externalId"), content=entry["content"],
            source=before.source if source is None else source, created_at=before.created_at,
            updated_at=e.timestamp)

    _close_and_follow(state, e, e.items, itemgetter("id"), follow, updated=len(e.items))


def _items_deleted(state: DatasetsState, e: Dataset.ItemsDeleted) -> None:
    def follow(item_id: Any, before: ItemRevision) -> ItemRevision:
        # The deletion marker: open, no content, the last revision's seq and externalId.
        return ItemRevision(
            dataset_id=before.dataset_id, item_id=before.item_id, valid_from=e.dataset_version, valid_to=None,
            seq=before.seq, deleted=True, external_id=before.external_id, content=None, source=None,
            created_at=before.created_at, updated_at=e.timestamp)

    _close_and_follow(state, e, e.item_ids, str, follow, removed=len(e.item_ids))


def purge_revision(row: ItemRevision, at: datetime) -> None:
    """What a purge leaves of a revision: the values the event store's events now read as
    (content.PURGED_CONTENT), so a rebuild after the purge gives these rows exactly."""
    row.content = StoredContent(None, None, None if row.deleted else {})
    row.purged_at = at


def _item_purged(state: DatasetsState, e: Dataset.ItemPurged) -> None:
    dataset = _touch(state, e)
    if dataset is None:
        return
    for row in state.revisions_of.get(dataset.dataset_id, {}).get(e.item_id, ()):
        purge_revision(row, e.timestamp)
        state._changed(row)


def _tag_set(state: DatasetsState, e: Dataset.VersionTagged | Dataset.TagMoved) -> None:
    if _touch(state, e) is None:  # left out, as the dataset's items are
        return
    key = (e.originator_id, e.tag)
    state.tags[key] = TagRow(dataset_id=e.originator_id, tag=e.tag, version=e.tagged_version,
                             aggregate_version=e.originator_version, tagged_at=e.timestamp, actor=e.actor,
                             reason=e.reason)
    state.changed_tags.add(key)


def _tag_deleted(state: DatasetsState, e: Dataset.TagDeleted) -> None:
    _touch(state, e)
    key = (e.originator_id, e.tag)
    state.tags[key] = None
    state.changed_tags.add(key)


FOLDS: dict[type, Any] = {
    Dataset.Created: _created,
    Dataset.DetailsChanged: _details_changed,
    Dataset.Deleted: _deleted,
    Dataset.ItemsAdded: _items_added,
    Dataset.ItemsUpdated: _items_updated,
    Dataset.ItemsDeleted: _items_deleted,
    Dataset.ItemPurged: _item_purged,
    Dataset.VersionTagged: _tag_set,
    Dataset.TagMoved: _tag_set,
    Dataset.TagDeleted: _tag_deleted,
}


def fold(state: DatasetsState, events: Iterable[Any]) -> DatasetsState:
    """Apply the events, in log order, to the rows in `state` (which must hold every row
    they touch: see `touched`); returns `state`."""
    return fold_events(FOLDS, state, events)


@dataclass
class Touched:
    """The keys of the rows a run of events may touch, for live catch-up to read them.
    Each dataset comes with the row of its current version: the only version row events
    after the tables' position can change (an import's several events of one version), as
    every other they touch is a new one."""

    dataset_ids: set[UUID] = field(default_factory=set)
    open_items: set[ItemKey] = field(default_factory=set)  # each item's open, not deleted revision
    purged_items: set[ItemKey] = field(default_factory=set)  # every revision of the item
    tags: set[tuple[UUID, str]] = field(default_factory=set)


def touched(events: Iterable[Any]) -> Touched:
    out = Touched()
    for e in events:
        kind = type(e)
        if kind not in FOLDS:
            continue
        out.dataset_ids.add(e.originator_id)
        if kind is Dataset.ItemsUpdated:
            out.open_items.update((e.originator_id, entry["id"]) for entry in e.items)
        elif kind is Dataset.ItemsDeleted:
            out.open_items.update((e.originator_id, item_id) for item_id in e.item_ids)
        elif kind is Dataset.ItemPurged:
            out.purged_items.add((e.originator_id, e.item_id))
        elif kind in (Dataset.VersionTagged, Dataset.TagMoved, Dataset.TagDeleted):
            out.tags.add((e.originator_id, e.tag))
    return out
