"""What the read models' folds (datasets_fold.py, runs_fold.py) share: a fold applies the
events in log order, each with the function its class maps to; classes it has none for
change nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

State = TypeVar("State")


def fold_events(folds: Mapping[type, Callable[[State, Any], None]], state: State, events: Iterable[Any]) -> State:
    """Apply `events` to `state` with `folds`; returns `state`."""
    for event in events:
        apply = folds.get(type(event))
        if apply is not None:
            apply(state, event)
    return state
