"""The client's calls about the service itself: health, who the key is, projects and keys,
the service-wide event feed and the read models."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

from evalledger.api import models
from evalledger.client.transport import Transport


class ServiceCalls(Transport):
    def health(self) -> models.Health:
        return self._get(models.Health, "/health")

    def me(self) -> models.Me:
        """The key this client uses: its name, role and project."""
        return self._get(models.Me, "/api/me")

    def list_projects(self) -> models.ProjectList:
        return self._get(models.ProjectList, "/api/projects")

    def create_project(self, name: str, slug: str, *, reason: str | None = None) -> models.Project:
        return self._send(models.Project, "POST", "/api/projects", json={"name": name, "slug": slug}, reason=reason)

    def list_keys(self, project: str | None = None) -> models.ApiKeyList:
        """A project's keys (by slug), or the instance keys (None). Never their secrets."""
        return self._get(models.ApiKeyList, f"/api/projects/{project}/keys" if project else "/api/keys")

    def create_key(self, name: str, role: str, *, project: str | None = None,
                   reason: str | None = None) -> models.IssuedKey:
        """A new key of a project (or an instance key); its `secret` is in this answer only."""
        path = f"/api/projects/{project}/keys" if project else "/api/keys"
        return self._send(models.IssuedKey, "POST", path, json={"name": name, "role": role}, reason=reason)

    def revoke_key(self, key_id: UUID | str, *, reason: str | None = None) -> models.ApiKey:
        return self._send(models.ApiKey, "POST", f"/api/keys/{key_id}/revoke", reason=reason)

    def rotate_key(self, key_id: UUID | str, *, reason: str | None = None) -> models.IssuedKey:
        return self._send(models.IssuedKey, "POST", f"/api/keys/{key_id}/rotate", reason=reason)

    def iter_feed(self, *, after: int = 0, types: list[str] | None = None,
                  per_page: int = 500) -> Iterator[models.FeedEvent]:
        """Every event of the service after position `after`, in log order, up to the head
        when the call reaches it (call again with the last `position` for more)."""
        while True:
            feed = self._get(models.EventFeed, "/api/events", after=after, limit=per_page, type=types)
            yield from feed.events
            if feed.next_after is None or not feed.events:
                return
            after = feed.next_after

    def projections(self) -> models.ProjectionList:
        """The read models: their positions in the log, lag and latest rebuild."""
        return self._get(models.ProjectionList, "/api/projections")

    def rebuild_projection(self, name: str) -> models.RebuildReport:
        """Rebuild a read model from the log beside the live one and switch over (waits)."""
        return self._send(models.RebuildReport, "POST", f"/api/projections/{name}/rebuild")
