"""Trace links (issue 17, item 6), with the OpenTelemetry SDK's in-memory exporter: a run,
executed by the service or by evaluate(), opens one span per item and repetition with the
target call (each attempt) and each scorer as its children; results keep the item span's
trace and span ids, and a trace-URL template makes them links in results, exports and the
web UI. Without a tracer provider, results are recorded as before."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import running_service, with_settings
from llm_server import LLMServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from evalledger import evaluate
from evalledger.execution import tracing
from evalledger.execution.targets import TransientError
from evalledger.settings import Settings

TRACE_URL = "https://traces.example.com/trace/{traceId}?span={spanId}"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.use_tracer_provider(None)
    provider.shutdown()


def hexid(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def by_item(finished: list[Any]) -> dict[tuple[str, int], Any]:
    return {(s.attributes["evalledger.item_id"], s.attributes["evalledger.repetition"]): s
            for s in finished if s.name == "evalledger.item"}


def children(finished: list[Any], parent: Any) -> list[Any]:
    return [s for s in finished if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_a_service_run_spans_each_item_with_its_target_and_scorers(settings: Settings, spans: Any) -> None:
    with LLMServer() as llm, running_service(with_settings(settings, http_allowlist=(llm.base_url,),
                                                           trace_url=TRACE_URL)) as svc:
        client = svc.client
        dataset = client.create_dataset("traced")
        added = client.add_items(dataset.id, [{"input": f"q{n}", "expectedOutput": f"q{n}"} for n in range(3)])
        run = client.run_and_wait(dataset.id, target={"type": "openai", "baseUrl": llm.base_url, "model": "m",
                                                      "promptTemplate": "{{input}}"},
                                  scorers=["exact-match", {"name": "contains", "id": "has-q",
                                                           "options": {"value": "q"}}],
                                  repetitions=2, timeout=60)
        assert run.status == "completed"
        finished = list(spans.get_finished_spans())
        items = by_item(finished)
        assert set(items) == {(str(i.id), r) for i in added.items for r in (0, 1)}
        for item_span in items.values():
            assert item_span.attributes["evalledger.run_id"] == str(run.id)
            assert item_span.attributes["evalledger.dataset_version"] == 1
            below = children(finished, item_span)
            assert sorted(s.name for s in below) == ["evalledger.scorer", "evalledger.scorer", "evalledger.target"]
            assert {s.attributes.get("evalledger.scorer_id") for s in below} == {"exact-match", "has-q", None}
            assert all(s.context.trace_id == item_span.context.trace_id for s in below)
            assert len({s.context.trace_id for s in items.values()}) == 6  # a trace per item and repetition

        results = list(client.iter_results(run.id))
        for result in results:
            item_span = items[(str(result.item_id), result.repetition)]
            trace_id, span_id = hexid(item_span.context.trace_id, 32), hexid(item_span.context.span_id, 16)
            assert (result.trace_id, result.span_id) == (trace_id, span_id)
            assert result.trace_url == f"https://traces.example.com/trace/{trace_id}?span={span_id}"

        exported = io.BytesIO()
        client.export_results(run.id, exported)
        lines = [json.loads(line) for line in exported.getvalue().splitlines()]
        assert {line["traceUrl"] for line in lines} == {r.trace_url for r in results}
        page = client.http.get(f"/runs/{run.id}")
        assert f'class="trace-link" href="{results[0].trace_url}"'.replace("&", "&amp;") in page.text


def test_evaluate_spans_attempts_and_failures_in_the_callers_process(settings: Settings, spans: Any) -> None:
    with running_service(with_settings(settings, trace_url=TRACE_URL)) as svc:
        client = svc.client
        dataset = client.create_dataset("evaluated")
        client.add_items(dataset.id, [{"input": n, "expectedOutput": n} for n in range(4)])
        calls: dict[int, int] = {}

        def flaky(n: int) -> int:
            calls[n] = calls.get(n, 0) + 1
            if n == 1 and calls[n] == 1:
                raise TransientError("try again")
            if n == 3:
                raise ValueError("no answer for 3")
            return n

        result = evaluate("evaluated", flaky, ["exact-match"], url=svc.url, progress=False, max_retries=2)
        finished = list(spans.get_finished_spans())
        items = {s.attributes["evalledger.item_id"]: s for s in by_item(finished).values()}
        assert len(items) == 4
        inputs = {r["itemId"]: r["input"] for r in result.results}
        for item_id, item_span in items.items():
            attempts = [s for s in children(finished, item_span) if s.name == "evalledger.target"]
            assert [a.attributes["evalledger.attempt"] for a in attempts] == ([1, 2] if inputs[item_id] == 1 else [1])
            failed = inputs[item_id] == 3
            assert (item_span.status.status_code == StatusCode.ERROR) == failed
            assert (attempts[-1].status.status_code == StatusCode.ERROR) == failed
        first_attempt = next(s for s in children(finished, items[next(i for i, v in inputs.items() if v == 1)])
                             if s.attributes.get("evalledger.attempt") == 1)
        assert first_attempt.status.status_code == StatusCode.ERROR and first_attempt.events  # the exception
        for row in result.results:
            item_span = items[row["itemId"]]
            assert row["traceId"] == hexid(item_span.context.trace_id, 32)
            assert row["spanId"] == hexid(item_span.context.span_id, 16)
            assert row["traceUrl"].startswith("https://traces.example.com/trace/" + row["traceId"])


def test_without_a_tracer_provider_results_are_recorded_as_before(settings: Settings) -> None:
    with LLMServer() as llm, running_service(with_settings(settings, http_allowlist=(llm.base_url,),
                                                           trace_url=TRACE_URL)) as svc:
        client = svc.client
        dataset = client.create_dataset("untraced")
        client.add_items(dataset.id, [{"input": "q"}])
        run = client.run_and_wait(dataset.id, target={"type": "openai", "baseUrl": llm.base_url, "model": "m",
                                                      "promptTemplate": "{{input}}"}, timeout=60)
        [result] = list(client.iter_results(run.id))
        assert result.trace_id == "chatcmpl-test"  # what the target reported
        assert result.span_id is None and result.trace_url is None
        [event] = [e for e in client.run_events(run.id).events if e.type == "ResultsRecorded"]
        assert "spanId" not in event.payload["results"][0]
