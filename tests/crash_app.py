"""A user app for the crash-recovery tests: a target that notes every call it gets (with
the process id) in the file named by CRASH_APP_LOG, and takes a little time per item."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from evalledger.execution.registry import target

_lock = threading.Lock()


@target(name="crash-noted-echo", kind="agent")
def noted_echo(input: Any, context: Any) -> Any:
    with _lock, open(os.environ["CRASH_APP_LOG"], "a") as log:
        log.write(f"{os.getpid()} {context.item_id}#{context.repetition}\n")
    time.sleep(0.002)
    return input
