"""A user app for the test of cancel across workers: a slow target that notes when each
call starts (process id, item, wall-clock time) in the file named by CANCEL_APP_LOG."""

from __future__ import annotations

import os
import time
from typing import Any

from evalledger.execution.registry import target


@target(name="cancel-slow-echo", kind="agent")
def slow_echo(input: Any, context: Any) -> Any:
    with open(os.environ["CANCEL_APP_LOG"], "a") as log:
        log.write(f"{os.getpid()} {context.item_id}#{context.repetition} {time.time()}\n")
    time.sleep(0.1)
    return input
