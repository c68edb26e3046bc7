"""Scorers: how an output is judged. A score is a number in 0..1 (or null with an error).

A scorer is built once per run from its spec — a name (`"exact-match"`) or
`{"name": ..., "id": ..., "options": {...}}` — so regexes, schemas and HTTP clients are
prepared once, not per item. A scorer raises when it cannot score (misconfiguration,
an expected output it cannot use); the runner records `score: null` with that error.
Where a scorer compares with the expected output, the `field` option (a dot path such
as `answer` or `a.b.0`) is applied to both sides first; an output without that path
scores 0, an expected output without it cannot be scored.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from rapidfuzz import fuzz

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.targets import check_allowed

if TYPE_CHECKING:
    from evalledger.execution.registry import Registered, Registry


@dataclass(frozen=True)
class ScoreInput:
    input: Any
    output: Any
    expected_output: Any
    metadata: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class ScoreOutput:
    score: float | None
    reason: str | None = None


class Scorer(Protocol):
    id: str
    name: str

    async def score(self, x: ScoreInput) -> ScoreOutput: ...


def as_score(value: Any) -> ScoreOutput:
    """A scorer function's answer as a ScoreOutput: float, bool, ScoreOutput or {score, reason}."""
    reason = None
    if isinstance(value, ScoreOutput):
        value, reason = value.score, value.reason
    elif isinstance(value, dict):
        value, reason = value.get("score"), value.get("reason")
    if isinstance(value, bool):
        return ScoreOutput(1.0 if value else 0.0, reason)
    if value is None:
        return ScoreOutput(None, reason)
    if not isinstance(value, int | float) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"a score must be a number from 0 to 1, got {value!r}")
    return ScoreOutput(float(value), reason)


# -- paths and values -----------------------------------------------------------------------------

_MISSING = object()


def at_path(value: Any, path: str | None) -> Any:
    if not path:
        return value
    if isinstance(value, str):
        value = _maybe_json(value)
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "[", '"') or value in ("true", "false", "null"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class Comparison:
    """The output and expected value at `field`, or why there is nothing to compare."""

    def __init__(self, x: ScoreInput, field: str | None, *, needs_expected: bool = True) -> None:
        self.output = at_path(x.output, field)
        self.expected = at_path(x.expected_output, field) if needs_expected else None
        if needs_expected and (self.expected is _MISSING or self.expected is None):
            where = f" at '{field}'" if field else ""
            raise ValueError(f"the expected output has no value{where} to compare with")
        self.missing_output = self.output is _MISSING
        self.field = field


def _no_output(comparison: Comparison) -> ScoreOutput:
    where = f" at '{comparison.field}'" if comparison.field else ""
    return ScoreOutput(0.0, f"the output has no value{where}")


# -- built-ins ------------------------------------------------------------------------------------


class BuiltinScorer:
    name = ""
    description = ""
    options_help: dict[str, str] = {}

    def __init__(self, scorer_id: str, options: dict[str, Any]) -> None:
        self.id = scorer_id
        unknown = set(options) - set(self.options_help)
        if unknown:
            raise InvalidRequestError(f"scorer {self.name!r} has no option(s) {sorted(unknown)}; "
                                      f"options: {sorted(self.options_help)}")
        self.options = options
        self.field = options.get("field")

    async def score(self, x: ScoreInput) -> ScoreOutput:
        return self.judge(x)

    def judge(self, x: ScoreInput) -> ScoreOutput:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def _fold(value: Any, *, case_sensitive: bool, trim: bool) -> Any:
    if isinstance(value, str):
        if trim:
            value = value.strip()
        if not case_sensitive:
            value = value.casefold()
    return value


class ExactMatch(BuiltinScorer):
    name = "exact-match"
    description = "1 if the output equals the expected output (at `field`)."
    options_help = {"field": "dot path applied to both sides", "caseSensitive": "default true",
                    "trim": "strip surrounding whitespace, default true"}

    def judge(self, x: ScoreInput) -> ScoreOutput:
        c = Comparison(x, self.field)
        if c.missing_output:
            return _no_output(c)
        case, trim = self.options.get("caseSensitive", True), self.options.get("trim", True)
        equal = _fold(c.output, case_sensitive=case, trim=trim) == _fold(c.expected, case_sensitive=case, trim=trim)
        return ScoreOutput(1.0 if equal else 0.0, None if equal else f"expected {_text(c.expected)[:200]}")


class Contains(BuiltinScorer):
    name = "contains"
    description = "1 if the output contains `value` (default: the expected output)."
    options_help = {"field": "dot path", "value": "text to look for (default: the expected output)",
                    "caseSensitive": "default false"}

    def judge(self, x: ScoreInput) -> ScoreOutput:
        given = self.options.get("value")
        c = Comparison(x, self.field, needs_expected=given is None)
        if c.missing_output:
            return _no_output(c)
        needle, hay = _text(given if given is not None else c.expected), _text(c.output)
        if not self.options.get("caseSensitive", False):
            needle, hay = needle.casefold(), hay.casefold()
        return ScoreOutput(1.0 if needle in hay else 0.0)


class Regex(BuiltinScorer):
    name = "regex"
    description = "1 if the output matches `pattern` (re.search)."
    options_help = {"pattern": "required", "field": "dot path", "flags": "any of i, m, s"}

    def __init__(self, scorer_id: str, options: dict[str, Any]) -> None:
        super().__init__(scorer_id, options)
        flags = 0
        for letter in options.get("flags", ""):
            flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}.get(letter, 0)
        try:
            self.pattern = re.compile(options["pattern"], flags)
        except KeyError:
            raise InvalidRequestError("scorer 'regex' needs the option 'pattern'") from None
        except re.error as error:
            raise InvalidRequestError(f"scorer 'regex': bad pattern: {error}") from None

    def judge(self, x: ScoreInput) -> ScoreOutput:
        c = Comparison(x, self.field, needs_expected=False)
        if c.missing_output:
            return _no_output(c)
        return ScoreOutput(1.0 if self.pattern.search(_text(c.output)) else 0.0)


