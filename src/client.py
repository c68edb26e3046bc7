"""A Python client for the evalledger HTTP API, over httpx, typed with the API's models.

    from evalledger import Client
    with Client("http://127.0.0.1:8000") as client:
        dataset = client.create_dataset(name="qa")
        client.add_item(dataset.id, input={"question": "2+2?"}, expected_output={"answer": "4"})

Every failed call raises `ApiError` carrying the problem details the server sent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from uuid import UUID

import httpx
import orjson
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from evalledger.api import models

M = TypeVar("M", bound=BaseModel)
_UNSET: Any = object()


class ApiError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "")).rsplit("/", 1)[-1]
        self.detail = problem.get("detail", "")
        super().__init__(f"{status} {self.type}: {self.detail}")


LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def find_api_key(base_url: str) -> str | None:
    """The key to use when none is given: EVALLEDGER_API_KEY, else (only for a service on
    this machine, so the key never travels) the first-start key file (see
    `settings.default_key_file`)."""
    key = os.environ.get("EVALLEDGER_API_KEY")
    if key:
        return key.strip()
    if httpx.URL(base_url).host not in LOOPBACK:
        return None
    from evalledger.settings import default_key_file

    try:
        return default_key_file().read_text().strip() or None
    except OSError:
        return None


class Client:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`api_key` (default: EVALLEDGER_API_KEY, else, for a service on this machine, the
        first-start admin key in `.evalledger/admin.key`) is sent with every request.
        `actor` (who the key acts for) and `reason` are sent with every write (X-Actor,
        X-Change-Reason); a `reason` given to one call replaces this one."""
        headers = {"X-Actor": actor} if actor else {}
        key = api_key or find_api_key(base_url)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.reason = reason
        self.http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- plumbing -------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = _UNSET, params: dict[str, Any] | None = None,
                reason: str | None = None) -> Any:
        reason = reason or (self.reason if method != "GET" else None)
        headers = {"X-Change-Reason": reason} if reason else {}
        content = None
        if json is not _UNSET:
            content = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        response = self.http.request(method, path, content=content, params=clean, headers=headers)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            raise ApiError(response.status_code, problem)
        return response.json() if response.content else None

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            raise ApiError(response.status_code, problem)
        return response.json() if response.content else None

    def _download(self, path: str, params: dict[str, Any], destination: str | Path | IO[bytes]) -> httpx.Headers:
        """Stream a GET's body into `destination`; the answer's headers."""
        clean = {k: _param(v) for k, v in params.items() if v is not None}
        with self.http.stream("GET", path, params=clean, timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                self._answer(response)
            if isinstance(destination, (str, Path)):
                with open(destination, "wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            else:
                for chunk in response.iter_bytes():
                    destination.write(chunk)
            return response.headers

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        return model.model_validate(self.request("GET", path, params=params))

    # -- who am I, projects and keys -------------------------------------------------------

    def me(self) -> models.Me:
        """The key this client uses: its name, role and project."""
        return self._get(models.Me, "/api/me")

    def list_projects(self) -> models.ProjectList:
        return self._get(models.ProjectList, "/api/projects")

    def create_project(self, name: str, slug: str, *, reason: str | None = None) -> models.Project:
        return models.Project.model_validate(
            self.request("POST", "/api/projects", json={"name": name, "slug": slug}, reason=reason))

    def list_keys(self, project: str | None = None) -> models.ApiKeyList:
        """A project's keys (by slug), or the instance keys (None). Never their secrets."""
        return self._get(models.ApiKeyList, f"/api/projects/{project}/keys" if project else "/api/keys")

    def create_key(self, name: str, role: str, *, project: str | None = None,
                   reason: str | None = None) -> models.IssuedKey:
        """A new key of a project (or an instance key); its `secret` is in this answer only."""
        path = f"/api/projects/{project}/keys" if project else "/api/keys"
        return models.IssuedKey.model_validate(
            self.request("POST", path, json={"name": name, "role": role}, reason=reason))

    def revoke_key(self, key_id: UUID | str, *, reason: str | None = None) -> models.ApiKey:
        return models.ApiKey.model_validate(self.request("POST", f"/api/keys/{key_id}/revoke", reason=reason))

    def rotate_key(self, key_id: UUID | str, *, reason: str | None = None) -> models.IssuedKey:
        return models.IssuedKey.model_validate(self.request("POST", f"/api/keys/{key_id}/rotate", reason=reason))

    # -- datasets -------------------------------------------------------------------------

    def health(self) -> models.Health:
        return self._get(models.Health, "/health")

    def list_datasets(self, page: int = 0, per_page: int = 10) -> models.DatasetList:
        return self._get(models.DatasetList, "/api/datasets", page=page, perPage=per_page)

    def create_dataset(self, name: str, *, description: str = "", metadata: dict[str, Any] | None = None,
                       input_schema: dict[str, Any] | None = None,
                       expected_output_schema: dict[str, Any] | None = None, project: str | None = None,
                       reason: str | None = None) -> models.DatasetWritten:
        """A new dataset in the key's project (an instance key may name a `project` slug)."""
        body = {"name": name, "description": description, "metadata": metadata or {},
                "inputSchema": input_schema, "expectedOutputSchema": expected_output_schema}
        if project is not None:
            body["project"] = project
        return models.DatasetWritten.model_validate(self.request("POST", "/api/datasets", json=body, reason=reason))

    def get_dataset(self, dataset_id: UUID | str) -> models.Dataset:
        return self._get(models.Dataset, f"/api/datasets/{dataset_id}")

    def update_dataset(self, dataset_id: UUID | str, *, reason: str | None = None,
                       **changes: Any) -> models.DatasetWritten:
        """PATCH the given details (snake_case keyword arguments)."""
        body = {to_camel(k): v for k, v in changes.items()}
        return models.DatasetWritten.model_validate(
            self.request("PATCH", f"/api/datasets/{dataset_id}", json=body, reason=reason)
        )

    def delete_dataset(self, dataset_id: UUID | str, *, reason: str | None = None) -> models.DatasetDeleted:
        return models.DatasetDeleted.model_validate(
            self.request("DELETE", f"/api/datasets/{dataset_id}", reason=reason)
        )

    # -- items ----------------------------------------------------------------------------

    def add_item(self, dataset_id: UUID | str, *, input: Any, expected_output: Any = None,
                 metadata: dict[str, Any] | None = None, external_id: str | None = None,
                 reason: str | None = None) -> models.ItemWritten:
        body = {"input": input, "expectedOutput": expected_output, "metadata": metadata or {},
                "externalId": external_id}
        return models.ItemWritten.model_validate(
            self.request("POST", f"/api/datasets/{dataset_id}/items", json=body, reason=reason)
        )

    def add_items(self, dataset_id: UUID | str, items: list[dict[str, Any]], *,
                  reason: str | None = None) -> models.ItemsWritten:
        """Add a batch (one version). Items are wire dicts: input, expectedOutput, metadata, externalId."""
        return models.ItemsWritten.model_validate(
            self.request("POST", f"/api/datasets/{dataset_id}/items/batch", json={"items": items}, reason=reason)
        )

    def update_item(self, dataset_id: UUID | str, item_id: UUID | str, *, reason: str | None = None,
                    **changes: Any) -> models.ItemWritten:
        """PATCH the given fields (input, expected_output, metadata, external_id)."""
        body = {to_camel(k): v for k, v in changes.items()}
        return models.ItemWritten.model_validate(
            self.request("PATCH", f"/api/datasets/{dataset_id}/items/{item_id}", json=body, reason=reason)
        )

    def delete_item(self, dataset_id: UUID | str, item_id: UUID | str, *,
                    reason: str | None = None) -> models.ItemsDeleted:
        return models.ItemsDeleted.model_validate(
            self.request("DELETE", f"/api/datasets/{dataset_id}/items/{item_id}", reason=reason)
        )

    def copy_items(self, dataset_id: UUID | str, target_dataset_id: UUID | str, item_ids: list[UUID | str], *,
                   version: int | None = None, on_conflict: str = "refuse",
                   reason: str | None = None) -> models.ItemsWritten:
        """Copy items into another dataset (one version there). on_conflict: what to do with an
        item whose externalId the target already uses: refuse (409), skip it, or drop its externalId."""
        body = {"targetDatasetId": str(target_dataset_id), "itemIds": [str(i) for i in item_ids],
                "version": version, "onConflict": on_conflict}
        return models.ItemsWritten.model_validate(
            self.request("POST", f"/api/datasets/{dataset_id}/items/copy", json=body, reason=reason)
        )

    def purge_item(self, dataset_id: UUID | str, item_id: UUID | str, *,
                   reason: str | None = None) -> models.ItemPurged:
        """Erase an item's content from the whole history (it cannot be undone)."""
        return models.ItemPurged.model_validate(
            self.request("DELETE", f"/api/datasets/{dataset_id}/items/{item_id}/purge", reason=reason)
        )

    def delete_items(self, dataset_id: UUID | str, item_ids: list[UUID | str], *,
                     reason: str | None = None) -> models.ItemsDeleted:
        body = {"itemIds": [str(i) for i in item_ids]}
        return models.ItemsDeleted.model_validate(
            self.request("DELETE", f"/api/datasets/{dataset_id}/items/batch", json=body, reason=reason)
        )

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

    def iter_datasets(self, *, per_page: int = 100) -> Iterator[models.Dataset]:
        """Every dataset, newest first, fetching pages as it goes."""
        yield from self._pages(lambda page: self.list_datasets(page=page, per_page=per_page), "datasets")

    def _pages(self, fetch: Any, key: str) -> Iterator[Any]:
        page = 0
        while True:
            listing = fetch(page)
            yield from getattr(listing, key)
            if not listing.pagination.has_more:
                return
            page += 1

    # -- versions, diffs, events ------------------------------------------------------------

    def list_versions(self, dataset_id: UUID | str, *, page: int = 0, per_page: int = 10) -> models.VersionList:
        return self._get(models.VersionList, f"/api/datasets/{dataset_id}/versions", page=page, perPage=per_page)

    def diff(self, dataset_id: UUID | str, from_version: int | None = None, to_version: int | None = None, *,
             from_tag: str | None = None, to_tag: str | None = None, page: int = 0,
             per_page: int = 100) -> models.Diff:
        """Items added, removed and changed between two versions, each given by number or by tag."""
        return self._get(models.Diff, f"/api/datasets/{dataset_id}/diff", page=page, perPage=per_page,
                         **{"from": from_version, "to": to_version, "fromTag": from_tag, "toTag": to_tag})

    # -- import, export, copies ------------------------------------------------------------------

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
        headers = {"Content-Type": {"csv": "text/csv", "json": "application/json"}.get(kind, "application/x-ndjson")}
        reason = reason or self.reason
        if reason:
            headers["X-Change-Reason"] = reason
        clean = {k: _param(v) for k, v in params.items() if v is not None}
        response = self.http.post(f"/api/datasets/{dataset_id}/items/import", content=content, params=clean,
                                  headers=headers)
        return models.ImportResult.model_validate(self._answer(response))

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

    def duplicate_dataset(self, dataset_id: UUID | str, *, name: str | None = None, version: int | None = None,
                          reason: str | None = None) -> models.DatasetWritten:
        """A new dataset with a version's items (default: current), each recording its origin."""
        body = {"name": name, "version": version}
        return models.DatasetWritten.model_validate(
            self.request("POST", f"/api/datasets/{dataset_id}/duplicate", json=body, reason=reason))

    def duplicate_item(self, dataset_id: UUID | str, item_id: UUID | str, *,
                       reason: str | None = None) -> models.ItemsWritten:
        """A copy of one item in its own dataset (without its externalId), in a new version."""
        return models.ItemsWritten.model_validate(
            self.request("POST", f"/api/datasets/{dataset_id}/items/{item_id}/duplicate", reason=reason))

    def dataset_from_items(self, name: str, source_dataset_id: UUID | str, item_ids: list[UUID | str], *,
                           version: int | None = None, reason: str | None = None) -> models.DatasetWritten:
        """A new dataset holding copies of the named items of another dataset's version."""
        body = {"name": name, "sourceDatasetId": str(source_dataset_id), "itemIds": [str(i) for i in item_ids],
                "version": version}
        return models.DatasetWritten.model_validate(
            self.request("POST", "/api/datasets/from-items", json=body, reason=reason))

    # -- version tags -------------------------------------------------------------------------

    def list_tags(self, dataset_id: UUID | str) -> models.TagList:
        return self._get(models.TagList, f"/api/datasets/{dataset_id}/tags")

    def get_tag(self, dataset_id: UUID | str, tag: str) -> models.DatasetTag:
        return self._get(models.DatasetTag, f"/api/datasets/{dataset_id}/tags/{tag}")

    def tag_version(self, dataset_id: UUID | str, tag: str, version: int | None = None, *, move: bool = False,
                    reason: str | None = None) -> models.TagWritten:
        """Name a version (default: the current one) with `tag`; a tag that names another
        version is moved only with `move=True` (else ApiError 409 tag-exists)."""
        body = {"version": version, "move": move}
        return models.TagWritten.model_validate(
            self.request("PUT", f"/api/datasets/{dataset_id}/tags/{tag}", json=body, reason=reason))

    def delete_tag(self, dataset_id: UUID | str, tag: str, *, reason: str | None = None) -> models.TagDeleted:
        return models.TagDeleted.model_validate(
            self.request("DELETE", f"/api/datasets/{dataset_id}/tags/{tag}", reason=reason))

    def list_events(self, dataset_id: UUID | str, *, page: int = 0, per_page: int = 50,
                    types: list[str] | None = None) -> models.EventList:
        return self._get(models.EventList, f"/api/datasets/{dataset_id}/events", page=page, perPage=per_page,
                         type=types)

    def iter_versions(self, dataset_id: UUID | str, *, per_page: int = 100) -> Iterator[models.DatasetVersion]:
        """Every version of a dataset, newest first."""
        yield from self._pages(lambda page: self.list_versions(dataset_id, page=page, per_page=per_page), "versions")

    def iter_events(self, dataset_id: UUID | str, *, types: list[str] | None = None,
                    per_page: int = 500) -> Iterator[models.Event]:
        """A dataset's whole audit trail, oldest first."""
        yield from self._pages(lambda page: self.list_events(dataset_id, page=page, per_page=per_page, types=types),
                               "events")

    def run_events(self, run_id: UUID | str, *, page: int = 0, per_page: int = 50) -> models.EventList:
        """A run's own events, oldest first."""
        return self._get(models.EventList, f"/api/datasets/runs/{run_id}/events", page=page, perPage=per_page)

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
        return models.RebuildReport.model_validate(self.request("POST", f"/api/projections/{name}/rebuild"))

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, dataset_id: UUID | str, *, target: dict[str, Any] | None = None,
                   scorers: list[str | dict[str, Any]] | None = None, version: int | None = None,
                   max_concurrency: int = 8, item_timeout_ms: int = 60_000, max_retries: int = 2,
                   repetitions: int = 1, name: str = "", metadata: dict[str, Any] | None = None,
                   run_id: UUID | str | None = None, reason: str | None = None,
                   tag: str | None = None, model: str | None = None, prompt: str | dict[str, Any] | None = None,
                   code_version: str | None = None, tags: list[str] | None = None) -> models.Run:
        """Start a run (without a target: a caller-driven run you submit results to) on a
        version (default: current), or on the version a dataset `tag` names. `model`,
        `prompt` (a template, or {"template", "version"}), `code_version` and `tags` are kept
        in its metadata, and runs are listed by them."""
        body = {"target": target, "scorers": scorers or [], "version": version, "maxConcurrency": max_concurrency,
                "itemTimeoutMs": item_timeout_ms, "maxRetries": max_retries, "repetitions": repetitions,
                "name": name, "metadata": metadata or {}, "runId": str(run_id) if run_id else None}
        if isinstance(prompt, str):
            prompt = {"template": prompt}
        for key, value in (("tag", tag), ("model", model), ("prompt", prompt), ("codeVersion", code_version),
                           ("tags", tags)):
            if value is not None:
                body[key] = value
        return models.Run.model_validate(
            self.request("POST", f"/api/datasets/{dataset_id}/runs", json=body, reason=reason)
        )

    def get_run(self, run_id: UUID | str) -> models.Run:
        return self._get(models.Run, f"/api/datasets/runs/{run_id}")

    def list_runs(self, dataset_id: UUID | str, *, page: int = 0, per_page: int = 10,
                  tags: list[str] | None = None, model: str | None = None, code_version: str | None = None,
                  prompt_version: str | None = None, status: str | None = None) -> models.RunList:
        """A dataset's runs, newest first; only those with all `tags`, of a `model`, a
        `code_version` (or a prefix), a `prompt_version` or a `status`, when given."""
        params = {"page": page, "perPage": per_page, "tag": tags, "model": model, "codeVersion": code_version,
                  "promptVersion": prompt_version, "status": status}
        return models.RunList.model_validate(self.request("GET", f"/api/datasets/{dataset_id}/runs", params=params))

    def list_results(self, run_id: UUID | str, *, page: int = 0, per_page: int = 50,
                     status: str | None = None) -> models.RunResultList:
        return self._get(models.RunResultList, f"/api/datasets/runs/{run_id}/results", page=page,
                         perPage=per_page, status=status)

    def iter_runs(self, dataset_id: UUID | str, *, per_page: int = 100, **filters: Any) -> Iterator[models.Run]:
        """Every run of a dataset, newest first (with `list_runs`' filters), fetching pages as it goes."""
        page = 0
        while True:
            listing = self.list_runs(dataset_id, page=page, per_page=per_page, **filters)
            yield from listing.runs
            if not listing.pagination.has_more:
                return
            page += 1

    def iter_results(self, run_id: UUID | str, *, status: str | None = None,
                     per_page: int = 1000) -> Iterator[models.RunResult]:
        """Every result of a run in dataset order (optionally only succeeded or failed ones),
        fetching pages as it goes."""
        page = 0
        while True:
            listing = self.list_results(run_id, page=page, per_page=per_page, status=status)
            yield from listing.results
            if not listing.pagination.has_more:
                return
            page += 1

    def wait_for_run(self, run_id: UUID | str, *, timeout: float | None = None, poll: float = 0.5,
                     on_progress: Callable[[models.Run], None] | None = None) -> models.Run:
        """The run once it has finished (completed, failed or cancelled); TimeoutError if it
        has not after `timeout` seconds. `on_progress` is called with the run at each poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if on_progress is not None:
                on_progress(run)
            if run.status in ("completed", "failed", "cancelled"):
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout} s "
                                   f"({run.progress.done} of {run.progress.total} results)")
            time.sleep(poll)

    def run_and_wait(self, dataset_id: UUID | str, *, target: dict[str, Any], timeout: float | None = None,
                     poll: float = 0.5, on_progress: Callable[[models.Run], None] | None = None,
                     **options: Any) -> models.Run:
        """Start a run with a target (`create_run`'s options) and return it once finished."""
        run = self.create_run(dataset_id, target=target, **options)
        return self.wait_for_run(run.id, timeout=timeout, poll=poll, on_progress=on_progress)

    def cancel_run(self, run_id: UUID | str, *, reason: str | None = None) -> models.Run:
        return models.Run.model_validate(self.request("POST", f"/api/datasets/runs/{run_id}/cancel", reason=reason))

    def submit_results(self, run_id: UUID | str, results: list[dict[str, Any]]) -> models.ResultsAccepted:
        """Caller-driven runs: results are wire dicts (itemId, repetition, output, error, scores...)."""
        return models.ResultsAccepted.model_validate(
            self.request("POST", f"/api/datasets/runs/{run_id}/results", json={"results": results})
        )

    def finalize_run(self, run_id: UUID | str) -> models.Run:
        return models.Run.model_validate(self.request("POST", f"/api/datasets/runs/{run_id}/finalize"))

    def analytics(self, run_id: UUID | str, *, threshold: float = 0.5, group_by: str | None = None,
                  item_limit: int = 100) -> models.RunAnalytics:
        return self._get(models.RunAnalytics, f"/api/datasets/runs/{run_id}/analytics", threshold=threshold,
                         groupBy=group_by, itemLimit=item_limit)

    def compare(self, baseline: UUID | str, candidate: UUID | str, *,
                thresholds: dict[str, dict[str, Any]] | None = None, alpha: float = 0.05,
                allow_partial: bool = False, items_page: int = 0, items_per_page: int = 100,
                item_status: str | None = None) -> models.Comparison:
        """Compare a candidate run with a baseline. thresholds: {scorerId: {"value", "direction"}}."""
        body = {"runIdA": str(baseline), "runIdB": str(candidate), "thresholds": thresholds or {},
                "alpha": alpha, "allowPartial": allow_partial, "itemsPage": items_page,
                "itemsPerPage": items_per_page, "itemStatus": item_status}
        return models.Comparison.model_validate(self.request("POST", "/api/datasets/compare", json=body))

    def compare_many(self, baseline: UUID | str, candidates: list[UUID | str], *,
                     thresholds: dict[str, dict[str, Any]] | None = None, alpha: float = 0.05,
                     items_per_page: int = 100) -> models.MultiComparison:
        body = {"runIdA": str(baseline), "candidates": [str(c) for c in candidates], "thresholds": thresholds or {},
                "alpha": alpha, "itemsPerPage": items_per_page}
        return models.MultiComparison.model_validate(self.request("POST", "/api/datasets/compare", json=body))

    def watch_run(self, run_id: UUID | str) -> Iterator[dict[str, Any]]:
        """The run's progress as the server streams it (server-sent events), until it ends."""
        with self.http.stream("GET", f"/api/datasets/runs/{run_id}/stream", timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, response.json())
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield orjson.loads(line[6:])

    # -- reviews (issue 18) ---------------------------------------------------------------

    def get_result(self, run_id: UUID | str, item_id: UUID | str, *, repetition: int = 0) -> models.ResultDetail:
        """One result: the scores that count, its reviews, score history and output diff."""
        return self._get(models.ResultDetail, f"/api/datasets/runs/{run_id}/results/{item_id}", repetition=repetition)

    def review_result(self, run_id: UUID | str, item_id: UUID | str, *, repetition: int = 0,
                      verdict: str | None = None, scores: dict[str, float | None] | None = None,
                      criteria: dict[str, float | None] | None = None, comment: str | None = None,
                      flagged: bool | None = None, reason: str | None = None) -> models.ResultDetail:
        """Review a finished run's result; only what is given changes (see README, Reviewing results)."""
        body: dict[str, Any] = {"repetition": repetition, "scores": scores or {}, "criteria": criteria or {}}
        for key, value in (("verdict", verdict), ("comment", comment), ("flagged", flagged)):
            if value is not None:
                body[key] = value
        return models.ResultDetail.model_validate(self.request(
            "POST", f"/api/datasets/runs/{run_id}/results/{item_id}/review", json=body, reason=reason))

    def review_queue(self, run_id: UUID | str, *, page: int = 0, per_page: int = 50) -> models.RunResultList:
        """The run's results flagged for follow-up."""
        return self._get(models.RunResultList, f"/api/datasets/runs/{run_id}/review-queue", page=page,
                         perPage=per_page)

    def rescore(self, run_id: UUID | str, scorers: list[Any], *, name: str = "", max_concurrency: int | None = None,
                item_timeout_ms: int | None = None, max_retries: int | None = None,
                reason: str | None = None) -> models.Run:
        """Apply scorers to a finished run's stored outputs in a derived run (no target call)."""
        body: dict[str, Any] = {"scorers": scorers, "name": name}
        for key, value in (("maxConcurrency", max_concurrency), ("itemTimeoutMs", item_timeout_ms),
                           ("maxRetries", max_retries)):
            if value is not None:
                body[key] = value
        return models.Run.model_validate(self.request("POST", f"/api/datasets/runs/{run_id}/rescore", json=body,
                                                      reason=reason))


def _param(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value
