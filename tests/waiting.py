"""Waiting in tests, in one place: for a condition, and for a run to finish. Every test polls
the same way and, when time runs out, fails saying what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from evalledger.domain.runs import FINISHED

T = TypeVar("T")


def wait_until(check: Callable[[], T], what: str, timeout: float = 30, interval: float = 0.02) -> T:
    """`check()`'s first truthy answer; fails after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(interval)


def wait_finished(http: httpx.Client, run_id: Any, timeout: float = 30) -> dict[str, Any]:
    """The run (as the API answers it) once it has completed, failed or been cancelled."""

    def finished() -> dict[str, Any] | None:
        run = http.get(f"/api/datasets/runs/{run_id}").json()
        return run if run["status"] in FINISHED else None

    return wait_until(finished, f"run {run_id} to finish", timeout)
