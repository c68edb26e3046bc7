"""The caller's task and scorers as the runner's `Target` and `Scorer`s.

A task is any function of the caller, sync or async, taking the item's input (and, if it
takes a second argument, the `TargetContext`). Scorers are built-in names or specs, as
for server runs, registered scorers, or plain functions naming what they need among
`input`, `output`, `expected_output` (or `expected`), `metadata` and `error`. Functions
go through the registry's `Registered` and `RegisteredTarget`/`RegisteredScorer`, so sync
ones run off the event loop exactly as a server run's do.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from evalledger.execution.registry import Registered, Registry, TargetContext, registry
from evalledger.execution.scorers import (
    RegisteredScorer,
    Scorer,
    ScoreInput,
    ScoreOutput,
    build_scorer,
    to_score_output,
)
from evalledger.execution.targets import RegisteredTarget, TargetOutput

SCORER_ARGUMENTS = ("input", "output", "expected_output", "expected", "metadata", "error")


def _is_async(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


def _positional_count(func: Callable[..., Any]) -> tuple[int, bool]:
    """How many positional parameters `func` has, and whether it takes *args."""
    parameters = inspect.signature(func).parameters.values()
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional), any(p.kind == p.VAR_POSITIONAL for p in parameters)


class TaskTarget:
    """The caller's task. A KeyboardInterrupt or SystemExit it raises stops the whole
    evaluation the way Ctrl-C does (`on_stop`): finished results are recorded first."""

    def __init__(self, task: Callable[..., Any], on_stop: Callable[[BaseException], None]) -> None:
        if not callable(task):
            raise TypeError(f"task must be a function of the item's input, not {task!r}")
        count, var_args = _positional_count(task)
        is_async = _is_async(task)
        if count >= 2 or var_args:
            func = task
        elif is_async:
            async def func(input: Any, context: TargetContext) -> Any:
                return await task(input)
        else:
            def func(input: Any, context: TargetContext) -> Any:
                return task(input)
        self.inner = RegisteredTarget(Registered(name=_name(task), kind="agent", func=func, is_async=is_async,
                                                 description=""))
        self.id = f"task:{_name(task)}"
        self.on_stop = on_stop

    async def invoke(self, input: Any, context: TargetContext) -> TargetOutput:
        try:
            return await self.inner.invoke(input, context)
        except (KeyboardInterrupt, SystemExit) as stop:
            self.on_stop(stop)
            await asyncio.Event().wait()  # the executor, told to stop, cancels this call
            raise  # not reached

    async def aclose(self) -> None:
        """Nothing to release."""


def function_scorer(func: Callable[..., Any], scorer_id: str | None = None) -> RegisteredScorer:
    """A plain function as a scorer: it is called with the arguments it names."""
    parameters = inspect.signature(func).parameters
    takes_all = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    names = [n for n, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    unknown = [n for n in names if n not in SCORER_ARGUMENTS and parameters[n].default is inspect.Parameter.empty]
    if unknown:
        raise TypeError(f"scorer {_name(func)!r} takes {', '.join(unknown)}; a scorer function names what it "
                        f"needs among {', '.join(SCORER_ARGUMENTS)}")
    wanted = list(SCORER_ARGUMENTS) if takes_all else [n for n in names if n in SCORER_ARGUMENTS]

    def arguments(input: Any, output: Any, expected_output: Any, metadata: Any, error: Any) -> dict[str, Any]:
        given = {"input": input, "output": output, "expected_output": expected_output,
                 "expected": expected_output, "metadata": metadata, "error": error}
        return {n: given[n] for n in wanted}

    if _is_async(func):
        async def call(*args: Any) -> Any:
            return await func(**arguments(*args))
    else:
        def call(*args: Any) -> Any:
            return func(**arguments(*args))

    name = scorer_id or _name(func)
    if name == "<lambda>":
        raise TypeError("a lambda has no name to key its scores; use a def, or a (name, function) pair")
    return _ErrorAwareScorer(name, Registered(name=name, kind="scorer", func=call, is_async=_is_async(func),
                                              description=""))


class _ErrorAwareScorer(RegisteredScorer):
    """A registered scorer whose function also learns the target's error."""

    async def score(self, x: ScoreInput) -> ScoreOutput:
        answer = await self.entry.call(x.input, x.output, x.expected_output, x.metadata, x.error)
        return to_score_output(answer, f"scorer {self.name!r}")


def build_scorers(specs: Sequence[Any], *, http_allowlist: Sequence[str], known: Registry = registry) -> list[Scorer]:
    """Each of `specs` built: a built-in name or spec, a registered scorer's name, a
    registered scorer function, any other function, or a (name, function) pair."""
    scorers: list[Scorer] = []
    for spec in specs:
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and callable(spec[1]):
            scorers.append(function_scorer(spec[1], spec[0]))
        elif callable(spec):
            registered = next((e for e in known.scorers.values() if e.func is spec), None)
            if registered is not None:
                scorers.append(build_scorer(registered.name, known, http_allowlist=http_allowlist))
            else:
                scorers.append(function_scorer(spec))
        else:
            scorers.append(build_scorer(spec, known, http_allowlist=http_allowlist))
    ids = [s.id for s in scorers]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"scorer ids must be unique; repeated: {repeated} (give each an 'id', or a (name, "
                         "function) pair)")
    return scorers
