"""Who may do what: projects, API keys and their roles. No I/O.

Every dataset (and so every run of it) belongs to exactly one project. A key belongs to
one project and has a role there, or is an instance key (no project) that manages
projects and sees everything. Creating a project, issuing a key and revoking one are
events, so access changes are audited like data changes.

A project's id is derived from its slug, so two processes creating the same slug at once
collide in the event store instead of making two projects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from evalledger.domain.audited import AuditedEvent
from evalledger.domain.errors import ConflictError, DomainError, InvalidRequestError, NotFoundError

# reader: read everything of the project; writer: also change datasets and runs;
# admin: also purge, and manage the project's keys.
ROLES = ("reader", "writer", "admin")
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
KEY_NAME = re.compile(r"^[\w][\w .@:+-]{0,99}$")
DEFAULT_SLUG = "default"


def project_id_of(slug: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"evalledger:project:{slug}")


# Datasets created before projects existed belong to this one (a read-time default).
DEFAULT_PROJECT_ID = project_id_of(DEFAULT_SLUG)


class ProjectNotFoundError(NotFoundError):
    problem_type = "project-not-found"


class KeyNotFoundError(NotFoundError):
    problem_type = "key-not-found"


class ProjectExistsError(ConflictError):
    problem_type = "project-exists"


class KeyRevokedError(ConflictError):
    problem_type = "key-revoked"


class NotAuthenticatedError(DomainError):
    """No key, or one that is unknown or revoked (401)."""

    problem_type = "not-authenticated"


class ForbiddenError(DomainError):
    """The key's role does not allow this (403)."""

    problem_type = "forbidden"


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def check_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise InvalidRequestError(
            f"a project slug is 1-63 lowercase letters, digits and inner hyphens; got {slug!r}")
    return slug


def check_key_name(name: str) -> str:
    if not KEY_NAME.match(name):
        raise InvalidRequestError(
            "a key name is 1-100 letters, digits, spaces and . @ : + - _ , starting with a letter or digit; "
            f"got {name!r}")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidRequestError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    return role


class Project(Aggregate):
    class Event(AuditedEvent):
        pass

    class Created(Event, Aggregate.Created):
        class_version = 1
        name: str
        slug: str

    def __init__(self, name: str, slug: str) -> None:
        self.name = name
        self.slug = slug

    @classmethod
    def create(cls, *, name: str, slug: str, actor: str, reason: str | None = None) -> Project:
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidRequestError("a project name is 1-200 characters")
        return cls._create(cls.Created, id=project_id_of(check_slug(slug)), name=name, slug=slug, actor=actor,
                           reason=reason)


class ApiKey(Aggregate):
    """A key is known by a digest of its secret; the secret itself is never stored."""

    class Event(AuditedEvent):
        pass

    class Issued(Event, Aggregate.Created):
        class_version = 1
        project_id: str | None  # None: an instance key
        name: str
        role: str
        prefix: str  # the secret's first characters, to recognise it in lists
        digest: str  # sha256 of the secret, hex
        rotated_from: str | None

    class Revoked(Event):
        class_version = 1

        def apply(self, key: ApiKey) -> None:
            key.revoked = True

    def __init__(self, project_id: str | None, name: str, role: str, prefix: str, digest: str,
                 rotated_from: str | None) -> None:
        self.project_id = project_id
        self.name = name
        self.role = role
        self.prefix = prefix
        self.digest = digest
        self.rotated_from = rotated_from
        self.revoked = False

    @classmethod
    def issue(cls, *, project_id: UUID | None, name: str, role: str, prefix: str, digest: str, actor: str,
              rotated_from: UUID | None = None, reason: str | None = None) -> ApiKey:
        return cls._create(
            cls.Issued, project_id=None if project_id is None else str(project_id), name=check_key_name(name),
            role=check_role(role), prefix=prefix, digest=digest,
            rotated_from=None if rotated_from is None else str(rotated_from), actor=actor, reason=reason,
        )

    def revoke(self, *, actor: str, reason: str | None = None) -> None:
        if self.revoked:
            raise KeyRevokedError(f"key {self.id} is revoked already")
        self.trigger_event(self.Revoked, actor=actor, reason=reason)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's identity, its project (None for an instance key) and role."""

    key_id: UUID | None  # None: the instance admin key set by EVALLEDGER_ADMIN_KEY
    name: str
    project_id: UUID | None
    role: str

    @property
    def is_instance(self) -> bool:
        return self.project_id is None

    def may(self, role: str) -> bool:
        return role_at_least(self.role, role)

    def sees(self, project_id: UUID | None) -> bool:
        """May this key see an object of `project_id`? Instance keys see every project."""
        return self.project_id is None or self.project_id == project_id

    def actor(self, on_behalf_of: str | None = None) -> str:
        """What the audit trail records: the key's name and id, and the caller's own
        `X-Actor` only as who it acted for, never in place of the key."""
        identity = f"{self.name} (key {self.key_id or 'env'})"
        if on_behalf_of and on_behalf_of.strip():
            return f"{identity} on behalf of {on_behalf_of.strip()}"
        return identity


ACTOR = re.compile(r"^(?P<name>.*?) \(key (?P<key>[0-9a-f-]{36}|env)\)(?: on behalf of (?P<for>.*))?$", re.S)


def parse_actor(actor: str) -> dict[str, Any]:
    """The parts of a recorded actor: key name and id and who it acted for, where the
    actor was recorded from a key (events before keys carry free text)."""
    match = ACTOR.match(actor)
    if match is None:
        return {}
    return {"keyName": match["name"], "keyId": match["key"], "onBehalfOf": match["for"]}


class RateLimitedError(DomainError):
    """The key sent more requests than its limit allows (429 with `Retry-After`)."""

    problem_type = "rate-limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