class JsonEquals(BuiltinScorer):
    name = "json-equals"
    description = "1 if the output and the expected output are equal JSON values (strings holding JSON are parsed)."
    options_help = {"field": "dot path"}

    def judge(self, x: ScoreInput) -> ScoreOutput:
        c = Comparison(x, self.field)
        if c.missing_output:
            return _no_output(c)
        equal = _maybe_json(c.output) == _maybe_json(c.expected)
        return ScoreOutput(1.0 if equal else 0.0)


def _subset_leaves(expected: Any, output: Any, path: str, misses: list[str]) -> tuple[int, int]:
    """(matched, total) leaf values of `expected` found in `output`; lists element-wise in order."""
    if isinstance(expected, dict):
        matched = total = 0
        for key, value in expected.items():
            sub = output.get(key, _MISSING) if isinstance(output, dict) else _MISSING
            m, t = _subset_leaves(value, sub, f"{path}.{key}" if path else key, misses)
            matched, total = matched + m, total + t
        return matched, total
    if isinstance(expected, list):
        matched = total = 0
        for index, value in enumerate(expected):
            sub = output[index] if isinstance(output, list) and index < len(output) else _MISSING
            m, t = _subset_leaves(value, sub, f"{path}.{index}" if path else str(index), misses)
            matched, total = matched + m, total + t
        return matched, total
    if output is not _MISSING and output == expected:
        return 1, 1
    misses.append(path or "(value)")
    return 0, 1


class JsonSubset(BuiltinScorer):
    name = "json-subset"
    description = "Fraction of the expected output's leaf values found at the same paths in the output."
    options_help = {"field": "dot path"}

    def judge(self, x: ScoreInput) -> ScoreOutput:
        c = Comparison(x, self.field)
        if c.missing_output:
            return _no_output(c)
        misses: list[str] = []
        matched, total = _subset_leaves(_maybe_json(c.expected), _maybe_json(c.output), "", misses)
        score = matched / total if total else 1.0
        return ScoreOutput(score, f"missing or different: {', '.join(misses[:5])}" if misses else None)


