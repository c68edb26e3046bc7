"""A user app for the re-score crash test: a scorer that notes every call (with the process
id) in the file named by RESCORE_APP_LOG and takes a little time, so a re-score can be
killed half-way."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from evalledger.execution.registry import scorer


@scorer(name="rescore-noted")
async def noted(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
    with open(os.environ["RESCORE_APP_LOG"], "a") as log:
        log.write(f"{os.getpid()} {input['n']}\n")
    await asyncio.sleep(0.01)
    return 1.0 if output == input else 0.0
