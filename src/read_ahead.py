"""Reading one step ahead: the next item of an iterator is produced in a helper thread
while the caller works on the current one.

Used where the next step waits mostly on PostgreSQL (the next page of an export, the next
batch of events of a rebuild): the database works on it while Python encodes this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class ReadAhead(Generic[T]):
    """An iterator over `pages` that starts producing the first one at once, and each next
    one as soon as the one before is taken. `close()` (or the end) stops the helper."""

    def __init__(self, pages: Iterable[T]) -> None:
        self._pages = iter(pages)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self._upcoming: Future[object] = self._reader.submit(next, self._pages, _DONE)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        page = self._upcoming.result()
        if page is _DONE:
            self.close()
            raise StopIteration
        self._upcoming = self._reader.submit(next, self._pages, _DONE)
        return page  # type: ignore[return-value]

    def close(self) -> None:
        self._reader.shutdown(wait=True, cancel_futures=True)


def read_ahead(pages: Iterable[T]) -> Iterator[T]:
    """The pages, each one produced in a helper thread while the caller has the one before."""
    reading = ReadAhead(pages)
    try:
        yield from reading
    finally:
        reading.close()
