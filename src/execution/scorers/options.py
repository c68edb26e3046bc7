"""Built-in scorers' options: declared once, checked at build time, listed by `GET /api/scorers`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.scorers.values import show


@dataclass(frozen=True)
class Option:
    """One option of a built-in scorer: checked at build time and listed by `GET /api/scorers`."""

    name: str
    type: str  # "string", "boolean", "number" or "object"
    default: Any
    meaning: str
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False

    def describe(self) -> dict[str, Any]:
        described = {"name": self.name, "type": self.type, "default": self.default, "meaning": self.meaning,
                     "required": self.required}
        if self.choices:
            described["choices"] = list(self.choices)
        return described

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this option, or None."""
        if self.type == "string" and not (isinstance(value, str) and value):
            return "must be a non-empty string"
        if self.type == "boolean" and not isinstance(value, bool):
            return "must be true or false"
        if self.type == "object" and not isinstance(value, dict):
            return "must be a JSON object"
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                return "must be a number"
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum:g}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {self.maximum:g}"
            if self.positive and value <= 0:
                return "must be greater than 0"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(repr(c) for c in self.choices)}"
        return None


FIELD = Option("field", "string", None, "dot path (e.g. 'answer' or 'a.b.0') applied to the output and "
               "the expected output before comparing")


def read_options(scorer: str, declared: Sequence[Option], given: dict[str, Any]) -> dict[str, Any]:
    """The options of `scorer` with defaults filled in; InvalidRequestError naming the scorer and
    the option for unknown, missing or ill-typed options."""
    known = {option.name: option for option in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InvalidRequestError(f"scorer {scorer!r} has no option {', '.join(repr(u) for u in unknown)}; "
                                  f"its options are: {', '.join(known) or 'none'}")
    values: dict[str, Any] = {}
    for option in declared:
        value = given.get(option.name)
        if value is None:
            if option.required:
                raise InvalidRequestError(f"scorer {scorer!r} needs the option {option.name!r} ({option.meaning})")
            values[option.name] = option.default
            continue
        problem = option.problem(value)
        if problem:
            raise InvalidRequestError(f"scorer {scorer!r}: option {option.name!r} {problem}, not {show(value)}")
        values[option.name] = value
    return values


def parse_path(scorer: str, path: str | None) -> tuple[str, ...]:
    """A dot path split once at build time: 'a.b.0' -> ('a', 'b', '0')."""
    if path is None:
        return ()
    parts = tuple(path.split("."))
    if not all(parts):
        raise InvalidRequestError(f"scorer {scorer!r}: option 'field' is not a dot path like 'a.b.0': {path!r}")
    return parts
