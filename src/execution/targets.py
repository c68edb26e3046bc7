"""Targets: what a run calls with each item's input.

- registered: a user's Python function (see registry.py); sync ones run in a worker thread;
- http: POST the input as JSON to a URL on the allowlist;
- openai: an OpenAI-compatible chat-completions endpoint with a prompt template.

Errors worth retrying raise `TransientError` (timeouts, HTTP 429 and 5xx, connection
errors); any other exception is the target's answer and is not retried.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.registry import Registered, Registry, TargetContext
from evalledger.execution.templates import render

ALLOWLIST_HINT = (
    "set EVALLEDGER_HTTP_ALLOWLIST (comma-separated URL prefixes, e.g. https://api.example.com/) "
    "or pass --allow-http to evalledger serve"
)


class TransientError(Exception):
    """A failure worth retrying: a timeout, HTTP 429 or 5xx, a connection error."""


class TargetTimeoutError(TransientError):
    pass


@dataclass(frozen=True)
class TargetOutput:
    output: Any
    trace_id: str | None = None


class Target(Protocol):
    id: str

    async def invoke(self, input: Any, context: TargetContext) -> TargetOutput: ...


def check_allowed(url: str, allowlist: Sequence[str], what: str) -> None:
    if not any(url.startswith(prefix) for prefix in allowlist):
        raise InvalidRequestError(f"{what} URL {url!r} is not on the allowlist; {ALLOWLIST_HINT}")


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
        if self.entry.is_async:
            return _as_output(await self.entry.func(input, context))
        return _as_output(await asyncio.to_thread(self.entry.func, input, context))


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
    return response


class _HttpClientOwner:
    _client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(None), limits=httpx.Limits(max_connections=256))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class HttpTarget(_HttpClientOwner):
    def __init__(self, spec: dict[str, Any], allowlist: Sequence[str]) -> None:
        self.url = str(_require(spec, "url", "http"))
        check_allowed(self.url, allowlist, "http target")
        self.headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
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
        response = await _post(self.client(), self.url, body=orjson.dumps(payload), headers=self.headers)
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
        check_allowed(self.base_url, allowlist, "openai target")
        self.model = str(_require(spec, "model", "openai"))
        self.template = str(_require(spec, "promptTemplate", "openai"))
        self.system = spec.get("system")
        self.api_key_env = spec.get("apiKeyEnv")
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
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = {"model": self.model, "messages": messages, "temperature": self.temperature}
        response = await _post(self.client(), f"{self.base_url}/chat/completions", body=orjson.dumps(body),
                               headers=headers)
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
        return TargetOutput(content, answer.get("id"))


def build_target(spec: dict[str, Any], registry: Registry, *, http_allowlist: Sequence[str]) -> Target:
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
                     "{{metadata.x}}", "system": "system prompt", "apiKeyEnv": "environment variable "
                     "holding the API key", "temperature": "default 0", "responseFormat": "text | json"}},
    ]
