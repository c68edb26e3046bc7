"""The Python client's helpers: start a run and wait for it, and iterators that page
through a dataset's runs and a run's results."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Service

from evalledger.execution.registry import registry


@registry.target(name="client-helpers-double")
def double(input: Any, context: Any) -> Any:
    return input * 2


@registry.target(name="client-helpers-slow")
def slow(input: Any, context: Any) -> Any:
    import time

    time.sleep(0.5)
    return input


def test_run_and_wait_and_paging_iterators(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("helpers")
    client.add_items(dataset.id, [{"input": i, "expectedOutput": i * 2} for i in range(7)])
    runs = [client.run_and_wait(dataset.id, target={"type": "registered", "name": "client-helpers-double"},
                                scorers=["exact-match"], name=f"run {k}", timeout=30) for k in range(3)]
    assert all(run.status == "completed" and run.succeeded_count == 7 for run in runs)

    listed = list(client.iter_runs(dataset.id, per_page=2))  # two pages and a bit
    assert [r.id for r in listed] == [r.id for r in reversed(runs)]
    results = list(client.iter_results(runs[0].id, per_page=3))
    assert sorted(r.output for r in results) == [i * 2 for i in range(7)]
    assert len({r.item_id for r in results}) == 7
    assert list(client.iter_results(runs[0].id, status="failed", per_page=3)) == []


def test_waiting_gives_up_after_the_timeout(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("helpers-slow")
    client.add_items(dataset.id, [{"input": i} for i in range(4)])
    with pytest.raises(TimeoutError, match="still"):
        client.run_and_wait(dataset.id, target={"type": "registered", "name": "client-helpers-slow"},
                            max_concurrency=1, timeout=0.3, poll=0.05)
