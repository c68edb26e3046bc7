"""The LLM judge: a built-in scorer that asks an OpenAI-compatible chat endpoint, with its own
HTTP client (the one scorer holding a resource)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from evalledger.execution.scorers.builtin import BuiltinScorer
from evalledger.execution.scorers.contract import ScoreInput, ScoreOutput, to_score_output
from evalledger.execution.scorers.options import Option
from evalledger.execution.scorers.values import show
from evalledger.execution.outbound import check_allowed, check_secret_name, redirect_refusal, secret_value
from evalledger.execution.targets import TransientError, openai_usage


JUDGE_INSTRUCTIONS = """You are a strict evaluator of an AI system's output.
You receive, as JSON, the INPUT given to the system, the EXPECTED OUTPUT (a reference answer; it may be null)
and the OUTPUT to judge. Judge the OUTPUT by this rubric:

<rubric>
{rubric}
</rubric>

Answer with only a JSON object, no other text: {{"score": <a number from 0 to 1, 1 = fully meets the rubric>,
"reason": "<one or two sentences>"}}"""


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first {...} JSON object in text that may wrap it in ```json fences or prose."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            found, _ = decoder.raw_decode(text, start)
        except ValueError:
            found = None
        if isinstance(found, dict):
            return found
        start = text.find("{", start + 1)
    return None


class JudgeUnavailableError(TransientError):
    """The judge's endpoint answered 429 or 5xx, or could not be reached: worth retrying."""


class LlmJudge(BuiltinScorer):
    """An LLM scores the output by a rubric over an OpenAI-compatible chat-completions
    endpoint (POST {baseUrl}/chat/completions). The answer must hold a JSON object
    {"score": 0..1, "reason": "..."}, possibly in a fence or among prose. HTTP 429/5xx and
    connection failures raise `JudgeUnavailableError` (a TransientError); other failures
    raise ValueError. One HTTP client per scorer, created on first use in the running
    event loop; `aclose()` closes it."""

    name = "llm-judge"
    description = "An LLM (OpenAI-compatible chat completions) scores the output against a rubric, 0 to 1."
    OPTIONS = (
        Option("baseUrl", "string", None, "API base URL, e.g. https://api.openai.com/v1 (must be on the HTTP "
               "allowlist)", required=True),
        Option("model", "string", None, "model name", required=True),
        Option("rubric", "string", None, "what a good output is; the judge scores against it", required=True),
        Option("apiKeyEnv", "string", None, "an EVALLEDGER_SECRET_* environment variable holding the API key "
               "(sent as a Bearer token)"),
        Option("temperature", "number", 0.0, "sampling temperature", minimum=0.0, maximum=2.0),
        Option("timeoutSeconds", "number", 60.0, "how long to wait for the judge's answer", positive=True),
    )
    needs_expected = False

    def __init__(self, scorer_id: str, options: dict[str, Any], http_allowlist: Sequence[str] = ()) -> None:
        super().__init__(scorer_id, options)
        self.url = self.options["baseUrl"].rstrip("/") + "/chat/completions"
        check_allowed(self.url, http_allowlist, "scorer 'llm-judge': option 'baseUrl' (+ /chat/completions)")
        if self.options["apiKeyEnv"] is not None:
            check_secret_name(self.options["apiKeyEnv"], "scorer 'llm-judge': option 'apiKeyEnv'")
        self.system_prompt = JUDGE_INSTRUCTIONS.format(rubric=self.options["rubric"])
        self._client: httpx.AsyncClient | None = None

    async def score(self, x: ScoreInput) -> ScoreOutput:
        if x.error is not None:
            return ScoreOutput(0.0, f"no output to judge: the target failed ({x.error[:200]})")
        content, usage = await self._ask(self._messages(x))
        verdict = first_json_object(content)
        if verdict is None:
            raise ValueError(f"llm-judge: the judge's answer holds no JSON object: {show(content, 200)}")
        if verdict.get("score") is None:
            raise ValueError(f"llm-judge: the judge's answer has no score: {show(verdict, 200)}")
        judged = to_score_output({"score": verdict["score"], "reason": verdict.get("reason")}, "llm-judge: the judge")
        return ScoreOutput(judged.score, judged.reason, usage)

    def _messages(self, x: ScoreInput) -> list[dict[str, str]]:
        case = {"input": x.input, "expectedOutput": x.expected_output, "output": x.output}
        user = orjson.dumps(case, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_INDENT_2, default=str).decode()
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]

    async def _ask(self, messages: list[dict[str, str]]) -> tuple[str, dict[str, Any] | None]:
        """POST the chat request; the assistant message's text, and the usage the endpoint
        reported (None when it reported none)."""
        body = {"model": self.options["model"], "temperature": self.options["temperature"], "messages": messages}
        try:
            response = await self.client().post(self.url, json=body)
        except httpx.TransportError as error:
            raise JudgeUnavailableError(f"llm-judge: cannot reach {self.url}: "
                                        f"{type(error).__name__}: {error}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise JudgeUnavailableError(f"llm-judge: HTTP {response.status_code} from {self.url}: "
                                        f"{response.text[:200]}")
        if response.status_code >= 400:
            raise ValueError(f"llm-judge: HTTP {response.status_code} from {self.url}: {response.text[:200]}")
        if response.is_redirect:
            raise ValueError(f"llm-judge: {redirect_refusal(response, self.url)}")
        try:
            answer = response.json()
            content = answer["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError):
            raise ValueError(f"llm-judge: not a chat completion: {response.text[:200]}") from None
        if not isinstance(content, str):
            raise ValueError(f"llm-judge: the judge's message has no text: {show(content)}")
        return content, openai_usage(answer)

    def client(self) -> httpx.AsyncClient:
        """The scorer's one HTTP client, created on first use."""
        if self._client is None:
            headers = {}
            key_env = self.options["apiKeyEnv"]
            if key_env is not None:
                headers["Authorization"] = f"Bearer {secret_value(key_env, 'llm-judge (apiKeyEnv)')}"
            timeout = httpx.Timeout(self.options["timeoutSeconds"], connect=min(10.0, self.options["timeoutSeconds"]))
            # No redirects: a redirect could lead off the allowlist.
            self._client = httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

