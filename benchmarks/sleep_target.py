"""The worker-scaling benchmark's target (benchmarks/workers.py): I/O-bound, it waits 50 ms
(as a call to a remote model would) and answers the item's expected answer."""

from __future__ import annotations

import asyncio
from typing import Any

from evalledger.execution.registry import target

SECONDS = 0.05


@target(name="sleep-50ms", kind="agent")
async def sleep_50ms(input: dict[str, Any], context: Any) -> Any:
    await asyncio.sleep(SECONDS)
    return {"answer": "a" + input["question"][1:]}
