"""The book of projects and keys: every access event folded into what authentication and the
key pages read.

Access events live in an event store of their own (`evalledger_access_events`), apart from
datasets and runs, so that the newest access change is one indexed lookup away: each
authentication first asks the store for its head position and folds in any events it has not
seen (`AccessBook.refresh`). A key revoked by any process therefore stops working at once in
every process that serves the database, without caches to expire."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Transcoder

from evalledger.adapters.transcoding import OrjsonTranscoder
from evalledger.domain.access import (
    DEFAULT_PROJECT_ID,
    DEFAULT_SLUG,
    ApiKey,
    Principal,
    Project,
    ProjectNotFoundError,
)


class AccessStore(Application[UUID]):
    name = "evalledger_access"

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()


# What the book holds is also what the use cases answer: typed, snake_case; `api/` and the UI
# put them into words.


@dataclass(slots=True)
class ProjectView:
    id: UUID
    name: str
    slug: str
    created_at: datetime | None
    created_by: str | None


@dataclass(slots=True)
class KeyView:
    id: UUID
    project_id: UUID | None
    name: str
    role: str
    prefix: str
    digest: str = field(repr=False)
    created_at: datetime
    created_by: str
    rotated_from: UUID | None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    last_used_at: datetime | None = None  # filled in by the listing (kept in a table beside the events)

    def principal(self) -> Principal:
        return Principal(key_id=self.id, name=self.name, project_id=self.project_id, role=self.role)


@dataclass(slots=True, kw_only=True)
class IssuedKey(KeyView):
    """A key as the answer that creates it shows it: with its secret, this once."""

    secret: str = field(repr=False)

    @classmethod
    def of(cls, key: KeyView, secret: str) -> IssuedKey:
        return cls(**{f.name: getattr(key, f.name) for f in fields(key)}, secret=secret)


DEFAULT_PROJECT = ProjectView(id=DEFAULT_PROJECT_ID, name="Default", slug=DEFAULT_SLUG, created_at=None,
                              created_by=None)


class AccessBook:
    """Every project and key, folded from the access events, brought up to date on demand."""

    def __init__(self, store: AccessStore) -> None:
        self.store = store
        self.position = 0
        self.projects: dict[UUID, ProjectView] = {DEFAULT_PROJECT_ID: DEFAULT_PROJECT}
        self.keys: dict[UUID, KeyView] = {}
        self.by_prefix: dict[str, list[KeyView]] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        head = self.store.recorder.max_notification_id() or 0
        if head <= self.position:
            return
        with self._lock:
            while self.position < head:
                notifications = self.store.recorder.select_notifications(
                    start=self.position, limit=500, stop=head, inclusive_of_start=False)
                if not notifications:
                    break
                for notification in notifications:
                    self._apply(self.store.mapper.to_domain_event(notification))
                    self.position = notification.id

    def _apply(self, event: Any) -> None:
        if isinstance(event, Project.Created):
            self.projects[event.originator_id] = ProjectView(
                id=event.originator_id, name=event.name, slug=event.slug, created_at=event.timestamp,
                created_by=event.actor)
        elif isinstance(event, ApiKey.Issued):
            key = KeyView(
                id=event.originator_id, project_id=None if event.project_id is None else UUID(event.project_id),
                name=event.name, role=event.role, prefix=event.prefix, digest=event.digest,
                created_at=event.timestamp, created_by=event.actor,
                rotated_from=None if event.rotated_from is None else UUID(event.rotated_from))
            self.keys[key.id] = key
            self.by_prefix.setdefault(key.prefix, []).append(key)
        elif isinstance(event, ApiKey.Revoked):
            key = self.keys.get(event.originator_id)
            if key is not None:
                revoked = replace(key, revoked_at=event.timestamp, revoked_by=event.actor)
                self.keys[key.id] = revoked
                self.by_prefix[key.prefix] = [revoked if k.id == key.id else k for k in self.by_prefix[key.prefix]]

    def project_by_slug(self, slug: str) -> ProjectView:
        for project in self.projects.values():
            if project.slug == slug:
                return project
        raise ProjectNotFoundError(f"project {slug!r} not found")
