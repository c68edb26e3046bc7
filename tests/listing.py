"""Reading a paged listing of the API to its end, in one place: tests that need every item,
version or result follow the pages the same way (test_pagination checks the pages themselves)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx


def every_page(http: httpx.Client, path: str, per_page: int = 100, **params: Any) -> Iterator[dict[str, Any]]:
    """Each page of the listing at `path` (its JSON), from the first until `hasMore` is false."""
    page = 0
    while True:
        response = http.get(path, params={**params, "page": page, "perPage": per_page})
        assert response.status_code == 200, response.text
        listing = response.json()
        yield listing
        if not listing["pagination"]["hasMore"]:
            return
        page += 1
