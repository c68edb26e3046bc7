"""Where `evaluate()` keeps its run: a remote service over HTTP, or the database itself
through the service's own use cases, in this process (no server started).

Both answer the same wire dicts the HTTP API sends (camelCase keys, ids and times as
strings), so the rest of the SDK does not know which one it talks to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import orjson

from evalledger.api import models
from evalledger.api.wire import encode
from evalledger.client import ApiError, Client
from evalledger.domain.runs import RunSettings
from evalledger.execution.runner import RunItem

if TYPE_CHECKING:
    from evalledger.bootstrap import Ledger
    from evalledger.settings import Settings

PAGE = 1000  # the API's largest page


class Backend(Protocol):
    ui_base: str | None  # where the web UI is, for links (None: no server)

    def find_dataset(self, dataset: str) -> dict[str, Any]: ...
    def resolve_version(self, dataset_id: str, version: int | None) -> int: ...
    def create_run(self, dataset_id: str, *, scorers: list[str], settings: RunSettings, version: int | None,
                   name: str, metadata: dict[str, Any], tag: str | None = None) -> dict[str, Any]: ...
    def get_run(self, run_id: str) -> dict[str, Any]: ...
    def run_pages(self, dataset_id: str) -> Iterator[list[dict[str, Any]]]: ...
    def item_pages(self, dataset_id: str, version: int) -> Iterator[list[Any]]: ...  # of items the runner takes
    def result_pages(self, run_id: str) -> Iterator[list[dict[str, Any]]]: ...
    def submit(self, run_id: str, results: list[dict[str, Any]]) -> None: ...
    def finalize(self, run_id: str) -> dict[str, Any]: ...
    def analytics(self, run_id: str) -> dict[str, Any]: ...
    def compare(self, baseline: str, candidate: str, alpha: float) -> dict[str, Any]: ...
    def close(self) -> None: ...


class DatasetLookupError(LookupError):
    pass


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def pick_dataset(dataset: str, pages: Iterator[list[dict[str, Any]]]) -> dict[str, Any]:
    """The one dataset named `dataset` (names are not unique: two is an error)."""
    found = [d for page in pages for d in page if d["name"] == dataset]
    if not found:
        raise DatasetLookupError(f"no dataset is named {dataset!r}")
    if len(found) > 1:
        ids = ", ".join(str(d["id"]) for d in found)
        raise DatasetLookupError(f"{len(found)} datasets are named {dataset!r} ({ids}); pass the id instead")
    return found[0]


class RemoteBackend:
    """A running evalledger service, through the Python client."""

    def __init__(self, url: str, *, actor: str | None = None) -> None:
        self.ui_base = url.rstrip("/")
        self.client = Client(self.ui_base, actor=actor or "evaluate")

    def _pages(self, path: str, key: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
        page = 0
        while True:
            answer = self.client.request("GET", path, params={**params, "page": page, "perPage": PAGE})
            yield answer[key]
            if not answer["pagination"]["hasMore"]:
                return
            page += 1

    def find_dataset(self, dataset: str) -> dict[str, Any]:
        if _is_uuid(dataset):
            try:
                return self.client.request("GET", f"/api/datasets/{dataset}")
            except ApiError as error:
                if error.status != 404:
                    raise
        return pick_dataset(dataset, self._pages("/api/datasets", "datasets"))

    def resolve_version(self, dataset_id: str, version: int | None) -> int:
        answer = self.client.request("GET", f"/api/datasets/{dataset_id}/items",
                                     params={"perPage": 1, "version": version})
        return int(answer["version"])

    def create_run(self, dataset_id: str, *, scorers: list[str], settings: RunSettings, version: int | None,
                   name: str, metadata: dict[str, Any], tag: str | None = None) -> dict[str, Any]:
        body = {"target": None, "scorers": scorers, "version": version, "name": name, "metadata": metadata,
                **settings.as_wire()}
        if tag is not None:
            body["tag"] = tag
        return self.client.request("POST", f"/api/datasets/{dataset_id}/runs", json=body)

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.client.request("GET", f"/api/datasets/runs/{run_id}")

    def run_pages(self, dataset_id: str) -> Iterator[list[dict[str, Any]]]:
        return self._pages(f"/api/datasets/{dataset_id}/runs", "runs")

    def item_pages(self, dataset_id: str, version: int) -> Iterator[list[RunItem]]:
        for page in self._pages(f"/api/datasets/{dataset_id}/items", "items", version=version):
            yield [RunItem(item["id"], item["input"], item["expectedOutput"], item["metadata"]) for item in page]

    def result_pages(self, run_id: str) -> Iterator[list[dict[str, Any]]]:
        return self._pages(f"/api/datasets/runs/{run_id}/results", "results")

    def submit(self, run_id: str, results: list[dict[str, Any]]) -> None:
        self.client.request("POST", f"/api/datasets/runs/{run_id}/results", json={"results": results})

    def finalize(self, run_id: str) -> dict[str, Any]:
        return self.client.request("POST", f"/api/datasets/runs/{run_id}/finalize")

    def analytics(self, run_id: str) -> dict[str, Any]:
        return self.client.request("GET", f"/api/datasets/runs/{run_id}/analytics")

    def compare(self, baseline: str, candidate: str, alpha: float) -> dict[str, Any]:
        body = {"runIdA": baseline, "runIdB": candidate, "alpha": alpha, "itemsPerPage": 1000}
        return self.client.request("POST", "/api/datasets/compare", json=body)

    def close(self) -> None:
        self.client.close()


def _wire(value: Any) -> Any:
    """A use case's answer as the HTTP API would send it (ids and times as strings)."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC))


