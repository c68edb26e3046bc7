"""Projects and API keys on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from evalledger.api.models.base import *  # noqa: F403


# -- projects and keys ---------------------------------------------------------------------

Slug = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
             description="Lowercase letters, digits and inner hyphens; the project's name in URLs.")
Role = Literal["reader", "writer", "admin"]


class ProjectCreate(WireModel):
    name: str = Name
    slug: str = Slug


class Project(ResponseModel):
    id: UUID
    name: str
    slug: str
    created_at: datetime | None = Field(description="null for the default project, which always exists.")
    created_by: str | None


class ProjectList(ResponseModel):
    projects: list[Project]


class KeyCreate(WireModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w][\w .@:+-]{0,99}$",
                      description="What the key is for (shown in lists and recorded as the actor of its changes).")
    role: Role


class ApiKey(ResponseModel):
    id: UUID
    project_id: UUID | None = Field(description="null for an instance key.")
    name: str
    role: Role
    prefix: str = Field(description="The secret's first characters, to recognise it.")
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = None
    revoked_at: datetime | None
    revoked_by: str | None
    rotated_from: UUID | None


class IssuedKey(ApiKey):
    secret: str = Field(description="The key itself. Shown this once: only a hash of it is stored.")


class ApiKeyList(ResponseModel):
    keys: list[ApiKey]


class Me(ResponseModel):
    key_id: UUID | None = Field(description="null for the key set by EVALLEDGER_ADMIN_KEY.")
    name: str
    role: Role
    project: Project | None = Field(description="null for an instance key (it sees every project).")
    actor: str = Field(description="What the audit trail records for this key's changes.")
