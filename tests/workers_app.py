"""A user app for the tests of several workers: a target that notes every call (process id,
item, repetition) in the file named by WORKERS_APP_LOG, and counts the calls in flight across
every process in WORKERS_APP_GAUGE (under a file lock), keeping the highest count seen."""

from __future__ import annotations

import fcntl
import os
import time
from typing import Any

from evalledger.execution.registry import target


def _gauge(change: int) -> None:
    with open(os.environ["WORKERS_APP_GAUGE"], "a+") as gauge:
        fcntl.flock(gauge, fcntl.LOCK_EX)
        gauge.seek(0)
        now, highest = (int(n) for n in (gauge.read().split() or ["0", "0"]))
        now += change
        gauge.seek(0)
        gauge.truncate()
        gauge.write(f"{now} {max(now, highest)}")


def highest_in_flight(path: str) -> int:
    with open(path) as gauge:
        return int(gauge.read().split()[1])


@target(name="workers-noted-echo", kind="agent")
def noted_echo(input: Any, context: Any) -> Any:
    with open(os.environ["WORKERS_APP_LOG"], "a") as log:
        log.write(f"{os.getpid()} {context.item_id}#{context.repetition}\n")
    gauge = os.environ.get("WORKERS_APP_GAUGE")
    if gauge:
        _gauge(+1)
    try:
        time.sleep(float(os.environ.get("WORKERS_APP_SECONDS", "0.002")))
    finally:
        if gauge:
            _gauge(-1)
    return input
