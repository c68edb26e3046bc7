"""The W4 target of DESIGN.md, registered for the benchmark's service process:
answers {"answer": "a<i>"} for even i and "wrong" for odd i."""

from __future__ import annotations

from typing import Any

from evalledger.execution.registry import target


@target(name="w4-target", kind="agent")
def w4_target(input: dict[str, Any], context: Any) -> Any:
    i = int(input["question"][1:])
    return {"answer": f"a{i}"} if i % 2 == 0 else "wrong"


@target(name="w5-target", kind="agent")
def w5_target(input: dict[str, Any], context: Any) -> Any:
    """W5's second run: even and odd flipped."""
    i = int(input["question"][1:])
    return {"answer": f"a{i}"} if i % 2 == 1 else "wrong"
