"""Targets: what a run calls with each item's input.

- registered: a user's Python function (see registry.py); sync ones run in a worker thread;
- http: POST the input as JSON to a URL on the allowlist;
- openai: an OpenAI-compatible chat-completions endpoint with a prompt template.

Which errors are worth retrying is `is_transient`'s call: timeouts, connection errors,
HTTP 429 and 5xx (ours, httpx's, requests', the OpenAI SDK's), `TransientError` and any
exception with `transient = True`. Any other exception is the target's answer.

Where HTTP and OpenAI targets may send requests, and the secrets they may carry, is
outbound.py's call.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import httpx
import orjson

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.outbound import (
    SECRET_PREFIX,
    check_allowed,
    check_secret_name,
    is_secret_header,
    redirect_refusal,
    secret_value,
)
from evalledger.execution.registry import Registered, Registry, TargetContext
from evalledger.execution.templates import render

log = logging.getLogger(__name__)

class TransientError(Exception):
    """A failure worth retrying: a timeout, HTTP 429 or 5xx, a connection error. A user's
    own exception class may instead say `transient = True` (see `is_transient`)."""


class TargetTimeoutError(TransientError):
    pass


@dataclass(frozen=True)
class TargetOutput:
    """What a target answers. A user's function returns a bare value, or this to report a
    trace id or what the call used: `usage={"inputTokens": 812, "outputTokens": 95,
    "cost": 0.0031, "model": "gpt-4o-mini"}` (any of them; see `read_usage`)."""

    output: Any
    trace_id: str | None = None
    usage: dict[str, Any] | None = None


# Usage a target may report, by the names it may use (ours, OpenAI's and snake_case).
_USAGE_NAMES = {"inputTokens": "inputTokens", "input_tokens": "inputTokens", "prompt_tokens": "inputTokens",
                "outputTokens": "outputTokens", "output_tokens": "outputTokens",
                "completion_tokens": "outputTokens", "cost": "cost", "model": "model"}


def read_usage(usage: Any) -> dict[str, Any] | None:
    """A target's usage as results record it: {inputTokens, outputTokens, cost, model},
    each only when given. ValueError for anything else (the item records it as its error)."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise ValueError(f"usage must be a dict of inputTokens, outputTokens, cost and model, not {type(usage).__name__}")
    unknown = sorted(str(k) for k in usage if k not in _USAGE_NAMES)
    if unknown:
        raise ValueError(f"usage has unknown key(s) {', '.join(unknown)}; use inputTokens, outputTokens, cost, model")
    read: dict[str, Any] = {}
    for key, value in usage.items():
        name = _USAGE_NAMES[key]
        if value is None:
            continue
        if name == "model":
            if not isinstance(value, str) or len(value) > 200:
                raise ValueError("usage model must be a text of at most 200 characters")
        elif name == "cost":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e12:
                raise ValueError(f"usage cost must be a number of at least 0, not {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
            raise ValueError(f"usage {name} must be a whole number of at least 0, not {value!r}")
        read[name] = value
    return read or None


def openai_usage(answer: dict[str, Any]) -> dict[str, Any] | None:
    """The usage an OpenAI-compatible answer reports (`usage` and `model`; some gateways,
    OpenRouter's for one, add `usage.cost`), or None when it reports none or no valid one."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return None
    reported = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "cost")}
    if isinstance(answer.get("model"), str):
        reported["model"] = answer["model"]
    try:
        return read_usage(reported)
    except ValueError:
        log.warning("ignoring usage the endpoint reported that is not valid: %.200s", usage)
        return None


class Target(Protocol):
    id: str

    async def invoke(self, input: Any, context: TargetContext) -> TargetOutput: ...


# -- which failures are retried -------------------------------------------------------------------

# Exception class names of the OpenAI SDK (and SDKs modelled on it) that mean "try again";
# matched by name so that the SDK is not a dependency.
_TRANSIENT_NAMES = frozenset({"APITimeoutError", "APIConnectionError", "RateLimitError", "InternalServerError"})


def _retryable_status(status: Any) -> bool:
    return isinstance(status, int) and not isinstance(status, bool) and (status == 429 or 500 <= status <= 599)


def is_transient(error: BaseException) -> bool:
    """Whether a target's failure is worth retrying: `TransientError`; an exception with a
    boolean `transient` attribute (its say is final); the built-in `TimeoutError` and
    `ConnectionError`; httpx timeouts and network errors; `requests`' timeouts and
    connection errors; the OpenAI SDK's timeout, connection, rate-limit and server errors;
    and any error carrying an HTTP status 429 or 5xx, as `error.status_code` (OpenAI SDK)
    or `error.response.status_code` (httpx's HTTPStatusError, requests' HTTPError)."""
    if isinstance(error, TransientError):
        return True
    marked = getattr(error, "transient", None)
    if isinstance(marked, bool):
        return marked
    if isinstance(error, TimeoutError | ConnectionError):
        return True
    if isinstance(error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return True
    requests = sys.modules.get("requests")  # only a user's target can have raised its errors
    if requests is not None and isinstance(error, requests.exceptions.Timeout | requests.exceptions.ConnectionError):
        return True
    if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(error).__mro__):
        return True
    if _retryable_status(getattr(error, "status_code", None)):
        return True
    response = getattr(error, "response", None)
    return response is not None and _retryable_status(getattr(response, "status_code", None))


def _require(spec: dict[str, Any], key: str, kind: str) -> Any:
    value = spec.get(key)
    if value is None or value == "":
        raise InvalidRequestError(f"{kind} target needs '{key}'")
    return value


def _as_output(value: Any) -> TargetOutput:
    return value if isinstance(value, TargetOutput) else TargetOutput(value)


class RegisteredTarget:
    def __init__(self, entry: Registered) -> None:
        self.entry = entry
        self.id = f"{entry.kind}:{entry.name}"

    async def invoke(self, input: Any, context: TargetContext) -> TargetOutput:
        return _as_output(await self.entry.call(input, context))


async def _post(client: httpx.AsyncClient, url: str, *, body: bytes, headers: dict[str, str]) -> httpx.Response:
    try:
        response = await client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
    except httpx.TimeoutException as error:
        raise TargetTimeoutError(f"HTTP timeout calling {url}: {error}") from error
    except httpx.TransportError as error:
        raise TransientError(f"cannot reach {url}: {error}") from error
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"HTTP {response.status_code} from {url}: {response.text[:200]}")
    if response.status_code >= 400:
        raise RuntimeError(f"HTTP {response.status_code} from {url}: {response.text[:200]}")
    if response.is_redirect:
        raise RuntimeError(redirect_refusal(response, url))
    return response


class _HttpClientOwner:
    _client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No redirects: a redirect could lead off the allowlist.
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(None), limits=httpx.Limits(max_connections=256),
                                             follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class HttpTarget(_HttpClientOwner):
    def __init__(self, spec: dict[str, Any], allowlist: Sequence[str]) -> None:
        self.url = str(_require(spec, "url", "http"))
        check_allowed(self.url, allowlist, "http target: 'url'")
        self.headers = _plain_headers(spec.get("headers"))
        self.secret_headers = _secret_headers(spec.get("headersFromEnv"))
        self.envelope = bool(spec.get("envelope", False))
        self.output_field = spec.get("outputField")
        self.id = f"http:{self.url}"

    async def invoke(self, input: Any, context: TargetContext) -> TargetOutput:
        payload: Any = input
        if self.envelope:
            payload = {
                "input": input,
                "expectedOutput": context.expected_output,
                "metadata": context.metadata,
                "context": {"runId": context.run_id, "itemId": context.item_id,
                            "repetition": context.repetition, "attempt": context.attempt},
            }
        headers = {**self.headers, **{name: secret_value(env, f"http target header {name!r}")
                                      for name, env in self.secret_headers.items()}}
        response = await _post(self.client(), self.url, body=orjson.dumps(payload), headers=headers)
        try:
            output: Any = response.json()
        except ValueError:
            output = response.text
        if self.output_field is not None:
            if not isinstance(output, dict) or self.output_field not in output:
                raise RuntimeError(f"response has no field {self.output_field!r}")
            output = output[self.output_field]
        trace = response.headers.get("x-trace-id") or response.headers.get("traceparent")
        return TargetOutput(output, trace)


class OpenAITarget(_HttpClientOwner):
    def __init__(self, spec: dict[str, Any], allowlist: Sequence[str]) -> None:
        self.base_url = str(_require(spec, "baseUrl", "openai")).rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        check_allowed(self.url, allowlist, "openai target: 'baseUrl' (+ /chat/completions)")
        self.model = str(_require(spec, "model", "openai"))
        self.template = str(_require(spec, "promptTemplate", "openai"))
        self.system = spec.get("system")
        key_env = spec.get("apiKeyEnv")
        self.api_key_env = None if key_env is None else check_secret_name(key_env, "openai target: 'apiKeyEnv'")
        self.temperature = spec.get("temperature", 0)
        self.json_output = spec.get("responseFormat", "text") == "json"
        self.id = f"openai:{self.model}"

    async def invoke(self, input: Any, context: TargetContext) -> TargetOutput:
        prompt = render(self.template, {"input": input, "expectedOutput": context.expected_output,
                                        "metadata": context.metadata})
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": prompt}
        ]
        headers = {}
        if self.api_key_env is not None:
            headers["Authorization"] = f"Bearer {secret_value(self.api_key_env, 'openai target')}"
        body = {"model": self.model, "messages": messages, "temperature": self.temperature}
        response = await _post(self.client(), self.url, body=orjson.dumps(body), headers=headers)
        answer = response.json()
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"not a chat completion: {str(answer)[:200]}") from None
        if self.json_output:
            try:
                content = orjson.loads(content)
            except orjson.JSONDecodeError:
                raise RuntimeError(f"the model did not answer JSON: {content[:200]}") from None
        return TargetOutput(content, answer.get("id"), openai_usage(answer))


def _plain_headers(headers: Any) -> dict[str, str]:
    """`headers` of an HTTP target: stored and shown as given, so no credentials."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise InvalidRequestError("http target: 'headers' must be an object of header names and values")
    secret = sorted(name for name in headers if is_secret_header(str(name)))
    if secret:
        raise InvalidRequestError(
            f"http target: header(s) {', '.join(repr(n) for n in secret)} carry credentials and may not be given "
            f"in 'headers', where they would be stored and shown with the run; name a secret instead: "
            f'"headersFromEnv": {{"{secret[0]}": "{SECRET_PREFIX}..."}} (the variable holds the whole header value)')
    return {str(k): str(v) for k, v in headers.items()}


def _secret_headers(headers: Any) -> dict[str, str]:
    """`headersFromEnv` of an HTTP target: header name -> the secret variable holding its value."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise InvalidRequestError("http target: 'headersFromEnv' must be an object of header names and "
                                  f"{SECRET_PREFIX}* variable names")
    return {str(name): check_secret_name(env, f"http target: 'headersFromEnv' of {str(name)[:100]!r}")
            for name, env in headers.items()}


class StoredResultError(Exception):
    """The source run's result failed: the re-scored result fails the same way (not retried)."""

    transient = False


class StoredOutputTarget:
    """A re-score's target (issue 18): the output another run recorded for the same item and
    repetition, read from the read model; nothing is called. `result_row(run, item,
    repetition)` is RunQueries.result_row."""

    def __init__(self, spec: dict[str, Any], result_row: Callable[[UUID, UUID, int], dict[str, Any]] | None) -> None:
        try:
            self.run_id = UUID(str(_require(spec, "runId", "stored-output")))
        except ValueError:
            raise InvalidRequestError("stored-output target: runId must be a run id") from None
        if result_row is None:
            raise InvalidRequestError("stored-output targets are for re-scoring a run's stored outputs")
        self.result_row = result_row

    async def invoke(self, input: Any, context: TargetContext) -> TargetOutput:
        row = await asyncio.to_thread(self.result_row, self.run_id, UUID(context.item_id), context.repetition)
        if row["error"] is not None:
            raise StoredResultError(f"the source run's result failed: {row['error']}")
        return TargetOutput(output=row["output"])


def build_target(spec: dict[str, Any], registry: Registry, *, http_allowlist: Sequence[str],
                 result_row: Callable[[UUID, UUID, int], dict[str, Any]] | None = None) -> Target:
    if not isinstance(spec, dict):
        raise InvalidRequestError("target must be an object with a 'type'")
    kind = spec.get("type")
    if kind == "registered":
        name = _require(spec, "name", "registered")
        entry = registry.targets.get(name)
        if entry is None:
            known = ", ".join(sorted(registry.targets)) or "none (start the service with --app your.module)"
            raise InvalidRequestError(f"no target named {name!r} is registered; registered: {known}")
        return RegisteredTarget(entry)
    if kind == "http":
        return HttpTarget(spec, http_allowlist)
    if kind == "openai":
        return OpenAITarget(spec, http_allowlist)
    if kind == "stored-output":
        return StoredOutputTarget(spec, result_row)
    raise InvalidRequestError(f"unknown target type {kind!r}; use 'registered', 'http' or 'openai'")


def describe_builtin_targets() -> list[dict[str, Any]]:
    return [
        {"type": "registered", "description": "A Python function registered with @target (see --app).",
         "options": {"name": "registered name"}},
        {"type": "http", "description": "POST the item's input as JSON to a URL on the allowlist; the JSON answer "
         "is the output.", "options": {"url": "required", "headers": "object", "envelope":
         "send {input, expectedOutput, metadata, context} instead of the bare input",
         "outputField": "take this field of the answer"}},
        {"type": "openai", "description": "An OpenAI-compatible chat-completions endpoint.",
         "options": {"baseUrl": "required, e.g. https://api.openai.com/v1", "model": "required",
                     "promptTemplate": "required; {{input}}, {{input.question}}, {{expectedOutput}}, "
                     "{{metadata.x}}", "system": "system prompt", "apiKeyEnv": f"a {SECRET_PREFIX}* "
                     "environment variable holding the API key", "temperature": "default 0", "responseFormat": "text | json"}},
    ]
