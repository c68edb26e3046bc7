"""evaluate(): the caller's own function over a stored dataset, executed in the test's
process by the service's runner, recorded as a caller-driven run — against a live service
over HTTP and against the database in process (no server)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from conftest import Service, built_ledger

from evalledger import Client, EvalResult, evaluate
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import NewItem
from evalledger.sdk import EvaluationInterrupted
from evalledger.settings import Settings

QUESTIONS = [{"a": a, "b": b} for a in range(4) for b in range(3)]  # 12 items


def make_dataset(client: Client, name: str = "sums") -> str:
    dataset = client.create_dataset(name)
    client.add_items(dataset.id, [{"input": q, "expectedOutput": q["a"] + q["b"], "metadata": {"a": q["a"]}}
                                  for q in QUESTIONS])
    return str(dataset.id)


def add(input: dict[str, int]) -> int:
    return input["a"] + input["b"]


def exact(output: Any, expected: Any) -> bool:
    return output == expected


def test_sync_task_against_a_live_service(service: Service) -> None:
    dataset_id = make_dataset(service.client)
    result = evaluate("sums", add, ["exact-match", exact], url=service.url, name="adder", metadata={"tag": "main"})
    assert isinstance(result, EvalResult)
    run = service.client.get_run(result.run_id)
    assert run.status == "completed" and run.caller_driven and str(run.dataset_id) == dataset_id
    assert run.scorers == ["exact-match", "exact"] and run.name == "adder"
    assert run.metadata == {"tag": "main", "codeVersion": run.metadata["codeVersion"]}  # this repository's commit
    assert result.scores == {"exact-match": 1.0, "exact": 1.0}
    assert result.analytics["succeeded"] == 12
    rows = result.rows()
    assert len(rows) == 12 and all(r["output"] == r["input"]["a"] + r["input"]["b"] for r in rows)
    assert all(r["exact"] == 1.0 and r["exact-match"] == 1.0 and r["latency_ms"] >= 0 for r in rows)
    assert result.url == f"{service.url}/runs/{result.run_id}"
    page = service.client.http.get(f"/runs/{result.run_id}")
    assert page.status_code == 200


def test_async_task_with_context_in_process_without_a_server(settings: Settings) -> None:
    with built_ledger(settings) as ledger:
        for follower in ledger.followers:
            follower.catch_up()
        dataset = ledger.dataset_use_cases.create_dataset(name="sums-local", actor="test")
        ledger.read_your_writes(ledger.datasets.add_items(dataset.id, [
            NewItem(content=ItemContent(input=q, expected_output=q["a"] + q["b"], metadata={}), external_id=None)
            for q in QUESTIONS]))
    seen: list[tuple[str, int]] = []

    async def slow_add(input: dict[str, int], context: Any) -> int:
        seen.append((context.item_id, context.repetition))
        await asyncio.sleep(0.01)
        return input["a"] + input["b"] + (1 if input["a"] == 3 else 0)  # wrong for a == 3

    result = evaluate("sums-local", slow_add, [exact], settings=settings, repetitions=2, max_concurrency=4)
    assert result.status == "completed" and result.url is None
    assert len(seen) == 24 and len(set(seen)) == 24
    assert result.scores["exact"] == pytest.approx(9 / 12)
    assert sorted({r["repetition"] for r in result.rows()}) == [0, 1]
    assert "repetitions" in result.analytics
    with pytest.raises(ImportError, match="pip install pandas"):
        result.to_pandas()


def test_timeouts_and_transient_errors_follow_the_run_settings(service: Service) -> None:
    make_dataset(service.client)
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def flaky(input: dict[str, int]) -> int:
        key = f"{input['a']},{input['b']}"
        with lock:
            calls[key] = calls.get(key, 0) + 1
            first = calls[key] == 1
        if input == {"a": 1, "b": 1} and first:
            raise ConnectionError("the model is busy")  # transient: retried
        if input == {"a": 2, "b": 2}:
            time.sleep(1.0)  # over the item timeout
        if input == {"a": 0, "b": 2}:
            raise ValueError("not transient")  # the item's answer: not retried
        return input["a"] + input["b"]

    result = evaluate("sums", flaky, [exact], url=service.url, item_timeout_ms=300, max_retries=2)
    by_input = {(r["input"]["a"], r["input"]["b"]): r for r in result.results}
    retried = by_input[(1, 1)]
    assert retried["error"] is None and retried["output"] == 2 and retried["attempt"] == 2
    timed_out = by_input[(2, 2)]
    assert "timed out after 300 ms" in timed_out["error"] and timed_out["attempt"] == 3  # timeouts are transient
    failed = by_input[(0, 2)]
    assert failed["error"] == "ValueError: not transient" and failed["attempt"] == 1 and calls["0,2"] == 1
    assert result.analytics["failed"] == 2 and result.status == "completed"


def test_an_interrupted_evaluation_resumes_without_rerunning_recorded_items(service: Service) -> None:
    make_dataset(service.client)
    executed: list[str] = []
    lock = threading.Lock()

    def interrupted_after_five(input: dict[str, int], context: Any) -> int:
        with lock:
            if len(executed) >= 5:
                raise KeyboardInterrupt
            executed.append(context.item_id)
        return input["a"] + input["b"]

    with pytest.raises(EvaluationInterrupted) as stopped:
        evaluate("sums", interrupted_after_five, [exact], url=service.url, max_concurrency=1)
    run_id = stopped.value.run_id
    assert f"resume={run_id!r}" in str(stopped.value)
    run = service.client.get_run(run_id)
    assert run.status == "running"  # left open to be resumed
    recorded = {str(r.item_id) for r in service.client.list_results(run_id, per_page=100).results}
    assert recorded == set(executed) and len(recorded) == 5

    again: list[str] = []

    def count(input: dict[str, int], context: Any) -> int:
        again.append(context.item_id)
        return input["a"] + input["b"]

    result = evaluate("sums", count, [exact], url=service.url, resume=run_id)
    assert result.run_id == run_id and result.status == "completed"
    assert len(again) == 7 and not recorded & set(again)
    assert result.analytics["succeeded"] == 12 and result.scores["exact"] == 1.0

    with pytest.raises(ValueError, match="same scorers"):
        evaluate("sums", count, ["exact-match"], url=service.url, resume=run_id)


def test_bad_arguments_are_refused_clearly(service: Service) -> None:
    make_dataset(service.client)
    with pytest.raises(LookupError, match="no dataset is named 'nope'"):
        evaluate("nope", add, [exact], url=service.url)
    with pytest.raises(TypeError, match="names what it"):
        evaluate("sums", add, [lambda out, exp: 1.0], url=service.url)
    with pytest.raises(Exception, match="unknown scorer 'exact-mach'"):
        evaluate("sums", add, ["exact-mach"], url=service.url)


def test_the_service_from_the_environment_and_inside_a_running_loop(
        service: Service, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """EVALLEDGER_URL names the service; evaluate() called where a loop runs (a Jupyter
    cell) runs in a thread of its own; aevaluate() is awaited; without a terminal,
    progress=True prints plain lines."""
    make_dataset(service.client)
    monkeypatch.setenv("EVALLEDGER_URL", service.url)

    async def in_a_notebook_cell() -> tuple[EvalResult, EvalResult]:
        from evalledger import aevaluate

        inside = evaluate("sums", add, [exact], progress=True)
        awaited = await aevaluate("sums", add, [exact], progress=False)
        return inside, awaited

    inside, awaited = asyncio.run(in_a_notebook_cell())
    for result in (inside, awaited):
        assert result.status == "completed" and result.scores == {"exact": 1.0}
        assert result.url == f"{service.url}/runs/{result.run_id}"
    assert inside.run_id != awaited.run_id
    assert "sums: 12/12 done, 0 failed" in capsys.readouterr().err


SCRIPT = '''
import sys, time
import evalledger

calls = 0

def slow(question, context):
    # The first four are quick; from the fifth on each takes 3 s, so the test's Ctrl-C, sent once
    # it has read four lines, lands while the run is still going however loaded the machine is.
    global calls
    calls += 1
    time.sleep(0.1 if calls <= 4 else 3)
    print("ran", context.item_id, flush=True)
    return question["a"] + question["b"]

evalledger.evaluate("sums", slow, ["exact-match"], url=sys.argv[1], max_concurrency=1, progress=False)
'''


def test_ctrl_c_records_what_finished_and_the_run_resumes(service: Service, tmp_path: Any) -> None:
    """A real SIGINT to a script running evaluate(): what finished is recorded, the run id
    to resume is printed, and resuming executes only the rest."""
    import re
    import signal
    import subprocess
    import sys

    make_dataset(service.client)
    script = tmp_path / "evaluate_script.py"
    script.write_text(SCRIPT)
    # Ctrl-C as a terminal sends it: the script must not inherit an ignored SIGINT (a test runner
    # started in the background, as CI may start it, ignores SIGINT, and its children with it).
    process = subprocess.Popen([sys.executable, str(script), service.url], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ran = []
    assert process.stdout is not None
    while len(ran) < 4:
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        ran.append(line.split()[1])
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    ran += [line.split()[1] for line in stdout.splitlines()]
    assert process.returncode != 0 and "evalledger.sdk.evaluate.EvaluationInterrupted" in stderr, stderr
    run_id = re.search(r"resume='([0-9a-f-]+)'", stderr).group(1)  # type: ignore[union-attr]
    recorded = {str(r.item_id) for r in service.client.list_results(run_id, per_page=100).results}
    assert recorded <= set(ran) and len(recorded) >= len(ran) - 1  # at most the call in flight is lost

    again: list[str] = []

    def count(input: dict[str, int], context: Any) -> int:
        again.append(context.item_id)
        return input["a"] + input["b"]

    result = evaluate("sums", count, ["exact-match"], url=service.url, resume=run_id)
    assert not recorded & set(again) and len(again) == 12 - len(recorded)
    assert result.status == "completed" and result.analytics["succeeded"] == 12


def test_usage_a_task_reports_is_recorded_and_totalled(service: Service) -> None:
    from evalledger.execution.targets import TargetOutput

    make_dataset(service.client)

    def metered(input: dict[str, int]) -> TargetOutput:
        return TargetOutput(input["a"] + input["b"], usage={"input_tokens": 10 + input["a"], "output_tokens": 2,
                                                            "cost": 0.25, "model": "tiny"})

    result = evaluate("sums", metered, [exact], url=service.url)
    assert all(r["usage"]["outputTokens"] == 2 and r["usage"]["model"] == "tiny" for r in result.results)
    usage = result.analytics["usage"]
    assert usage["results"] == 12 and usage["outputTokens"] == 24 and usage["cost"] == pytest.approx(3.0)
    assert usage["inputTokens"] == 12 * 10 + 3 * (0 + 1 + 2 + 3) and usage["models"] == ["tiny"]
    assert usage["perItem"]["inputTokens"] == pytest.approx(11.5) and usage["perItem"]["cost"] == pytest.approx(0.25)

    def bad_usage(input: dict[str, int]) -> TargetOutput:
        return TargetOutput(1, usage={"tokens": 3})

    failed = evaluate("sums", bad_usage, [exact], url=service.url)
    assert all("usage has unknown key(s) tokens" in r["error"] for r in failed.results)
    run_id = service.client.create_run(failed.run["datasetId"]).id
    item_id = failed.results[0]["itemId"]
    from evalledger import ApiError

    with pytest.raises(ApiError) as refused:
        service.client.submit_results(run_id, [{"itemId": item_id, "usage": {"cost": -1}}])
    assert refused.value.status == 422 and "cost" in refused.value.detail


def test_every_kind_of_scorer(service: Service) -> None:
    """Built-in specs, a registered scorer by name and by function, a (name, function) pair,
    and an async function that reads the target's error."""
    from evalledger.execution.registry import registry

    @registry.scorer(name="evaluate-registered-close")
    def close(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
        return 1.0 if output is not None and abs(output - expected_output) <= 1 else 0.0

    async def failed_cleanly(error: str | None) -> dict[str, Any]:
        return {"score": 0.0 if error else 1.0, "reason": error}

    make_dataset(service.client)

    def off_by_one_for_a3(input: dict[str, int]) -> int:
        if input["a"] == 0 and input["b"] == 0:
            raise ValueError("no zeros")
        return input["a"] + input["b"] + (1 if input["a"] == 3 else 0)

    with pytest.raises(ValueError, match="repeated: \\['evaluate-registered-close'\\]") as repeated:
        evaluate("sums", add, ["evaluate-registered-close", close], ledger=service.ledger)
    assert repeated.value.__context__ is None  # no "during handling of another exception" noise
    result = evaluate("sums", off_by_one_for_a3,
                      [{"name": "exact-match", "id": "exact"}, close,
                       ("within-two", lambda output, expected: output is not None and abs(output - expected) <= 2),
                       failed_cleanly],
                      ledger=service.ledger, progress=False)
    assert result.run["scorers"] == ["exact", "evaluate-registered-close", "within-two", "failed_cleanly"]
    rows = {(r["input"]["a"], r["input"]["b"]): r for r in result.rows()}
    assert rows[(1, 2)]["exact"] == rows[(1, 2)]["evaluate-registered-close"] == rows[(1, 2)]["within-two"] == 1.0
    assert rows[(3, 1)]["exact"] == 0.0 and rows[(3, 1)]["evaluate-registered-close"] == 1.0
    assert rows[(0, 0)]["error"] == "ValueError: no zeros" and rows[(0, 0)]["failed_cleanly"] == 0.0
    assert rows[(0, 0)]["within-two"] == 0.0 and rows[(1, 2)]["failed_cleanly"] == 1.0
    reasons = {s["scorerId"]: s["reason"] for r in result.results if r["error"] for s in r["scores"]}
    assert reasons["failed_cleanly"] == "ValueError: no zeros"
