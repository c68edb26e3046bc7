"""The executor a run's chunks share in one process (execution/local_run.py): chunks that join
while it takes work have their items executed once each, by as many more workers as they
brought slots, and one that comes after it stopped taking work is refused (it then opens
an executor of its own). In memory: the executor, its target and its sink only."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

from evalledger.domain.runs import RunSettings
from evalledger.execution.local_run import LocalRun
from evalledger.execution.recording import ExecutedResult
from evalledger.execution.runner import RunExecutor, RunItem
from evalledger.execution.targets import TargetOutput


class CountingTarget:
    id = "counting"

    def __init__(self) -> None:
        self.in_flight = 0
        self.highest = 0
        self.calls: list[str] = []

    async def invoke(self, input: Any, context: Any) -> TargetOutput:
        self.in_flight += 1
        self.highest = max(self.highest, self.in_flight)
        self.calls.append(f"{context.item_id}#{context.repetition}")
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return TargetOutput(output=input)


class MemorySink:
    def __init__(self) -> None:
        self.results: list[ExecutedResult] = []
        self.started = 0
        self.finished = 0

    def recorded(self) -> dict[str, bool]:
        return {}

    def start(self) -> None:
        self.started += 1

    def record(self, results: list[ExecutedResult]) -> None:
        self.results += results

    def finish(self, error: str | None = None) -> None:
        assert error is None, error
        self.finished += 1

    def cancel(self, actor: str, reason: str | None) -> None:
        raise AssertionError("not cancelled")


def pairs(first: int, count: int) -> list[tuple[RunItem, int]]:
    return [(RunItem(f"item-{n}", {"n": n}, None, None), 0)
            for n in range(first, first + count)]


def test_joined_chunks_run_once_each_with_the_slots_they_brought() -> None:
    async def scenario() -> tuple[CountingTarget, MemorySink, int, bool]:
        local = LocalRun()
        target, sink = CountingTarget(), MemorySink()
        released = 0

        async def release() -> None:
            nonlocal released
            released += 1

        local.add(pairs(0, 40))
        executor = RunExecutor(
            run_id=uuid4(), dataset_id=uuid4(), dataset_version=1,
            settings=RunSettings(max_concurrency=2, max_retries=0), target=target, scorers=[], sink=sink,
            item_pages=lambda: iter(()), expected_results=120, on_worker_done=release, more_work=local.more_work)
        local.executing = True
        running = asyncio.create_task(executor.run())
        await asyncio.sleep(0.05)  # the first chunk is under way: two more join, with 3 slots
        assert local.add(pairs(40, 40)) and local.add_slots(1)
        assert local.add(pairs(80, 40)) and local.add_slots(2)
        await running
        late = local.add(pairs(120, 1))  # it has stopped taking work
        return target, sink, released, late

    # In a thread of its own: a test before it in this process may have left a loop running here.
    with ThreadPoolExecutor(1) as thread:
        target, sink, released, late = thread.submit(asyncio.run, scenario()).result()
    assert sorted(target.calls) == sorted(f"item-{n}#0" for n in range(120))
    assert len({r.item_id for r in sink.results}) == len(sink.results) == 120
    assert (sink.started, sink.finished) == (1, 1)
    assert target.highest == 5  # 2 workers, then 3 more for the joined chunks' slots
    assert released == 5  # every slot given back
    assert late is False