class LocalBackend:
    """The database, in this process, through the use cases the service runs: the same
    checks and the same events as over HTTP, with no server. Builds (and closes) its own
    ledger unless given one."""

    ui_base: str | None = None

    def __init__(self, *, settings: Settings | None = None, ledger: Ledger | None = None) -> None:
        from dataclasses import replace

        from evalledger.bootstrap import build_ledger
        from evalledger.settings import Settings

        self.owned = ledger is None
        if ledger is None:
            # No background work here: no run of the service's is resumed in this process.
            ledger = build_ledger(replace(settings or Settings.from_env(), resume_runs=False))
            for follower in ledger.followers:
                follower.catch_up()
        self.ledger = ledger

    def find_dataset(self, dataset: str) -> dict[str, Any]:
        from evalledger.domain.errors import NotFoundError

        queries = self.ledger.dataset_queries
        if _is_uuid(dataset):
            try:
                return _wire(encode(models.Dataset, queries.get_dataset(UUID(dataset))))
            except NotFoundError:
                pass

        def pages() -> Iterator[list[dict[str, Any]]]:
            page = 0
            while True:
                rows, total = queries.list_datasets(page, PAGE)
                yield _wire([encode(models.Dataset, row) for row in rows])
                if (page + 1) * PAGE >= total:
                    return
                page += 1

        return pick_dataset(dataset, pages())

    def resolve_version(self, dataset_id: str, version: int | None) -> int:
        return self.ledger.dataset_queries.resolve_version(UUID(dataset_id), version)

    def create_run(self, dataset_id: str, *, scorers: list[str], settings: RunSettings, version: int | None,
                   name: str, metadata: dict[str, Any], tag: str | None = None) -> dict[str, Any]:
        return _wire(encode(models.Run, self.ledger.run_use_cases.create_run(
            UUID(dataset_id), target=None, scorers=list(scorers), settings=settings, version=version, name=name,
            metadata=metadata, actor="evaluate", tag=tag)))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return _wire(encode(models.Run, self.ledger.run_service.get_run(UUID(run_id))))

    def run_pages(self, dataset_id: str) -> Iterator[list[dict[str, Any]]]:
        page = 0
        while True:
            rows, total = self.ledger.run_queries.list_runs(UUID(dataset_id), page, PAGE)
            yield _wire([encode(models.Run, row) for row in rows])
            if (page + 1) * PAGE >= total:
                return
            page += 1

    def item_pages(self, dataset_id: str, version: int) -> Iterator[list[Any]]:
        return self.ledger.dataset_queries.iter_item_pages(UUID(dataset_id), version, PAGE)

    def result_pages(self, run_id: str) -> Iterator[list[dict[str, Any]]]:
        for page in self.ledger.run_queries.iter_result_pages(UUID(run_id), PAGE):
            yield _wire([encode(models.RunResult, result) for result in page])

    def submit(self, run_id: str, results: list[dict[str, Any]]) -> None:
        self.ledger.run_service.submit_results(UUID(run_id), [_as_recorded(r) for r in results])

    def finalize(self, run_id: str) -> dict[str, Any]:
        return _wire(encode(models.Run, self.ledger.run_service.finalize_run(UUID(run_id), actor="evaluate")))

    def analytics(self, run_id: str) -> dict[str, Any]:
        return _wire(encode(models.RunAnalytics, self.ledger.run_queries.analytics(UUID(run_id))))

    def compare(self, baseline: str, candidate: str, alpha: float) -> dict[str, Any]:
        from evalledger.analysis.comparison import CompareOptions

        options = CompareOptions(alpha=alpha, items_per_page=1000)
        return _wire(encode(models.Comparison, self.ledger.comparer.compare(UUID(baseline), UUID(candidate), options)))

    def close(self) -> None:
        if self.owned:
            self.ledger.close()


def _as_recorded(result: dict[str, Any]) -> dict[str, Any]:
    """A submission as the HTTP API hands it to the use case (defaults filled in, `attempt`
    recorded as `attempts`), so both paths record the same."""
    return {"itemId": result["itemId"], "repetition": result.get("repetition", 0), "output": result.get("output"),
            "error": result.get("error"), "latencyMs": result.get("latencyMs"),
            "attempts": result.get("attempt", 1), "traceId": result.get("traceId"), "spanId": result.get("spanId"),
            "usage": result.get("usage"),
            "scores": [{"scorerId": s["scorerId"], "score": s.get("score"), "reason": s.get("reason"),
                        "error": s.get("error"), "usage": s.get("usage")} for s in result.get("scores") or []]}


def choose_backend(*, url: str | None, settings: Settings | None, ledger: Ledger | None) -> Backend:
    """`url` (else EVALLEDGER_URL): that service; else the database in this process
    (`ledger`, `settings`, else the settings of the environment, as `evalledger serve`)."""
    if ledger is not None or settings is not None:
        return LocalBackend(settings=settings, ledger=ledger)
    url = url or os.environ.get("EVALLEDGER_URL")
    if url:
        return RemoteBackend(url)
    return LocalBackend()