class JsonSchemaValid(BuiltinScorer):
    name = "json-schema"
    description = "1 if the output validates against `schema` (JSON Schema 2020-12)."
    options_help = {"schema": "required JSON Schema", "field": "dot path into the output"}

    def __init__(self, scorer_id: str, options: dict[str, Any]) -> None:
        super().__init__(scorer_id, options)
        schema = options.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequestError("scorer 'json-schema' needs the option 'schema' (a JSON Schema object)")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise InvalidRequestError(f"scorer 'json-schema': invalid schema: {error.message}") from None
        self.validator = Draft202012Validator(schema)

    def judge(self, x: ScoreInput) -> ScoreOutput:
        c = Comparison(x, self.field, needs_expected=False)
        if c.missing_output:
            return _no_output(c)
        errors = [e.message for e in self.validator.iter_errors(_maybe_json(c.output))]
        return ScoreOutput(0.0 if errors else 1.0, "; ".join(errors[:3]) or None)


class Similarity(BuiltinScorer):
    name = "similarity"
    description = "String similarity (rapidfuzz) between output and expected output, 0..1."
    options_help = {"field": "dot path", "method": "ratio | partial-ratio | token-sort-ratio | token-set-ratio",
                    "threshold": "if given, score 1 at or above it, else 0"}
    METHODS = {"ratio": fuzz.ratio, "partial-ratio": fuzz.partial_ratio,
               "token-sort-ratio": fuzz.token_sort_ratio, "token-set-ratio": fuzz.token_set_ratio}

    def __init__(self, scorer_id: str, options: dict[str, Any]) -> None:
        super().__init__(scorer_id, options)
        method = options.get("method", "ratio")
        if method not in self.METHODS:
            raise InvalidRequestError(f"scorer 'similarity': method must be one of {sorted(self.METHODS)}")
        self.compare = self.METHODS[method]
        self.threshold = options.get("threshold")

    def judge(self, x: ScoreInput) -> ScoreOutput:
        c = Comparison(x, self.field)
        if c.missing_output:
            return _no_output(c)
        similarity = self.compare(_text(c.output), _text(c.expected)) / 100
        if self.threshold is not None:
            return ScoreOutput(1.0 if similarity >= self.threshold else 0.0, f"similarity {similarity:.3f}")
        return ScoreOutput(similarity)


def _number(value: Any, side: str) -> float:
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"the {side} is not a number: {_text(value)[:100]}") from None


class NumericCloseness(BuiltinScorer):
    name = "numeric-closeness"
    description = "How close a numeric output is to the expected number."
    options_help = {"field": "dot path", "tolerance": "absolute, default 0", "relativeTolerance": "default 0",
                    "mode": "binary (default) or smooth", "scale": "for smooth: the distance that scores 0"}

    def __init__(self, scorer_id: str, options: dict[str, Any]) -> None:
        super().__init__(scorer_id, options)
        self.mode = options.get("mode", "binary")
        if self.mode not in ("binary", "smooth"):
            raise InvalidRequestError("scorer 'numeric-closeness': mode must be 'binary' or 'smooth'")
        if self.mode == "smooth" and not options.get("scale"):
            raise InvalidRequestError("scorer 'numeric-closeness': mode 'smooth' needs a positive 'scale'")

    def judge(self, x: ScoreInput) -> ScoreOutput:
        c = Comparison(x, self.field)
        if c.missing_output:
            return _no_output(c)
        expected = _number(c.expected, "expected output")
        try:
            output = _number(c.output, "output")
        except ValueError as error:
            return ScoreOutput(0.0, str(error))
        distance = abs(output - expected)
        if self.mode == "smooth":
            return ScoreOutput(max(0.0, 1.0 - distance / float(self.options["scale"])), f"off by {distance:g}")
        allowed = max(float(self.options.get("tolerance", 0.0)),
                      float(self.options.get("relativeTolerance", 0.0)) * abs(expected))
        return ScoreOutput(1.0 if distance <= allowed else 0.0, f"off by {distance:g}")


