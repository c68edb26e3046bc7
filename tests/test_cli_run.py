"""`evalledger run` starts a run, follows it, summarises it, and gates on the outcome."""

from __future__ import annotations

from typing import Any

from cli_runner import evalledger
from conftest import Service

from evalledger.execution.registry import registry


@registry.target(name="cli-echo")
def cli_echo(input: Any, context: Any) -> Any:
    return input


@registry.target(name="cli-broken")
def cli_broken(input: Any, context: Any) -> Any:
    raise RuntimeError("nope")


def test_a_completed_run_exits_zero_with_a_summary(service: Service) -> None:
    dataset = service.client.create_dataset("cli")
    service.client.add_items(dataset.id, [{"input": i, "expectedOutput": i} for i in range(3)])
    done = evalledger("run", str(dataset.id), "--target", "cli-echo", "--scorer", "exact-match", url=service.url)
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stderr and "mean exact-match" in done.stderr and "1.000" in done.stderr


def test_a_failed_run_exits_one_and_a_refused_one_two(service: Service) -> None:
    dataset = service.client.create_dataset("cli-fail")
    service.client.add_item(dataset.id, input=1)
    failed = evalledger("run", str(dataset.id), "--target", "cli-broken", url=service.url)
    assert failed.returncode == 1 and "failed" in failed.stderr
    refused = evalledger("run", str(dataset.id), "--target", "no-such-target", url=service.url)
    assert refused.returncode == 2 and "no target named" in refused.stderr
