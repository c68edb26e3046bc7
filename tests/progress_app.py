"""A user app for the progress tests: an echo target taking a fixed time per item."""

from __future__ import annotations

import time
from typing import Any

from evalledger.execution.registry import target

ITEM_SECONDS = 0.05


@target(name="progress-slow-echo", kind="agent")
def slow_echo(input: Any, context: Any) -> Any:
    time.sleep(ITEM_SECONDS)
    return input
