"""Spans of run execution, with OpenTelemetry when it is installed (it is optional).

Each item (and repetition) gets a span, `evalledger.item`, tagged with the run, dataset,
item and repetition; the target call (each attempt) and each scorer are its children
(`evalledger.target`, `evalledger.scorer`), so a target's own instrumentation (HTTP
clients, LLM SDKs) nests under its attempt. Runs executed by the service and runs of
`evaluate()` share this code (the runner), each in its own process with that process's
OpenTelemetry configuration.

Without the opentelemetry API installed, or with no SDK tracer provider configured (the
API's default provider records nothing), spans cost next to nothing and a result carries
what its target reported as before. With one, the item span's trace and span ids are
stored on the result (`traceId`, `spanId`), and a trace-URL template
(`EVALLEDGER_TRACE_URL`, e.g. `https://jaeger.example.com/trace/{traceId}`) turns them into
a link (`traceUrl`) in results, exports and the web UI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import trace as otel_trace
except ImportError:  # optional: without it there are no spans
    otel_trace = None  # type: ignore[assignment]

INSTRUMENTATION = "evalledger"
_provider: Any = None  # a TracerProvider given to use_tracer_provider (None: the global one)


_tracers: dict[int, Any] = {}  # by id of the provider given (0: the global one's proxy)


def use_tracer_provider(provider: Any) -> None:
    """Make evalledger's spans go to `provider` instead of OpenTelemetry's global tracer
    provider (None: back to the global one)."""
    global _provider
    _provider = provider
    _tracers.clear()


def _tracer() -> Any:
    """The tracer, made once per provider: the global provider's is a proxy that follows a
    provider configured later, so it can be kept too."""
    if otel_trace is None:
        return None
    provider = _provider
    key = 0 if provider is None else id(provider)
    tracer = _tracers.get(key)
    if tracer is None:
        tracer = _tracers[key] = (provider or otel_trace.get_tracer_provider()).get_tracer(INSTRUMENTATION)
    return tracer


@contextmanager
def span(name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    """A span (current while the block runs), or None without OpenTelemetry. An exception
    leaving the block is recorded on it and sets its status to error."""
    tracer = _tracer()
    if tracer is None:
        yield None
        return
    current = tracer.start_span(name, attributes={k: v for k, v in attributes.items() if v is not None})
    if not current.is_recording():  # no SDK configured: skip making it current (most of a span's cost)
        yield None
        return
    with otel_trace.use_span(current, end_on_exit=True, record_exception=True, set_status_on_exception=True):
        yield current


def failed(current: Any, message: str) -> None:
    """Mark a span as failed (the item's or a scorer's error, which is an answer, not an exception)."""
    if current is not None and otel_trace is not None:
        current.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, message[:500]))


def span_ids(current: Any) -> tuple[str | None, str | None]:
    """The span's trace and span ids in hex (None, None when nothing records it)."""
    if current is None:
        return None, None
    context = current.get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def trace_url(template: str | None, trace_id: str | None, span_id: str | None) -> str | None:
    """The link a trace-URL template makes of a result's ids (`{traceId}`, `{spanId}`)."""
    if not template or not trace_id:
        return None
    return template.replace("{traceId}", trace_id).replace("{spanId}", span_id or "")
