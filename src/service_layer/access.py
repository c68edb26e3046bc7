"""Projects and API keys: the use cases that manage them, and the check every request
goes through (`authenticate`). What they read is the book of projects and keys folded from
the access events (access_book.py), always brought up to date first.

Secrets are `elk_` and 43 random URL-safe characters (256 bits). Only their SHA-256 is
stored (a slow hash buys nothing for secrets this long); they are found by their first 12
characters and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from psycopg.sql import SQL, Identifier

from evalledger.domain.access import (
    DEFAULT_PROJECT_ID,
    DEFAULT_SLUG,
    ApiKey,
    ForbiddenError,
    KeyNotFoundError,
    NotAuthenticatedError,
    Principal,
    Project,
    ProjectExistsError,
    ProjectNotFoundError,
    check_role,
    check_slug,
)
from evalledger.service_layer.access_book import AccessBook, AccessStore, IssuedKey, KeyView, ProjectView

log = logging.getLogger(__name__)

SECRET_PREFIX = "elk_"
PREFIX_LENGTH = 12
# Longest Authorization value looked at; anything longer is refused before hashing.
MAX_SECRET_LENGTH = 200
# How often a key's `lastUsedAt` is written, at most (per process).
LAST_USED_EVERY = 60.0
# The instance admin key given by EVALLEDGER_ADMIN_KEY must be at least this long.
MIN_ADMIN_KEY_LENGTH = 32


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(slots=True)
class Me:
    """The calling key: its name, role, project and the actor its changes record."""

    key_id: UUID | None
    name: str
    role: str
    project: ProjectView | None
    actor: str


@dataclass
class AccessUseCases:
    store: AccessStore
    conninfo: str
    schema: str
    admin_key: str | None = None
    book: AccessBook = field(init=False)
    _last_used: dict[UUID, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.book = AccessBook(self.store)

    # -- tables beside the events --------------------------------------------------------

    def _transaction(self) -> Any:
        return self.store.factory.datastore.transaction(commit=True)  # type: ignore[attr-defined]

    def create_tables(self) -> None:
        with self._transaction() as curs:
            curs.execute(SQL("CREATE TABLE IF NOT EXISTS {} (key_id uuid PRIMARY KEY,"
                             " last_used_at timestamptz NOT NULL)").format(self._table("api_key_usage")))
            curs.execute(SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, value text NOT NULL)").format(
                self._table("instance_secrets")))

    def _table(self, name: str) -> Any:
        return SQL("{}.{}").format(Identifier(self.schema), Identifier(name))

    def instance_secret(self, name: str) -> str:
        """A random secret shared by every process on this database (made on first use),
        e.g. the key that signs the web UI's session cookies."""
        with self._transaction() as curs:
            curs.execute(SQL("INSERT INTO {} (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING").format(
                self._table("instance_secrets")), (name, secrets.token_urlsafe(48)))
            curs.execute(SQL("SELECT value FROM {} WHERE name = %s").format(self._table("instance_secrets")),
                         (name,))
            row = curs.fetchone()
        assert row is not None
        return row["value"]

    # -- who is calling ------------------------------------------------------------------

    def authenticate(self, secret: str | None) -> Principal:
        """The principal of a key's secret, or NotAuthenticatedError (the same for a missing,
        malformed, unknown or revoked key: nothing tells them apart)."""
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            raise NotAuthenticatedError("send an API key: Authorization: Bearer <key>")
        if self.admin_key is not None and hmac.compare_digest(secret.encode(), self.admin_key.encode()):
            return Principal(key_id=None, name="admin", project_id=None, role="admin")
        self.book.refresh()
        digest = digest_of(secret)
        for key in self.book.by_prefix.get(secret[:PREFIX_LENGTH], ()):
            if hmac.compare_digest(key.digest, digest) and key.revoked_at is None:
                self._note_use(key.id)
                return key.principal()
        raise NotAuthenticatedError("the API key is unknown or revoked")

    def principal_of_key(self, key_id: str) -> Principal:
        """The principal of a signed-in session's key id (checked again on every request)."""
        if key_id == "env" and self.admin_key is not None:
            return Principal(key_id=None, name="admin", project_id=None, role="admin")
        self.book.refresh()
        try:
            key = self.book.keys.get(UUID(key_id))
        except ValueError:
            key = None
        if key is None or key.revoked_at is not None:
            raise NotAuthenticatedError("the session's key is unknown or revoked; sign in again")
        self._note_use(key.id)
        return key.principal()

    def _note_use(self, key_id: UUID) -> None:
        now = time.monotonic()
        if now - self._last_used.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._last_used[key_id] = now
        try:
            with self._transaction() as curs:
                curs.execute(SQL("INSERT INTO {} (key_id, last_used_at) VALUES (%s, now())"
                                 " ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at").format(
                    self._table("api_key_usage")), (key_id,))
        except Exception:  # noqa: BLE001  # only bookkeeping: the request goes on
            log.warning("could not record the last use of key %s", key_id)

    def _last_used_at(self) -> dict[UUID, datetime]:
        with self._transaction() as curs:
            curs.execute(SQL("SELECT key_id, last_used_at FROM {}").format(self._table("api_key_usage")))
            return {row["key_id"]: row["last_used_at"] for row in curs.fetchall()}

    # -- projects ------------------------------------------------------------------------

    def project_of_slug(self, principal: Principal, slug: str | None) -> UUID:
        """The project a new dataset goes into: the key's own, or (instance keys) the one
        named, by default `default`. A project key naming another project is refused."""
        if slug is None:
            return principal.project_id or DEFAULT_PROJECT_ID
        self.book.refresh()
        try:
            project = self.book.project_by_slug(slug)
        except ProjectNotFoundError:
            if principal.is_instance:
                raise
            project = None
        if project is None or not principal.sees(project.id):
            raise ForbiddenError(f"this key belongs to another project; it cannot create in {slug!r}")
        return project.id

    def whoami(self, principal: Principal) -> Me:
        """The calling key, its project (none for an instance key) and the actor its changes record."""
        project = None
        if principal.project_id is not None:
            self.book.refresh()
            project = self.book.projects[principal.project_id]
        return Me(principal.key_id, principal.name, principal.role, project, principal.actor())

    def create_project(self, principal: Principal, *, name: str, slug: str, reason: str | None = None,
                       on_behalf_of: str | None = None) -> ProjectView:
        self._require_instance(principal)
        self.book.refresh()
        check_slug(slug)
        if slug == DEFAULT_SLUG or any(p.slug == slug for p in self.book.projects.values()):
            raise ProjectExistsError(f"a project with slug {slug!r} exists already")
        project = Project.create(name=name, slug=slug, actor=principal.actor(on_behalf_of), reason=reason)
        try:
            self.store.save(project)
        except IntegrityError:
            raise ProjectExistsError(f"a project with slug {slug!r} exists already") from None
        self.book.refresh()
        return self.book.projects[project.id]

    def list_projects(self, principal: Principal) -> list[ProjectView]:
        self.book.refresh()
        projects = [p for p in self.book.projects.values() if principal.sees(p.id)]
        return sorted(projects, key=lambda p: p.slug)

    def get_project(self, principal: Principal, slug: str) -> ProjectView:
        self.book.refresh()
        project = self.book.project_by_slug(slug)
        if not principal.sees(project.id):
            raise ProjectNotFoundError(f"project {slug!r} not found")
        return project

    # -- keys ----------------------------------------------------------------------------

    def issue_key(self, principal: Principal, *, project_slug: str | None, name: str, role: str,
                  reason: str | None = None, on_behalf_of: str | None = None,
                  rotated_from: KeyView | None = None) -> IssuedKey:
        """A new key: its details and, this once, its secret. `project_slug` None makes an
        instance key (instance admins only)."""
        check_role(role)
        project_id = self._managed_project(principal, project_slug)
        secret = new_secret()
        key = ApiKey.issue(project_id=project_id, name=name, role=role, prefix=secret[:PREFIX_LENGTH],
                           digest=digest_of(secret), actor=principal.actor(on_behalf_of), reason=reason,
                           rotated_from=None if rotated_from is None else rotated_from.id)
        if rotated_from is not None:
            old = self.store.repository.get(rotated_from.id)
            old.revoke(actor=principal.actor(on_behalf_of), reason=reason or "rotated")
            self.store.save(key, old)
        else:
            self.store.save(key)
        self.book.refresh()
        return IssuedKey.of(self.book.keys[key.id], secret)

    def list_keys(self, principal: Principal, project_slug: str | None) -> list[KeyView]:
        """The keys of a project (or, None, the instance keys), newest first; never a secret."""
        project_id = self._managed_project(principal, project_slug)
        used = self._last_used_at()
        keys = [k for k in self.book.keys.values() if k.project_id == project_id]
        keys.sort(key=lambda k: k.created_at, reverse=True)
        return [replace(k, last_used_at=used.get(k.id)) for k in keys]

    def visible_key(self, principal: Principal, key_id: UUID) -> KeyView:
        """A key of the caller's project (any key, for instance keys); else not found."""
        self.book.refresh()
        key = self.book.keys.get(key_id)
        if key is None or not principal.sees(key.project_id) or (key.project_id is None and not principal.is_instance):
            raise KeyNotFoundError(f"key {key_id} not found")
        return key

    def _managed_key(self, principal: Principal, key_id: UUID) -> KeyView:
        key = self.visible_key(principal, key_id)
        self._require_admin_of(principal, key.project_id)
        return key

    def revoke_key(self, principal: Principal, key_id: UUID, *, reason: str | None = None,
                   on_behalf_of: str | None = None) -> KeyView:
        key = self._managed_key(principal, key_id)
        try:
            aggregate = self.store.repository.get(key.id)
        except AggregateNotFoundError:
            raise KeyNotFoundError(f"key {key_id} not found") from None
        aggregate.revoke(actor=principal.actor(on_behalf_of), reason=reason)
        self.store.save(aggregate)
        self.book.refresh()
        return self.book.keys[key.id]

    def rotate_key(self, principal: Principal, key_id: UUID, *, reason: str | None = None,
                   on_behalf_of: str | None = None) -> IssuedKey:
        """A new key with the same project, name and role; the old one is revoked in the
        same transaction."""
        key = self._managed_key(principal, key_id)
        if key.revoked_at is not None:
            raise KeyNotFoundError(f"key {key_id} is revoked; issue a new one instead")
        slug = None if key.project_id is None else self.book.projects[key.project_id].slug
        if key.project_id is None:
            self._require_instance(principal)
        return self.issue_key(principal, project_slug=slug, name=key.name, role=key.role, reason=reason,
                              on_behalf_of=on_behalf_of, rotated_from=key)

    def _managed_project(self, principal: Principal, project_slug: str | None) -> UUID | None:
        """The project whose keys the caller manages: its slug's (project admins), or None for
        the instance keys (instance admins)."""
        if project_slug is None:
            self._require_instance(principal)
            return None
        project_id = self.get_project(principal, project_slug).id
        self._require_admin_of(principal, project_id)
        return project_id

    def _require_instance(self, principal: Principal) -> None:
        if not (principal.is_instance and principal.may("admin")):
            raise ForbiddenError("only an instance admin key may do this")

    def _require_admin_of(self, principal: Principal, project_id: UUID | None) -> None:
        if not (principal.sees(project_id) and principal.may("admin")):
            raise ForbiddenError("only an admin key of the project may manage its keys")

    # -- first start ---------------------------------------------------------------------

    def has_keys(self) -> bool:
        self.book.refresh()
        return any(k.revoked_at is None for k in self.book.keys.values())

    def first_start_key(self, key_file: Path) -> str | None:
        """With no EVALLEDGER_ADMIN_KEY and no live key at all, issue an instance admin key,
        write it to `key_file` (readable by the owner only) and return it, once. Several
        processes starting together issue one key between them."""
        if self.admin_key is not None:
            return None
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"{self.schema}.first-start-key",))
            try:
                if self.has_keys():
                    return None
                system = Principal(key_id=None, name="first start", project_id=None, role="admin")
                issued = self.issue_key(system, project_slug=None, name="first-start admin", role="admin",
                                        reason="no key existed when the service first started")
                write_key_file(key_file, issued.secret)
                return issued.secret
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"{self.schema}.first-start-key",))


def write_key_file(path: Path, secret: str) -> None:
    """Write a key where only the owner can read it (the file is created 0600, never
    world-readable even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    os.replace(tmp, path)

