"""The contract between the runner and a scorer: what it is given, what it answers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Protocol

from evalledger.execution.scorers.values import show


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees of one item's execution. `error` is the target's error when it
    failed; `output` is then None."""

    input: Any
    output: Any
    expected_output: Any
    metadata: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class ScoreOutput:
    """A score from 0 to 1 (None: no score) and, optionally, why, and what scoring used
    (tokens, cost, model: an LLM judge's endpoint's report, see targets.read_usage)."""

    score: float | None
    reason: str | None = None
    usage: dict[str, Any] | None = field(default=None, compare=False)  # not part of the verdict


class Scorer(Protocol):
    """A built scorer. `id` keys its scores in results; `name` says which scorer it is.
    Every scorer built here also has `async def aclose()`."""

    id: str
    name: str
    timeout_ms: int | None  # None: the run's item timeout

    async def score(self, x: ScoreInput) -> ScoreOutput: ...


def to_score_output(answer: Any, who: str) -> ScoreOutput:
    """A scorer's answer as a ScoreOutput: a number from 0 to 1, a bool (1.0 / 0.0), a
    ScoreOutput, or a dict with "score" and optionally "reason". A ScoreOutput or dict may
    say `score: None` (no score); a bare None is refused, as it is usually a forgotten
    `return`. Anything else raises ValueError."""
    if isinstance(answer, ScoreOutput):
        value, reason = answer.score, answer.reason
    elif isinstance(answer, dict):
        if "score" not in answer:
            raise ValueError(f"{who} returned a dict without 'score': {show(answer)}")
        value, reason = answer["score"], answer.get("reason")
    elif answer is None:
        raise ValueError(f"{who} returned None; return a number from 0 to 1, a bool, a ScoreOutput "
                         f"or {{'score': ..., 'reason': ...}}")
    else:
        value, reason = answer, None
    reason = None if reason is None else str(reason)
    if value is None:
        return ScoreOutput(None, reason)
    return ScoreOutput(_unit_interval(value, who), reason)


def _unit_interval(value: Any, who: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, Real) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{who} returned {show(value)}; a score must be a number from 0 to 1")
    return float(value)