JUDGE_SYSTEM = (
    "You are an evaluator. Judge the OUTPUT against the RUBRIC, using the INPUT and the EXPECTED "
    "OUTPUT as reference. Answer with only a JSON object: {\"score\": <number from 0 to 1>, "
    "\"reason\": \"<one or two sentences>\"}.\n\nRUBRIC:\n"
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class LlmJudge(BuiltinScorer):
    name = "llm-judge"
    description = "An LLM (OpenAI-compatible chat completions) scores the output against a rubric."
    options_help = {"baseUrl": "required", "model": "required", "rubric": "required", "apiKeyEnv":
                    "environment variable holding the API key", "temperature": "default 0"}

    def __init__(self, scorer_id: str, options: dict[str, Any], allowlist: Sequence[str]) -> None:
        super().__init__(scorer_id, options)
        for key in ("baseUrl", "model", "rubric"):
            if not options.get(key):
                raise InvalidRequestError(f"scorer 'llm-judge' needs the option '{key}'")
        self.base_url = str(options["baseUrl"]).rstrip("/")
        check_allowed(self.base_url, allowlist, "llm-judge")
        self._client: httpx.AsyncClient | None = None

    async def score(self, x: ScoreInput) -> ScoreOutput:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(None))
        headers = {"Content-Type": "application/json"}
        key_env = self.options.get("apiKeyEnv")
        if key_env and os.environ.get(key_env):
            headers["Authorization"] = f"Bearer {os.environ[key_env]}"
        user = orjson.dumps({"input": x.input, "expectedOutput": x.expected_output, "output": x.output,
                             "targetError": x.error}).decode()
        body = {"model": self.options["model"], "temperature": self.options.get("temperature", 0),
                "messages": [{"role": "system", "content": JUDGE_SYSTEM + self.options["rubric"]},
                             {"role": "user", "content": user}]}
        response = await self._client.post(f"{self.base_url}/chat/completions", content=orjson.dumps(body),
                                           headers=headers)
        if response.status_code >= 400:
            raise RuntimeError(f"judge answered HTTP {response.status_code}: {response.text[:200]}")
        content = response.json()["choices"][0]["message"]["content"]
        found = _JSON_OBJECT.search(content or "")
        if found is None:
            raise ValueError(f"the judge did not answer a JSON object: {str(content)[:200]}")
        try:
            verdict = orjson.loads(found.group(0))
        except orjson.JSONDecodeError:
            raise ValueError(f"the judge's answer is not valid JSON: {found.group(0)[:200]}") from None
        if not isinstance(verdict, dict) or "score" not in verdict:
            raise ValueError(f"the judge's answer has no score: {found.group(0)[:200]}")
        return as_score({"score": verdict["score"], "reason": verdict.get("reason")})

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


BUILTINS: dict[str, type[BuiltinScorer]] = {
    cls.name: cls
    for cls in (ExactMatch, Contains, Regex, JsonEquals, JsonSubset, JsonSchemaValid, Similarity,
                NumericCloseness, LlmJudge)
}


class RegisteredScorer:
    def __init__(self, scorer_id: str, entry: Registered) -> None:
        self.id = scorer_id
        self.name = entry.name
        self.entry = entry

    async def score(self, x: ScoreInput) -> ScoreOutput:
        call: Callable[..., Any] = self.entry.func
        if self.entry.is_async:
            answer = await call(x.input, x.output, x.expected_output, x.metadata)
        else:
            answer = await asyncio.to_thread(call, x.input, x.output, x.expected_output, x.metadata)
        return as_score(answer)


def build_scorer(spec: str | dict[str, Any], registry: Registry | None, *,
                 http_allowlist: Sequence[str] = ()) -> Scorer:
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InvalidRequestError("a scorer is a name or an object with a 'name'")
    name = spec["name"]
    scorer_id = str(spec.get("id") or name)
    options = spec.get("options") or {}
    if not isinstance(options, dict):
        raise InvalidRequestError(f"scorer {name!r}: options must be an object")
    if name in BUILTINS:
        if name == "llm-judge":
            return LlmJudge(scorer_id, options, http_allowlist)
        return BUILTINS[name](scorer_id, options)
    if registry is not None and name in registry.scorers:
        return RegisteredScorer(scorer_id, registry.scorers[name])
    known = sorted(BUILTINS) + sorted(registry.scorers if registry else [])
    raise InvalidRequestError(f"unknown scorer {name!r}; available: {', '.join(known)}")


def describe_builtin_scorers() -> list[dict[str, Any]]:
    return [{"name": cls.name, "description": cls.description, "options": cls.options_help}
            for cls in BUILTINS.values()]

