"""Users' own targets and scorers, registered with decorators in a module of theirs:

    # mypkg/evals.py
    from evalledger.execution.registry import scorer, target

    @target(kind="agent")
    async def support_bot(input, context):
        return await my_agent.answer(input["question"])

    @scorer
    def polite(input, output, expected_output, metadata):
        return "please" in str(output).lower()

and loaded by `evalledger serve --app mypkg.evals` (or `EVALLEDGER_APP=mypkg.evals`, or
an entry point in the group `evalledger.apps`). Target functions take `(input, context)`
and scorer functions `(input, output, expected_output, metadata)`; either may be sync or
async.

Sync functions run in `OFF_LOOP` threads, never in the event loop that drives runs, so a
slow or CPU-bound one cannot hold up other items, other runs or their timeouts. Async
functions run in that loop and must not block it: put CPU-heavy work in a sync function.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

Kind = Literal["agent", "workflow", "processor", "scorer"]
TARGET_KINDS: tuple[str, ...] = ("agent", "workflow", "processor", "scorer")


@dataclass(frozen=True)
class TargetContext:
    """What a target learns about the call besides the item's input."""

    run_id: str
    dataset_id: str
    dataset_version: int
    item_id: str
    repetition: int
    attempt: int
    expected_output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Registered:
    name: str
    kind: str
    func: Callable[..., Any]
    is_async: bool
    description: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "description": self.description, "async": self.is_async}

    async def call(self, *args: Any) -> Any:
        """Call the function: async ones in this loop, sync ones in an `OFF_LOOP` thread (a
        sync function returning an awaitable has it awaited here)."""
        if self.is_async:
            return await self.func(*args)
        answer = await OFF_LOOP.run(self.func, *args)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer


SWITCH_INTERVAL = 0.0005


class OffLoopThreads:
    """Daemon threads for code that may overrun its timeout: users' sync functions, and
    built-in scorers on large values.

    Unlike asyncio's default executor (which also runs the runs' database writes), a call
    that never returns only ties up a thread of its own: the caller stops waiting at its
    timeout and goes on. The threads are daemons, so a stuck call does not keep the
    process from exiting. At most `limit` threads exist; beyond that calls queue (and
    their callers' timeouts still apply). Idle threads end after `idle_seconds`."""

    def __init__(self, limit: int = 256, idle_seconds: float = 30.0) -> None:
        self.limit = limit
        self.idle_seconds = idle_seconds
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Threads waiting for work minus calls queued: negative when calls wait for a thread.
        self._idle = 0
        self._threads = 0

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """`func(*args)` in one of the threads; cancelling the await abandons the call."""
        return await asyncio.wrap_future(self.submit(func, *args))

    def submit(self, func: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            start = self._idle <= 0 and self._threads < self.limit
            if start:
                self._threads += 1
            else:
                self._idle -= 1
        self._work.put((future, func, args))
        if start:
            # CPU-bound code in these threads competes for the GIL with the threads serving
            # requests, which wait up to a switch interval each time they need it; a shorter
            # interval keeps writes answering (measured: benchmarks/README.md, "GIL switch
            # interval").
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
            threading.Thread(target=self._serve, name="evalledger-off-loop", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            try:
                future, func, args = self._work.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # more threads wait than calls: this one may go
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a call was handed to the waiting threads just now: take it
            if future.set_running_or_notify_cancel():
                try:
                    result = func(*args)
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    future.set_exception(error)
                else:
                    future.set_result(result)
            del future, func, args
            with self._lock:
                self._idle += 1


OFF_LOOP = OffLoopThreads()


class Registry:
    def __init__(self) -> None:
        self.targets: dict[str, Registered] = {}
        self.scorers: dict[str, Registered] = {}

    def _register(self, table: dict[str, Registered], func: Callable[..., Any], name: str | None, kind: str,
                  description: str) -> Callable[..., Any]:
        entry = Registered(
            name=name or func.__name__,
            kind=kind,
            func=func,
            is_async=inspect.iscoroutinefunction(func),
            description=description or (inspect.getdoc(func) or "").split("\n")[0],
        )
        existing = table.get(entry.name)
        if existing is not None and existing.func is not func and _qualified(existing.func) != _qualified(func):
            raise ValueError(f"{entry.kind} {entry.name!r} is already registered (by {_qualified(existing.func)})")
        table[entry.name] = entry
        return func

    def target(self, name: str | Callable[..., Any] | None = None, *, kind: str = "agent",
               description: str = "") -> Any:
        """Register a target function: `@target`, `@target("name")` or `@target(kind="workflow")`."""
        if kind not in TARGET_KINDS:
            raise ValueError(f"target kind must be one of {TARGET_KINDS}, not {kind!r}")
        if callable(name):
            return self._register(self.targets, name, None, kind, description)

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            return self._register(self.targets, func, name, kind, description)

        return decorate

    def scorer(self, name: str | Callable[..., Any] | None = None, *, description: str = "") -> Any:
        """Register a scorer function: `@scorer` or `@scorer("name")`."""
        if callable(name):
            return self._register(self.scorers, name, None, "scorer", description)

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            return self._register(self.scorers, func, name, "scorer", description)

        return decorate

    def describe_targets(self) -> list[dict[str, Any]]:
        return [entry.describe() for entry in sorted(self.targets.values(), key=lambda e: e.name)]

    def describe_scorers(self) -> list[dict[str, Any]]:
        return [entry.describe() for entry in sorted(self.scorers.values(), key=lambda e: e.name)]

    def load(self, module_path: str) -> None:
        """Import a user module so its decorators register (importing twice is harmless)."""
        if module_path in sys.modules:
            return
        try:
            importlib.import_module(module_path)
        except Exception as error:
            raise ImportError(f"cannot import app module {module_path!r}: {error}") from error

    def load_entry_points(self) -> list[str]:
        """Load the modules installed packages name in the `evalledger.apps` entry point group."""
        modules = [entry_point.value for entry_point in entry_points(group="evalledger.apps")]
        for module in modules:
            self.load(module)
        return modules


def _qualified(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


# The one module-level registry, on purpose: `@target` and `@scorer` run when a user's module is
# imported (by `--app`, an entry point or the user's own import), and an import cannot be handed
# a registry. The composition root takes a registry as a parameter (`build_ledger(registry=...)`)
# and defaults to this one, so a test or an embedding can build a ledger on a registry of its own.
registry = Registry()
target = registry.target
scorer = registry.scorer
