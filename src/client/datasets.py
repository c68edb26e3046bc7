"""The client's calls on datasets: their details, items, versions, diffs, tags and audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic.alias_generators import to_camel

from evalledger.api import models
from evalledger.client.transport import Transport


class DatasetCalls(Transport):
    def list_datasets(self, page: int = 0, per_page: int = 10) -> models.DatasetList:
        return self._get(models.DatasetList, "/api/datasets", page=page, perPage=per_page)

    def iter_datasets(self, *, per_page: int = 100) -> Iterator[models.Dataset]:
        """Every dataset, newest first, fetching pages as it goes."""
        yield from self._pages(lambda page: self.list_datasets(page=page, per_page=per_page), "datasets")

    def create_dataset(self, name: str, *, description: str = "", metadata: dict[str, Any] | None = None,
                       input_schema: dict[str, Any] | None = None,
                       expected_output_schema: dict[str, Any] | None = None, project: str | None = None,
                       reason: str | None = None) -> models.DatasetWritten:
        """A new dataset in the key's project (an instance key may name a `project` slug)."""
        body = {"name": name, "description": description, "metadata": metadata or {},
                "inputSchema": input_schema, "expectedOutputSchema": expected_output_schema}
        if project is not None:
            body["project"] = project
        return self._send(models.DatasetWritten, "POST", "/api/datasets", json=body, reason=reason)

    def get_dataset(self, dataset_id: UUID | str) -> models.Dataset:
        return self._get(models.Dataset, f"/api/datasets/{dataset_id}")

    def update_dataset(self, dataset_id: UUID | str, *, reason: str | None = None,
                       **changes: Any) -> models.DatasetWritten:
        """PATCH the given details (snake_case keyword arguments)."""
        body = {to_camel(k): v for k, v in changes.items()}
        return self._send(models.DatasetWritten, "PATCH", f"/api/datasets/{dataset_id}", json=body, reason=reason)

    def delete_dataset(self, dataset_id: UUID | str, *, reason: str | None = None) -> models.DatasetDeleted:
        return self._send(models.DatasetDeleted, "DELETE", f"/api/datasets/{dataset_id}", reason=reason)

    def add_item(self, dataset_id: UUID | str, *, input: Any, expected_output: Any = None,
                 metadata: dict[str, Any] | None = None, external_id: str | None = None,
                 reason: str | None = None) -> models.ItemWritten:
        body = {"input": input, "expectedOutput": expected_output, "metadata": metadata or {},
                "externalId": external_id}
        return self._send(models.ItemWritten, "POST", f"/api/datasets/{dataset_id}/items", json=body, reason=reason)

    def add_items(self, dataset_id: UUID | str, items: list[dict[str, Any]], *,
                  reason: str | None = None) -> models.ItemsWritten:
        """Add a batch (one version). Items are wire dicts: input, expectedOutput, metadata, externalId."""
        return self._send(models.ItemsWritten, "POST", f"/api/datasets/{dataset_id}/items/batch",
                          json={"items": items}, reason=reason)

    def update_item(self, dataset_id: UUID | str, item_id: UUID | str, *, reason: str | None = None,
                    **changes: Any) -> models.ItemWritten:
        """PATCH the given fields (input, expected_output, metadata, external_id)."""
        body = {to_camel(k): v for k, v in changes.items()}
        return self._send(models.ItemWritten, "PATCH", f"/api/datasets/{dataset_id}/items/{item_id}",
                          json=body, reason=reason)

    def delete_item(self, dataset_id: UUID | str, item_id: UUID | str, *,
                    reason: str | None = None) -> models.ItemsDeleted:
        return self._send(models.ItemsDeleted, "DELETE", f"/api/datasets/{dataset_id}/items/{item_id}", reason=reason)

    def purge_item(self, dataset_id: UUID | str, item_id: UUID | str, *,
                   reason: str | None = None) -> models.ItemPurged:
        """Erase an item's content from the whole history (it cannot be undone)."""
        return self._send(models.ItemPurged, "DELETE", f"/api/datasets/{dataset_id}/items/{item_id}/purge",
                          reason=reason)

    def delete_items(self, dataset_id: UUID | str, item_ids: list[UUID | str], *,
                     reason: str | None = None) -> models.ItemsDeleted:
        body = {"itemIds": [str(i) for i in item_ids]}
        return self._send(models.ItemsDeleted, "DELETE", f"/api/datasets/{dataset_id}/items/batch",
                          json=body, reason=reason)

    def list_items(self, dataset_id: UUID | str, *, page: int = 0, per_page: int = 10,
                   version: int | None = None, as_of: datetime | None = None,
                   search: str | None = None, tag: str | None = None) -> models.ItemList:
        """Items at a version (default: current; or the one current `as_of`, or the one `tag` names)."""
        return self._get(models.ItemList, f"/api/datasets/{dataset_id}/items", page=page, perPage=per_page,
                         version=version, asOf=as_of, search=search, tag=tag)

    def iter_items(self, dataset_id: UUID | str, *, version: int | None = None, tag: str | None = None,
                   per_page: int = 1000) -> Iterator[models.Item]:
        """Every item at a version (pinned on the first page, so later writes don't shift it)."""
        page = 0
        while True:
            listing = self.list_items(dataset_id, page=page, per_page=per_page, version=version,
                                      tag=tag if version is None else None)
            version = listing.version
            yield from listing.items
            if not listing.pagination.has_more:
                return
            page += 1

    def get_item(self, dataset_id: UUID | str, item_id: UUID | str, *, version: int | None = None,
                 as_of: datetime | None = None, tag: str | None = None) -> models.Item:
        return self._get(models.Item, f"/api/datasets/{dataset_id}/items/{item_id}", version=version, asOf=as_of,
                         tag=tag)

    def item_history(self, dataset_id: UUID | str, item_id: UUID | str) -> models.ItemHistory:
        return self._get(models.ItemHistory, f"/api/datasets/{dataset_id}/items/{item_id}/history")

    def list_versions(self, dataset_id: UUID | str, *, page: int = 0, per_page: int = 10) -> models.VersionList:
        return self._get(models.VersionList, f"/api/datasets/{dataset_id}/versions", page=page, perPage=per_page)

    def iter_versions(self, dataset_id: UUID | str, *, per_page: int = 100) -> Iterator[models.DatasetVersion]:
        """Every version of a dataset, newest first."""
        yield from self._pages(lambda page: self.list_versions(dataset_id, page=page, per_page=per_page), "versions")

    def diff(self, dataset_id: UUID | str, from_version: int | None = None, to_version: int | None = None, *,
             from_tag: str | None = None, to_tag: str | None = None, page: int = 0,
             per_page: int = 100) -> models.Diff:
        """Items added, removed and changed between two versions, each given by number or by tag."""
        return self._get(models.Diff, f"/api/datasets/{dataset_id}/diff", page=page, perPage=per_page,
                         **{"from": from_version, "to": to_version, "fromTag": from_tag, "toTag": to_tag})

    def list_tags(self, dataset_id: UUID | str) -> models.TagList:
        return self._get(models.TagList, f"/api/datasets/{dataset_id}/tags")

    def get_tag(self, dataset_id: UUID | str, tag: str) -> models.DatasetTag:
        return self._get(models.DatasetTag, f"/api/datasets/{dataset_id}/tags/{tag}")

    def tag_version(self, dataset_id: UUID | str, tag: str, version: int | None = None, *, move: bool = False,
                    reason: str | None = None) -> models.TagWritten:
        """Name a version (default: the current one) with `tag`; a tag that names another
        version is moved only with `move=True` (else ApiError 409 tag-exists)."""
        body = {"version": version, "move": move}
        return self._send(models.TagWritten, "PUT", f"/api/datasets/{dataset_id}/tags/{tag}", json=body, reason=reason)

    def delete_tag(self, dataset_id: UUID | str, tag: str, *, reason: str | None = None) -> models.TagDeleted:
        return self._send(models.TagDeleted, "DELETE", f"/api/datasets/{dataset_id}/tags/{tag}", reason=reason)

    def list_events(self, dataset_id: UUID | str, *, page: int = 0, per_page: int = 50,
                    types: list[str] | None = None) -> models.EventList:
        return self._get(models.EventList, f"/api/datasets/{dataset_id}/events", page=page, perPage=per_page,
                         type=types)

    def iter_events(self, dataset_id: UUID | str, *, types: list[str] | None = None,
                    per_page: int = 500) -> Iterator[models.Event]:
        """A dataset's whole audit trail, oldest first."""
        yield from self._pages(lambda page: self.list_events(dataset_id, page=page, per_page=per_page, types=types),
                               "events")
