"""Usage (tokens, cost, model): the OpenAI-compatible target records what its endpoint
reports, results carry it, analytics totals it, and a rebuilt read model (the bulk path)
holds the same."""

from __future__ import annotations

from typing import Any

from conftest import running_service, with_settings
from llm_server import LLMServer, chat_completion
from waiting import wait_until

from evalledger.settings import Settings


def test_the_openai_target_records_the_usage_its_endpoint_reports(settings: Settings) -> None:
    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        question = body["messages"][-1]["content"]
        answer = chat_completion("ok", model="served-model")
        answer["usage"] = {"prompt_tokens": len(question), "completion_tokens": 3, "total_tokens": len(question) + 3,
                           "cost": 0.002}
        return 200, answer

    with LLMServer(respond) as llm, running_service(with_settings(settings, http_allowlist=(llm.base_url,))) as svc:
        client = svc.client
        dataset = client.create_dataset("metered")
        client.add_items(dataset.id, [{"input": "a" * n} for n in (1, 2, 3, 4)])
        run = client.run_and_wait(dataset.id, target={"type": "openai", "baseUrl": llm.base_url, "model": "m",
                                                      "promptTemplate": "{{input}}"}, timeout=30)
        assert run.status == "completed"
        usage = {r.input: r.usage for r in client.iter_results(run.id)}
        assert usage["aa"] == {"inputTokens": 2, "outputTokens": 3, "cost": 0.002, "model": "served-model"}
        typed = client.analytics(run.id).usage
        assert typed.input_tokens == 10 and typed.output_tokens == 12 and typed.results == 4
        assert abs(typed.cost - 0.008) < 1e-9 and typed.models == ["served-model"]
        assert typed.per_item.input_tokens == 2.5 and typed.per_item.output_tokens == 3
        totals = client.request("GET", f"/api/datasets/runs/{run.id}/analytics")["usage"]

        report = client.request("POST", "/api/projections/runs/rebuild")
        wait_until(lambda: client.request("GET", f"/api/datasets/runs/{run.id}/analytics")["usage"] == totals,
                   f"the rebuilt usage to equal the live one ({report})")
        assert {r.input: r.usage for r in client.iter_results(run.id)} == usage


def test_an_endpoint_without_usage_records_none(settings: Settings) -> None:
    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answer = chat_completion("ok")
        del answer["usage"]
        return 200, answer

    with LLMServer(respond) as llm, running_service(with_settings(settings, http_allowlist=(llm.base_url,))) as svc:
        dataset = svc.client.create_dataset("unmetered")
        svc.client.add_items(dataset.id, [{"input": "x"}])
        run = svc.client.run_and_wait(dataset.id, target={"type": "openai", "baseUrl": llm.base_url, "model": "m",
                                                          "promptTemplate": "{{input}}"}, timeout=30)
        [result] = list(svc.client.iter_results(run.id))
        assert result.usage is None
        assert svc.client.analytics(run.id).usage.results == 0
