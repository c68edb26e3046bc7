"""What runs cost, side by side (issue 17, item 4): the LLM judge records the usage its
endpoint reports on its scores, analytics total the target's and each scorer's usage, a
comparison sets both runs' usage with B's difference (totals and per item), and the
command line's run summary and comparison show them. Against the fake OpenAI-compatible
server the tests use, through the service's own runs and through evaluate()."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cli_runner import evalledger
from conftest import running_service, with_settings
from llm_server import LLMServer, chat_completion

from evalledger import evaluate
from evalledger.settings import Settings

# Per request: (prompt tokens, completion tokens, cost) by the model asked for.
PRICES = {"cheap": (10, 2, 0.001), "dear": (30, 6, 0.003), "judge": (100, 5, 0.0005)}


def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    model = body["model"]
    prompt, completion, cost = PRICES[model]
    if model == "judge":
        answer = chat_completion('{"score": 1, "reason": "fine"}', model="judge-v1")
    else:
        answer = chat_completion("Paris", model=f"{model}-v1")
    answer["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                       "total_tokens": prompt + completion, "cost": cost}
    return 200, answer


def judge(base_url: str) -> dict[str, Any]:
    return {"name": "llm-judge", "id": "judge", "options": {"baseUrl": base_url, "model": "judge",
                                                             "rubric": "names the capital"}}


def target(base_url: str, model: str) -> dict[str, Any]:
    return {"type": "openai", "baseUrl": base_url, "model": model, "promptTemplate": "{{input}}"}


@pytest.fixture
def llm() -> Any:
    with LLMServer(respond) as server:
        yield server


def test_judge_usage_totals_and_the_comparison_of_two_runs_costs(settings: Settings, llm: LLMServer) -> None:
    with running_service(with_settings(settings, http_allowlist=(llm.base_url,))) as svc:
        client = svc.client
        dataset = client.create_dataset("capitals")
        client.add_items(dataset.id, [{"input": f"capital of country {n}?", "expectedOutput": "Paris"}
                                      for n in range(4)])
        runs = {model: client.run_and_wait(dataset.id, target=target(llm.base_url, model),
                                           scorers=["exact-match", judge(llm.base_url)], timeout=60)
                for model in ("cheap", "dear")}
        assert all(run.status == "completed" for run in runs.values())

        [result, *_] = list(client.iter_results(runs["cheap"].id))
        judged = next(s for s in result.scores if s.scorer_id == "judge")
        assert judged.usage == {"inputTokens": 100, "outputTokens": 5, "cost": 0.0005, "model": "judge-v1"}
        assert not hasattr(next(s for s in result.scores if s.scorer_id == "exact-match"), "usage")

        usage = client.analytics(runs["cheap"].id).usage
        assert (usage.results, usage.input_tokens, usage.output_tokens, usage.models) == (4, 40, 8, ["cheap-v1"])
        assert usage.cost == pytest.approx(0.004) and usage.per_item.cost == pytest.approx(0.001)
        assert list(usage.scorers) == ["judge"]
        scoring = usage.scorers["judge"]
        assert (scoring.results, scoring.input_tokens, scoring.output_tokens) == (4, 400, 20)
        assert scoring.cost == pytest.approx(0.002) and usage.total_cost == pytest.approx(0.006)

        comparison = client.compare(runs["cheap"].id, runs["dear"].id)
        cost = comparison.usage
        assert cost.a.cost == pytest.approx(0.004) and cost.b.cost == pytest.approx(0.012)
        assert cost.delta.cost == pytest.approx(0.008) and cost.delta.total_cost == pytest.approx(0.008)
        assert (cost.delta.input_tokens, cost.delta.output_tokens) == (80, 16)
        assert cost.delta.per_item.cost == pytest.approx(0.002)
        assert (cost.delta.per_item.input_tokens, cost.delta.per_item.output_tokens) == (20, 4)

        # The command line: the run summary and the comparison say what it cost.
        ran = evalledger("run", str(dataset.id), "--target", json.dumps(target(llm.base_url, "dear")),
                         "--scorer", json.dumps(judge(llm.base_url)), url=svc.url)
        assert ran.returncode == 0, ran.stderr
        assert "tokens in / out" in ran.stderr and "120 / 24 (30.0 / 6.0 per item)" in ran.stderr
        assert "0.0120 (0.003000 per item)" in ran.stderr and "scoring judge" in ran.stderr
        assert "total cost" in ran.stderr and "0.0140" in ran.stderr
        compared = evalledger("compare", str(runs["cheap"].id), str(runs["dear"].id), url=svc.url)
        assert compared.returncode == 0, compared.stderr
        assert "cost A 0.0060, B 0.0140 (delta +0.0080); per item: cost delta +0.002000" in compared.stderr
        shown = evalledger("runs", "show", str(runs["cheap"].id), url=svc.url)
        assert "cost" in shown.stdout and "0.0040 (0.001000 per item)" in shown.stdout


def test_runs_without_usage_compare_with_none(settings: Settings) -> None:
    with running_service(settings) as svc:
        client = svc.client
        dataset = client.create_dataset("plain")
        client.add_items(dataset.id, [{"input": n, "expectedOutput": n} for n in range(3)])
        ids = []
        for _ in range(2):
            run = client.create_run(dataset.id, scorers=["exact-match"])
            client.submit_results(run.id, [{"itemId": str(i.id), "output": i.input,
                                            "scores": [{"scorerId": "exact-match", "score": 1.0}]}
                                           for i in client.iter_items(dataset.id)])
            client.finalize_run(run.id)
            ids.append(run.id)
        usage = client.compare(*ids).usage
        assert (usage.a.results, usage.a.cost, usage.a.scorers, usage.a.total_cost) == (0, None, {}, None)
        assert usage.delta.cost is None and usage.delta.per_item.cost is None
        open_run = client.create_run(dataset.id, scorers=["exact-match"])
        item_id = str(next(client.iter_items(dataset.id)).id)
        for usage_given in ({"tokens": 3}, {"cost": -1}, "cheap"):
            bad = client.http.post(f"/api/datasets/runs/{open_run.id}/results", json={"results": [{
                "itemId": item_id, "scores": [{"scorerId": "exact-match", "score": 1, "usage": usage_given}]}]})
            assert bad.status_code in (400, 422) and "usage" in bad.text, bad.text
        assert client.get_run(open_run.id).progress.done == 0


def test_evaluate_records_the_judge_usage_from_the_callers_process(settings: Settings, llm: LLMServer) -> None:
    with running_service(with_settings(settings, http_allowlist=(llm.base_url,))) as svc:
        client = svc.client
        dataset = client.create_dataset("judged")
        client.add_items(dataset.id, [{"input": "q"}, {"input": "r"}])

        def task(question: str) -> str:
            return question.upper()

        for where in ({"url": svc.url}, {"ledger": svc.ledger}):
            result = evaluate("judged", task, [judge(llm.base_url)], http_allowlist=[llm.base_url], progress=False,
                              **where)
            scoring = result.usage["scorers"]["judge"]
            assert (scoring["results"], scoring["inputTokens"], scoring["cost"]) == (2, 200, pytest.approx(0.001))
            assert result.usage["results"] == 0 and result.usage["totalCost"] == pytest.approx(0.001)
            assert all(r["scores"][0]["usage"]["model"] == "judge-v1" for r in result.results)
