"""The client's calls that move items in bulk: import and export files, copies of items and datasets."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any
from uuid import UUID

from evalledger.api import models
from evalledger.client.transport import Transport, answer, query


class TransferCalls(Transport):
    def import_items(self, dataset_id: UUID | str, source: str | Path | bytes | IO[bytes], *,
                     format: str | None = None, filename: str | None = None, mode: str = "append",
                     dry_run: bool = False, skip_invalid: bool = False, mapping: dict[str, str] | None = None,
                     reason: str | None = None) -> models.ImportResult:
        """Import a CSV, JSON (an array) or JSONL file as one new version. `source` is a path,
        the file's bytes or an open binary file; the format comes from `format`, else from the
        file's name. mode: append, upsert (by externalId) or replace. `mapping`: CSV column ->
        role (input, expectedOutput, metadata, externalId, ignore). A refused import raises
        ApiError with the rows' problems in `problem["errors"]`."""
        if isinstance(source, (str, Path)):
            path = Path(source)
            filename = filename or path.name
            content: Any = path.read_bytes()
        else:
            content = source
        params = {"format": format, "filename": filename, "mode": mode, "dryRun": dry_run or None,
                  "skipInvalid": skip_invalid or None,
                  "map": [f"{column}={role}" for column, role in (mapping or {}).items()] or None}
        kind = format or (filename or "").rsplit(".", 1)[-1].lower()
        headers = self._reason_headers("POST", reason)
        headers["Content-Type"] = {"csv": "text/csv", "json": "application/json"}.get(kind, "application/x-ndjson")
        response = self.http.post(f"/api/datasets/{dataset_id}/items/import", content=content, params=query(params),
                                  headers=headers)
        return models.ImportResult.model_validate(answer(response))

    def export_items(self, dataset_id: UUID | str, destination: str | Path | IO[bytes], *, format: str = "jsonl",
                     version: int | None = None, tag: str | None = None, include_ids: bool = False) -> int:
        """Write a version's items (default: current; or the one `tag` names) as CSV, JSON
        or JSONL to a file (path or open binary file), streamed. Returns the version written."""
        params = {"format": format, "version": version, "tag": tag, "includeIds": include_ids or None}
        return int(self._download(f"/api/datasets/{dataset_id}/items/export", params, destination)
                   .get("X-Dataset-Version", -1))

    def export_results(self, run_id: UUID | str, destination: str | Path | IO[bytes], *,
                       format: str = "jsonl") -> None:
        """Write a run's results as CSV or JSONL to a file (path or open binary file), streamed."""
        self._download(f"/api/datasets/runs/{run_id}/results/export", {"format": format}, destination)

    def copy_items(self, dataset_id: UUID | str, target_dataset_id: UUID | str, item_ids: list[UUID | str], *,
                   version: int | None = None, on_conflict: str = "refuse",
                   reason: str | None = None) -> models.ItemsWritten:
        """Copy items into another dataset (one version there). on_conflict: what to do with an
        item whose externalId the target already uses: refuse (409), skip it, or drop its externalId."""
        body = {"targetDatasetId": str(target_dataset_id), "itemIds": [str(i) for i in item_ids],
                "version": version, "onConflict": on_conflict}
        return self._send(models.ItemsWritten, "POST", f"/api/datasets/{dataset_id}/items/copy",
                          json=body, reason=reason)

    def duplicate_dataset(self, dataset_id: UUID | str, *, name: str | None = None, version: int | None = None,
                          reason: str | None = None) -> models.DatasetWritten:
        """A new dataset with a version's items (default: current), each recording its origin."""
        body = {"name": name, "version": version}
        return self._send(models.DatasetWritten, "POST", f"/api/datasets/{dataset_id}/duplicate",
                          json=body, reason=reason)

    def duplicate_item(self, dataset_id: UUID | str, item_id: UUID | str, *,
                       reason: str | None = None) -> models.ItemsWritten:
        """A copy of one item in its own dataset (without its externalId), in a new version."""
        return self._send(models.ItemsWritten, "POST", f"/api/datasets/{dataset_id}/items/{item_id}/duplicate",
                          reason=reason)

    def dataset_from_items(self, name: str, source_dataset_id: UUID | str, item_ids: list[UUID | str], *,
                           version: int | None = None, reason: str | None = None) -> models.DatasetWritten:
        """A new dataset holding copies of the named items of another dataset's version."""
        body = {"name": name, "sourceDatasetId": str(source_dataset_id), "itemIds": [str(i) for i in item_ids],
                "version": version}
        return self._send(models.DatasetWritten, "POST", "/api/datasets/from-items", json=body, reason=reason)
