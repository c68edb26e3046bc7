"""The client's plumbing: the HTTP connection and its headers, query parameters, JSON
bodies, problem details raised as `ApiError`, streamed downloads and paging."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Self, TypeVar

import httpx
import orjson
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_UNSET: Any = object()

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class ApiError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "")).rsplit("/", 1)[-1]
        self.detail = problem.get("detail", "")
        super().__init__(f"{status} {self.type}: {self.detail}")


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


def query(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters as sent: those given (not None), datetimes in ISO 8601."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in params.items() if v is not None}


def answer(response: httpx.Response) -> Any:
    """The answer's JSON, or ApiError with the problem details of a failed call."""
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text}
        raise ApiError(response.status_code, problem)
    return response.json() if response.content else None


class Transport:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _reason_headers(self, method: str, reason: str | None) -> dict[str, str]:
        """X-Change-Reason for a write: the call's reason, else the client's."""
        reason = reason or (self.reason if method != "GET" else None)
        return {"X-Change-Reason": reason} if reason else {}

    def request(self, method: str, path: str, *, json: Any = _UNSET, params: dict[str, Any] | None = None,
                reason: str | None = None) -> Any:
        headers = self._reason_headers(method, reason)
        content = None
        if json is not _UNSET:
            content = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        return answer(self.http.request(method, path, content=content, params=query(params or {}), headers=headers))

    def _get(self, model: type[M], path: str, /, **params: Any) -> M:
        return model.model_validate(self.request("GET", path, params=params))

    def _send(self, model: type[M], method: str, path: str, *, json: Any = _UNSET,
              reason: str | None = None) -> M:
        """A write's answer as `model`."""
        return model.model_validate(self.request(method, path, json=json, reason=reason))

    def _download(self, path: str, params: dict[str, Any], destination: str | Path | IO[bytes]) -> httpx.Headers:
        """Stream a GET's body into `destination`; the answer's headers."""
        with self.http.stream("GET", path, params=query(params), timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                answer(response)
            if isinstance(destination, (str, Path)):
                with open(destination, "wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            else:
                for chunk in response.iter_bytes():
                    destination.write(chunk)
            return response.headers

    @staticmethod
    def _pages(fetch: Callable[[int], Any], key: str) -> Iterator[Any]:
        """Every entry of a listing, fetching page after page until the last."""
        page = 0
        while True:
            listing = fetch(page)
            yield from getattr(listing, key)
            if not listing.pagination.has_more:
                return
            page += 1
