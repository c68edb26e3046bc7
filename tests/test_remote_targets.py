"""Runs against remote targets and an LLM judge, each a real HTTP server started here:
an OpenAI-compatible model, a plain HTTP endpoint, and a judge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from conftest import running_service, with_settings
from json_endpoint import QuietHandler, answer_json, serve, stop, url_of
from waiting import wait_finished
from llm_server import LLMServer, chat_completion

from evalledger import ApiError, Client
from evalledger.settings import Settings


@contextmanager
def serving(settings: Settings, *allowed: str) -> Iterator[Client]:
    """The service, allowed to call the base URLs `allowed` (servers this test started)."""
    with running_service(with_settings(settings, http_allowlist=allowed)) as running:
        yield running.client


class Endpoint:
    """A JSON endpoint answering {"answer": <input's question upper-cased>}; the first
    `flaky` calls answer 503."""

    def __init__(self, flaky: int = 0) -> None:
        self.calls: list[Any] = []
        endpoint = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.read_body())
                endpoint.calls.append(body)
                status = 503 if len(endpoint.calls) <= flaky else 200
                answer_json(self, status, {"answer": str(body.get("question", "")).upper()}, x_trace_id=f"trace-{len(endpoint.calls)}")

        self.httpd = serve(Handler)
        self.url = url_of(self.httpd, "/answer")

    def close(self) -> None:
        stop(self.httpd)


def test_an_openai_compatible_target_and_an_llm_judge(settings: Settings) -> None:

    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body["model"] == "judge-model":
            good = "Paris" in body["messages"][-1]["content"]
            return 200, chat_completion(json.dumps({"score": 1 if good else 0.25, "reason": "judged"}))
        question = body["messages"][-1]["content"]
        return 200, chat_completion("Paris" if "France" in question else "five", completion_id=f"cmpl-{len(question)}")

    with LLMServer(respond) as llm, serving(settings, llm.base_url) as client:
        dataset = client.create_dataset("llm")
        client.add_items(dataset.id, [{"input": {"question": "capital of France?"}, "expectedOutput": "Paris"},
                                      {"input": {"question": "2+2?"}, "expectedOutput": "4"}])
        run = client.create_run(
            dataset.id,
            target={"type": "openai", "baseUrl": llm.base_url, "model": "m", "system": "Answer briefly.",
                    "promptTemplate": "Q: {{input.question}}"},
            scorers=["exact-match", {"name": "llm-judge", "id": "judge",
                                     "options": {"baseUrl": llm.base_url, "model": "judge-model",
                                                 "rubric": "Is the answer correct?"}}],
        )
        done = client.get_run(wait_finished(client.http, run.id)["id"])
        asked = [r for r in llm.requests if r["model"] == "m"]
        rows = {r.output: r for r in client.list_results(run.id).results}
    assert done.status == "completed" and done.succeeded_count == 2
    assert sorted(r["messages"][-1]["content"] for r in asked) == ["Q: 2+2?", "Q: capital of France?"]
    assert set(rows) == {"Paris", "five"}
    scores = {s.scorer_id: s.score for s in rows["Paris"].scores}
    assert scores == {"exact-match": 1.0, "judge": 1.0}
    assert {s.scorer_id: s.score for s in rows["five"].scores} == {"exact-match": 0.0, "judge": 0.25}
    assert rows["Paris"].trace_id.startswith("cmpl-")


def test_an_http_target_is_retried_on_503(settings: Settings) -> None:
    endpoint = Endpoint(flaky=2)
    try:
        with serving(settings, endpoint.url) as client:
            dataset = client.create_dataset("http")
            client.add_item(dataset.id, input={"question": "hi"}, expected_output={"answer": "HI"})
            run = client.create_run(dataset.id, target={"type": "http", "url": endpoint.url},
                                    scorers=[{"name": "exact-match", "options": {"field": "answer"}}], max_retries=3)
            done = client.get_run(wait_finished(client.http, run.id)["id"])
            [result] = client.list_results(run.id).results
    finally:
        endpoint.close()
    assert done.status == "completed"
    assert result.output == {"answer": "HI"} and result.attempt == 3 and result.trace_id == "trace-3"
    assert all("503" in error for error in result.retry_errors) and result.scores[0].score == 1.0


def test_urls_off_the_allowlist_are_refused(settings: Settings) -> None:
    with serving(settings, "http://127.0.0.1:18191") as client:
        dataset = client.create_dataset("allowlist")
        client.add_item(dataset.id, input=1)
        with pytest.raises(ApiError) as refused:
            client.create_run(dataset.id, target={"type": "http", "url": "https://example.com/agent"})
        assert refused.value.status == 422 and "allowlist" in refused.value.detail
        assert client.list_runs(dataset.id).pagination.total == 0
