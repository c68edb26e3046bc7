"""Scorers: how a run judges each output. A score is a number from 0 to 1.

A scorer is built once per run from its spec — a name (`"exact-match"`) or
`{"name": "exact-match", "id": "answer-exact", "options": {"field": "answer"}}` — so
options are checked, regexes compiled and JSON Schemas prepared once, not per item; a
bad spec is refused at build time with an `InvalidRequestError` (a 422) that names the
scorer and the option. The `id` (default: the name) keys the scores in results, so one
scorer can be used twice with different options. `timeoutMs` (default: the run's item
timeout) bounds each of its calls; the runner records a scorer that overruns it as
`score: null` with a timed-out error.

At score time a scorer answers a `ScoreOutput`, or raises when the item cannot be scored
(the expected output lacks what the scorer compares with, the LLM judge is unreachable,
a user scorer returned 1.5); the runner records `score: null` with the error text.

Rules shared by the built-ins:

- `field` (a dot path like `answer` or `a.b.0`) is applied to both the output and the
  expected output before comparing. A string holding a JSON object or array (optionally
  in a ```json fence, as LLMs write it) is parsed on the way down. An output without the
  path scores 0 with a reason; an expected output without it (or null) raises.
- When the target failed (`ScoreInput.error` is set) there is no output to judge: every
  built-in scores 0 with the target's error as the reason, without calling anything.
- Built-ins that do no I/O are plain computations: no per-call set-up, and no thread hop
  unless a value is large (`_large`); then they run in an off-loop thread, so the run's
  event loop goes on and the scorer's timeout applies. Their cost is bounded: regular
  expressions are RE2 (linear time), similarity compares bounded texts.

User scorers come from the registry (`registry.scorers[name]`): functions of
`(input, output, expected_output, metadata)`, sync (run in an off-loop thread) or async,
answering a float, a bool, a `ScoreOutput` or `{"score": ..., "reason": ...}`.

Every scorer has `async def aclose()`; only the LLM judge holds a resource (its HTTP
client), the others' is a no-op, so the runner can close them all alike.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx
import orjson
import re2
from jsonschema import Draft202012Validator
from referencing import Registry as ReferenceRegistry
from jsonschema.exceptions import SchemaError
from rapidfuzz import fuzz, process

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.registry import OFF_LOOP
from evalledger.execution.targets import (
    TransientError,
    check_allowed,
    check_secret_name,
    openai_usage,
    redirect_refusal,
    secret_value,
)

if TYPE_CHECKING:
    from evalledger.execution.registry import Registered, Registry


# -- the contract ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees of one item's execution. `error` is the target's error when it
    failed; `output` is then None."""

    input: Any
    output: Any
    expected_output: Any
    metadata: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class ScoreOutput:
    """A score from 0 to 1 (None: no score) and, optionally, why, and what scoring used
    (tokens, cost, model: an LLM judge's endpoint's report, see targets.read_usage)."""

    score: float | None
    reason: str | None = None
    usage: dict[str, Any] | None = field(default=None, compare=False)  # not part of the verdict


class Scorer(Protocol):
    """A built scorer. `id` keys its scores in results; `name` says which scorer it is.
    Every scorer built here also has `async def aclose()`."""

    id: str
    name: str
    timeout_ms: int | None  # None: the run's item timeout

    async def score(self, x: ScoreInput) -> ScoreOutput: ...


def to_score_output(answer: Any, who: str) -> ScoreOutput:
    """A scorer's answer as a ScoreOutput: a number from 0 to 1, a bool (1.0 / 0.0), a
    ScoreOutput, or a dict with "score" and optionally "reason". A ScoreOutput or dict may
    say `score: None` (no score); a bare None is refused, as it is usually a forgotten
    `return`. Anything else raises ValueError."""
    if isinstance(answer, ScoreOutput):
        value, reason = answer.score, answer.reason
    elif isinstance(answer, dict):
        if "score" not in answer:
            raise ValueError(f"{who} returned a dict without 'score': {_show(answer)}")
        value, reason = answer["score"], answer.get("reason")
    elif answer is None:
        raise ValueError(f"{who} returned None; return a number from 0 to 1, a bool, a ScoreOutput "
                         f"or {{'score': ..., 'reason': ...}}")
    else:
        value, reason = answer, None
    reason = None if reason is None else str(reason)
    if value is None:
        return ScoreOutput(None, reason)
    return ScoreOutput(_unit_interval(value, who), reason)


def _unit_interval(value: Any, who: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, Real) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{who} returned {_show(value)}; a score must be a number from 0 to 1")
    return float(value)


# -- options --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One option of a built-in scorer: checked at build time and listed by `GET /api/scorers`."""

    name: str
    type: str  # "string", "boolean", "number" or "object"
    default: Any
    meaning: str
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False

    def describe(self) -> dict[str, Any]:
        described = {"name": self.name, "type": self.type, "default": self.default, "meaning": self.meaning,
                     "required": self.required}
        if self.choices:
            described["choices"] = list(self.choices)
        return described

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this option, or None."""
        if self.type == "string" and not (isinstance(value, str) and value):
            return "must be a non-empty string"
        if self.type == "boolean" and not isinstance(value, bool):
            return "must be true or false"
        if self.type == "object" and not isinstance(value, dict):
            return "must be a JSON object"
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                return "must be a number"
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum:g}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {self.maximum:g}"
            if self.positive and value <= 0:
                return "must be greater than 0"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(repr(c) for c in self.choices)}"
        return None


FIELD = Option("field", "string", None, "dot path (e.g. 'answer' or 'a.b.0') applied to the output and "
               "the expected output before comparing")


def read_options(scorer: str, declared: Sequence[Option], given: dict[str, Any]) -> dict[str, Any]:
    """The options of `scorer` with defaults filled in; InvalidRequestError naming the scorer and
    the option for unknown, missing or ill-typed options."""
    known = {option.name: option for option in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InvalidRequestError(f"scorer {scorer!r} has no option {', '.join(repr(u) for u in unknown)}; "
                                  f"its options are: {', '.join(known) or 'none'}")
    values: dict[str, Any] = {}
    for option in declared:
        value = given.get(option.name)
        if value is None:
            if option.required:
                raise InvalidRequestError(f"scorer {scorer!r} needs the option {option.name!r} ({option.meaning})")
            values[option.name] = option.default
            continue
        problem = option.problem(value)
        if problem:
            raise InvalidRequestError(f"scorer {scorer!r}: option {option.name!r} {problem}, not {_show(value)}")
        values[option.name] = value
    return values


def parse_path(scorer: str, path: str | None) -> tuple[str, ...]:
    """A dot path split once at build time: 'a.b.0' -> ('a', 'b', '0')."""
    if path is None:
        return ()
    parts = tuple(path.split("."))
    if not all(parts):
        raise InvalidRequestError(f"scorer {scorer!r}: option 'field' is not a dot path like 'a.b.0': {path!r}")
    return parts


# -- values ---------------------------------------------------------------------------------------

MISSING: Any = object()
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def parse_json_text(value: Any) -> Any:
    """A string holding a JSON object or array (optionally in a ``` fence) parsed; any other
    value as it is. Scalars in strings stay strings: "42" is text, not a number."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("```"):
        fenced = _FENCE.match(text)
        text = fenced.group(1).strip() if fenced else text
    if text[:1] not in ("{", "["):
        return value
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return value


def pick(value: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` (dict keys, list indexes), or MISSING."""
    for part in path:
        value = parse_json_text(value)
        if isinstance(value, dict):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: unlike Python's ==, true is not 1 and 1.0 is 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(json_equal, a, b))
    if isinstance(a, Real) and isinstance(b, Real):
        return a == b
    return type(a) is type(b) and a == b


def first_difference(expected: Any, output: Any, path: str = "") -> str | None:
    """The dot path of the first place where `output` differs from `expected`, or None."""
    if isinstance(expected, dict) and isinstance(output, dict):
        for key in [*expected, *(k for k in output if k not in expected)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in expected or key not in output:
                return where
            found = first_difference(expected[key], output[key], where)
            if found is not None:
                return found
        return None
    if isinstance(expected, list) and isinstance(output, list) and len(expected) == len(output):
        for index, (e, o) in enumerate(zip(expected, output)):
            found = first_difference(e, o, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
        return None
    return None if json_equal(expected, output) else (path or "(the whole value)")


def as_text(value: Any) -> str:
    """A value as text for string scorers: strings as they are, anything else as its JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


# Values larger than this (characters of text, roughly) are judged off the event loop.
LARGE_VALUE = 64 * 1024


def _large(value: Any) -> bool:
    """Whether a JSON value holds more than LARGE_VALUE characters, roughly; stops counting
    there, so a small value costs a short walk."""
    budget = LARGE_VALUE
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            budget -= len(current)
        elif isinstance(current, dict):
            budget -= len(current)
            pending.extend(current.values())
            budget -= sum(len(key) for key in current if isinstance(key, str))
        elif isinstance(current, list | tuple):
            budget -= len(current)
            pending.extend(current)
        else:
            budget -= 8
        if budget < 0:
            return True
    return False


def _show(value: Any, limit: int = 80) -> str:
    """A value shortened for a reason or an error message."""
    text = repr(value) if isinstance(value, str) else as_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the built-ins --------------------------------------------------------------------------------


class BuiltinScorer:
    """A built-in: options read at build time; `score` finds the values to compare (see the
    module docstring) and hands them to `judge`, a plain function of the subclass."""

    name: ClassVar[str]
    description: ClassVar[str]
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    needs_expected: bool = True
    timeout_ms: int | None = None

    def __init__(self, scorer_id: str, options: dict[str, Any], http_allowlist: Sequence[str] = ()) -> None:
        self.id = scorer_id
        self.options = read_options(self.name, self.OPTIONS, options)
        self.field: str | None = self.options.get("field")
        self.path = parse_path(self.name, self.field)

    async def score(self, x: ScoreInput) -> ScoreOutput:
        expected = self.expected_value(x) if self.needs_expected else None
        if x.error is not None:
            return ScoreOutput(0.0, f"no output to score: the target failed ({x.error[:200]})")
        output = pick(x.output, self.path) if self.path else x.output
        if output is MISSING:
            return ScoreOutput(0.0, f"the output has no value at '{self.field}'")
        if _large(output) or _large(expected):
            return await OFF_LOOP.run(self.judge, output, expected)
        return self.judge(output, expected)

    def expected_value(self, x: ScoreInput) -> Any:
        """The expected value at `field`; ValueError when there is none (the item is unscorable)."""
        expected = pick(x.expected_output, self.path) if self.path else x.expected_output
        if expected is MISSING or expected is None:
            where = f" at '{self.field}'" if self.field else ""
            raise ValueError(f"{self.name}: the item's expected output has no value{where} to compare with")
        return expected

    def judge(self, output: Any, expected: Any) -> ScoreOutput:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Nothing to release."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "description": cls.description, "options": [o.describe() for o in cls.OPTIONS]}


_YES, _NO = ScoreOutput(1.0), ScoreOutput(0.0)


def _text_folder(*, case_sensitive: bool, trim: bool) -> Callable[[str], str]:
    if trim and not case_sensitive:
        return lambda s: s.strip().casefold()
    if trim:
        return str.strip
    if not case_sensitive:
        return str.casefold
    return lambda s: s


class ExactMatch(BuiltinScorer):
    """1 when the output equals the expected output. Two strings are compared after the
    `trim` and `caseSensitive` options; anything else is compared as JSON values (a string
    output is not parsed here: use json-equals for JSON held in a string)."""

    name = "exact-match"
    description = "1 if the output equals the expected output (strings after trim/case options; else as JSON)."
    OPTIONS = (
        FIELD,
        Option("caseSensitive", "boolean", True, "compare strings case-sensitively"),
        Option("trim", "boolean", True, "ignore whitespace around strings"),
    )

    def __init__(self, scorer_id: str, options: dict[str, Any], http_allowlist: Sequence[str] = ()) -> None:
        super().__init__(scorer_id, options)
        self.fold = _text_folder(case_sensitive=self.options["caseSensitive"], trim=self.options["trim"])

    def judge(self, output: Any, expected: Any) -> ScoreOutput:
        if isinstance(output, str) and isinstance(expected, str):
            equal = self.fold(output) == self.fold(expected)
        else:
            equal = json_equal(output, expected)
        return _YES if equal else ScoreOutput(0.0, f"expected {_show(expected)}, got {_show(output)}")


class Contains(BuiltinScorer):
    """1 when the output, as text, contains `value` — or, without `value`, the expected
    output as text. Case-insensitive unless `caseSensitive`."""

    name = "contains"
    description = "1 if the output (as text) contains `value`, or else the expected output (as text)."
    OPTIONS = (
        FIELD,
        Option("value", "string", None, "the text to look for; default: the expected output"),
        Option("caseSensitive", "boolean", False, "compare case-sensitively"),
    )

    def __init__(self, scorer_id: str, options: dict[str, Any], http_allowlist: Sequence[str] = ()) -> None:
        super().__init__(scorer_id, options)
        self.fold = _text_folder(case_sensitive=self.options["caseSensitive"], trim=False)
        value = self.options["value"]
        self.needle = None if value is None else self.fold(value)
        self.needs_expected = value is None

    def judge(self, output: Any, expected: Any) -> ScoreOutput:
        needle = self.needle if self.needle is not None else self.fold(as_text(expected))
        if needle in self.fold(as_text(output)):
            return _YES
        return ScoreOutput(0.0, f"{_show(needle)} not found in the output")


def compile_re2(pattern: str, flags: str, who: str) -> Any:
    """A user's pattern compiled with RE2, which matches in time linear in the text (no
    backtracking), so no pattern can stall a run; `flags` is any of "ims". 422 for a
    pattern RE2 does not take (backreferences, look-around, \\Z: use \\z)."""
    options = re2.Options()
    options.log_errors = False  # refused patterns are answered to the caller, not logged
    prefix = f"(?{''.join(sorted(set(flags)))})" if flags else ""
    try:
        return re2.compile(prefix + pattern, options)
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if error.args and isinstance(error.args[0], bytes) \
            else str(error)
        raise InvalidRequestError(f"{who} is not a valid regular expression in RE2 syntax: {reason} (RE2 matches "
                                  f"in linear time, so it has no backreferences or look-around; write \\z for "
                                  f"the end of the text)") from None


class Regex(BuiltinScorer):
    """1 when `pattern` matches somewhere in the output as text (a search, like re.search).
    Compiled once, with RE2: matching takes time linear in the text, whatever the pattern."""

    name = "regex"
    description = "1 if the output (as text) matches the regular expression `pattern` (RE2 syntax, searched)."
    OPTIONS = (
        Option("pattern", "string", None, "regular expression in RE2 syntax (Python's, without backreferences "
               "and look-around)", required=True),
        FIELD,
        Option("flags", "string", "", "any of i (ignore case), m (multiline), s (dot matches newline)"),
    )
    needs_expected = False

    def __init__(self, scorer_id: str, options: dict[str, Any], http_allowlist: Sequence[str] = ()) -> None:
        super().__init__(scorer_id, options)
        for letter in self.options["flags"]:
            if letter not in "ims":
                raise InvalidRequestError(f"scorer 'regex': option 'flags' takes i, m and s, not {letter!r}")
        self.pattern = compile_re2(self.options["pattern"], self.options["flags"], "scorer 'regex': option 'pattern'")

    def judge(self, output: Any, expected: Any) -> ScoreOutput:
        if self.pattern.search(as_text(output)):
            return _YES
        return ScoreOutput(0.0, f"no match for /{self.options['pattern']}/")


class JsonEquals(BuiltinScorer):
    """1 when output and expected output are equal JSON values (true is not 1; key order
    does not matter). A string output holding JSON is parsed when the string itself is not
    already equal to the expected output."""

    name = "json-equals"
    description = "1 if the output and the expected output are equal JSON values (JSON in a string is parsed)."
    OPTIONS = (FIELD,)

    def judge(self, output: Any, expected: Any) -> ScoreOutput:
        if json_equal(output, expected):
            return _YES
        parsed = _parse_any_json(output)
        if parsed is not MISSING and json_equal(parsed, expected):
            return _YES
        seen = parsed if parsed is not MISSING else output
        where = first_difference(expected, seen)
        if where is None or where == "(the whole value)":
            return ScoreOutput(0.0, f"expected {_show(expected)}, got {_show(seen)}")
        return ScoreOutput(0.0, f"differs at {where}")


def _parse_any_json(value: Any) -> Any:
    """A string holding any JSON value (fenced or not) parsed, else MISSING."""
    if not isinstance(value, str):
        return MISSING
    parsed = parse_json_text(value)
    if parsed is not value:
        return parsed
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return MISSING


def subset_score(expected: Any, output: Any, path: str, misses: list[str]) -> tuple[int, int]:
    """(matched, total) leaf values of `expected` found at the same path in `output`.
    Objects may have extra keys; lists are matched element by element, in order, and may
    be longer. An empty object or list in `expected` is one leaf: it matches a value of
    the same kind."""
    if isinstance(expected, dict) and expected:
        matched = total = 0
        for key, value in expected.items():
            inner = output.get(key, MISSING) if isinstance(output, dict) else MISSING
            m, t = subset_score(value, inner, f"{path}.{key}" if path else str(key), misses)
            matched, total = matched + m, total + t
        return matched, total
    if isinstance(expected, list) and expected:
        matched = total = 0
        for index, value in enumerate(expected):
            inner = output[index] if isinstance(output, list) and index < len(output) else MISSING
            m, t = subset_score(value, inner, f"{path}.{index}" if path else str(index), misses)
            matched, total = matched + m, total + t
        return matched, total
    if isinstance(expected, dict | list):
        same = type(output) is type(expected)
    else:
        same = output is not MISSING and json_equal(output, expected)
    if not same:
        misses.append(path or "(the whole value)")
    return int(same), 1


class JsonSubset(BuiltinScorer):
    """The fraction of the expected output's leaf values present at the same paths in the
    output: extra keys in the output are fine; lists are matched element by element in
    order (extra trailing elements are fine). The reason names the first mismatched paths."""

    name = "json-subset"
    description = ("Fraction of the expected output's leaf values found at the same paths in the output "
                   "(extra keys allowed; lists element-wise in order).")
    OPTIONS = (FIELD,)

    def judge(self, output: Any, expected: Any) -> ScoreOutput:
        misses: list[str] = []
        matched, total = subset_score(expected, parse_json_text(output), "", misses)
        if not misses:
            return _YES
        more = f" and {len(misses) - 5} more" if len(misses) > 5 else ""
        return ScoreOutput(matched / total, f"missing or different: {', '.join(misses[:5])}{more}")


class JsonSchemaValid(BuiltinScorer):
    """1 when the output validates against `schema` (JSON Schema draft 2020-12), checked
    and prepared at build time. A string output holding a JSON object or array is parsed."""

    name = "json-schema"
    description = "1 if the output validates against the JSON Schema `schema` (draft 2020-12)."
    OPTIONS = (
        Option("schema", "object", None, "a JSON Schema (draft 2020-12)", required=True),
        Option("field", "string", None, "dot path into the output to validate instead of the whole output"),
    )
    needs_expected = False

    def __init__(self, scorer_id: str, options: dict[str, Any], http_allowlist: Sequence[str] = ()) -> None:
        super().__init__(scorer_id, options)
        try:
            Draft202012Validator.check_schema(self.options["schema"])
        except SchemaError as error:
            where = "/".join(str(p) for p in error.path) or "(root)"
            raise InvalidRequestError(f"scorer 'json-schema': option 'schema' is not a valid JSON Schema at "
                                      f"{where}: {error.message}") from None
        # An empty registry: a remote $ref is never fetched (it fails to resolve instead).
        self.validator = Draft202012Validator(self.options["schema"], registry=ReferenceRegistry())

    def judge(self, output: Any, expected: Any) -> ScoreOutput:
        value = parse_json_text(output)
        if self.validator.is_valid(value):
            return _YES
        errors = sorted(self.validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
        shown = "; ".join(f"{e.json_path}: {e.message[:120]}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return ScoreOutput(0.0, shown + more)


class Similarity(BuiltinScorer):
    """String similarity of output and expected output (as text) with rapidfuzz, / 100.
    With `threshold`, the score is 1 at or above it and 0 below, and the reason says the
    similarity."""

    name = "similarity"
    description = "rapidfuzz string similarity of the output and the expected output, from 0 to 1."
    METHODS: ClassVar[dict[str, Callable[..., float]]] = {
        "ratio": fuzz.ratio,
        "partial-ratio": fuzz.partial_ratio,
        "token-sort-ratio": fuzz.token_sort_ratio,
        "token-set-ratio": fuzz.token_set_ratio,
    }
    OPTIONS = (
        FIELD,
        Option("method", "string", "ratio", "the rapidfuzz measure", choices=tuple(METHODS)),
        Option("threshold", "number", None, "if given, score 1 when the similarity is at least this, else 0",
               minimum=0.0, maximum=1.0),
    )

    # rapidfuzz's cost grows with the product of the lengths (for partial-ratio, with the
    # square of the shorter text times the longer), and it holds the GIL, stalling every
    # thread of the service: texts beyond these lengths are not compared.
    MAX_TEXT = 20_000
    MAX_PARTIAL_NEEDLE = 500

    def __init__(self, scorer_id: str, options: dict[str, Any], http_allowlist: Sequence[str] = ()) -> None:
        super().__init__(scorer_id, options)
        self.measure = self.METHODS[self.options["method"]]
        self.threshold: float | None = self.options["threshold"]

    def judge(self, output: Any, expected: Any) -> ScoreOutput:
        texts = as_text(output), as_text(expected)
        for what, text in zip(("output", "expected output"), texts):
            if len(text) > self.MAX_TEXT:
                raise ValueError(f"similarity: the {what} is {len(text):,} characters long; similarity compares texts "
                                 f"of at most {self.MAX_TEXT:,} (pick a part with 'field')")
        if self.options["method"] == "partial-ratio" and min(map(len, texts)) > self.MAX_PARTIAL_NEEDLE:
            raise ValueError(f"similarity: partial-ratio looks for the shorter text in the longer one; the shorter "
                             f"may have at most {self.MAX_PARTIAL_NEEDLE} characters, not {min(map(len, texts)):,}")
        similarity = self.measure(*texts) / 100.0
        if self.threshold is None:
            return ScoreOutput(similarity)
        passed = similarity >= self.threshold
        return ScoreOutput(1.0 if passed else 0.0, f"similarity {similarity:.3f} (threshold {self.threshold:g})")


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")


def read_number(value: Any) -> tuple[float | None, str]:
    """(number, how it was read) from a number or a string. A string that is a number is
    parsed; otherwise the last number in the text is taken (as in worked answers ending
    in "... so the answer is 42"). (None, why) when there is none."""
    if isinstance(value, bool) or value is None:
        return None, f"{_show(value)} is not a number"
    if isinstance(value, Real):
        number = float(value)
        return (number, "") if math.isfinite(number) else (None, f"{_show(value)} is not a finite number")
    if not isinstance(value, str):
        return None, f"{_show(value)} is not a number"
    try:
        number = float(value.strip().replace(",", ""))
    except ValueError:
        found = [m.group(0) for m in _NUMBER.finditer(value) if any(c.isdigit() for c in m.group(0))]
        if not found:
            return None, f"no number in {_show(value)}"
        number = float(found[-1].replace(",", ""))
        return number, f"read {found[-1]} from the text"
    return (number, "") if math.isfinite(number) else (None, f"{_show(value)} is not a finite number")


class NumericCloseness(BuiltinScorer):
    """How close a number in the output is to the expected number. Allowed distance:
    max(tolerance, relativeTolerance × |expected|). Mode "binary": 1 within it, else 0.
    Mode "smooth": 1 within it, then falling linearly to 0 at `scale` beyond it.
    An output without a number scores 0; an expected output that is not a number raises."""

    name = "numeric-closeness"
    description = "How close a numeric output is to the expected number (binary within tolerance, or smooth)."
    OPTIONS = (
        FIELD,
        Option("tolerance", "number", 0.0, "allowed absolute difference", minimum=0.0),
        Option("relativeTolerance", "number", 0.0, "allowed difference as a fraction of |expected|", minimum=0.0),
        Option("mode", "string", "binary", "binary: 1 within tolerance else 0; smooth: 1 - distance/scale",
               choices=("binary", "smooth")),
        Option("scale", "number", None, "smooth mode (required there): the distance beyond tolerance that scores 0",
               positive=True),
    )

    def __init__(self, scorer_id: str, options: dict[str, Any], http_allowlist: Sequence[str] = ()) -> None:
        super().__init__(scorer_id, options)
        self.smooth = self.options["mode"] == "smooth"
        if self.smooth and self.options["scale"] is None:
            raise InvalidRequestError("scorer 'numeric-closeness': mode 'smooth' needs the option 'scale' "
                                      "(the distance that scores 0)")
        if not self.smooth and self.options["scale"] is not None:
            raise InvalidRequestError("scorer 'numeric-closeness': option 'scale' applies only to mode 'smooth'")
        self.tolerance = float(self.options["tolerance"])
        self.relative = float(self.options["relativeTolerance"])

    def judge(self, output: Any, expected_value: Any) -> ScoreOutput:
        expected, why = read_number(expected_value)
        if expected is None or why:
            raise ValueError(f"numeric-closeness: the expected output is not a number: {_show(expected_value)}")
        actual, how = read_number(output)
        if actual is None:
            return ScoreOutput(0.0, f"the output has no number: {how}")
        distance = abs(actual - expected)
        beyond = distance - max(self.tolerance, self.relative * abs(expected))
        reason = f"{actual:g} vs expected {expected:g}" + (f"; {how}" if how else "")
        if self.smooth:
            return ScoreOutput(min(1.0, max(0.0, 1.0 - beyond / self.options["scale"])), reason)
        return ScoreOutput(1.0 if beyond <= 0 else 0.0, reason)


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
            raise ValueError(f"llm-judge: the judge's answer holds no JSON object: {_show(content, 200)}")
        if verdict.get("score") is None:
            raise ValueError(f"llm-judge: the judge's answer has no score: {_show(verdict, 200)}")
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
            raise ValueError(f"llm-judge: the judge's message has no text: {_show(content)}")
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


BUILTINS: dict[str, type[BuiltinScorer]] = {
    cls.name: cls
    for cls in (ExactMatch, Contains, Regex, JsonEquals, JsonSubset, JsonSchemaValid, Similarity,
                NumericCloseness, LlmJudge)
}


# -- user scorers ---------------------------------------------------------------------------------


class RegisteredScorer:
    """A user's scorer function from the registry. Sync functions run in an off-loop thread
    so they cannot stall the event loop; the answer goes through `to_score_output`."""

    timeout_ms: int | None = None

    def __init__(self, scorer_id: str, entry: Registered) -> None:
        self.id = scorer_id
        self.name = entry.name
        self.entry = entry

    async def score(self, x: ScoreInput) -> ScoreOutput:
        answer = await self.entry.call(x.input, x.output, x.expected_output, x.metadata)
        return to_score_output(answer, f"scorer {self.name!r}")

    async def aclose(self) -> None:
        """Nothing to release."""


# -- building -------------------------------------------------------------------------------------

_SPEC_KEYS = {"name", "id", "options", "timeoutMs"}
MAX_SCORER_TIMEOUT_MS = 3_600_000


def build_scorer(spec: str | dict[str, Any], registry: Registry | None, *,
                 http_allowlist: Sequence[str] = ()) -> Scorer:
    """The scorer a spec describes: a name, or {"name", "id"?, "options"?, "timeoutMs"?}.
    Built-ins first, then the registry's scorers. InvalidRequestError (422) for an unknown
    name, a malformed spec or bad options; `http_allowlist` holds the base URLs the LLM
    judge may call."""
    name, scorer_id, options, timeout_ms = _read_spec(spec)
    builtin = BUILTINS.get(name)
    built: BuiltinScorer | RegisteredScorer
    if builtin is not None:
        built = builtin(scorer_id, options, http_allowlist)
    else:
        entry = registry.scorers.get(name) if registry is not None else None
        if entry is None:
            raise InvalidRequestError(_unknown_scorer(name, registry))
        if options:
            raise InvalidRequestError(f"scorer {name!r} is a registered function and takes no options, "
                                      f"got {', '.join(repr(k) for k in options)}")
        built = RegisteredScorer(scorer_id, entry)
    built.timeout_ms = timeout_ms
    return built


def _read_spec(spec: Any) -> tuple[str, str, dict[str, Any], int | None]:
    """(name, id, options, timeoutMs) of a spec, checked."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise InvalidRequestError(f"a scorer is a name or an object with 'name', 'id' and 'options', not {_show(spec)}")
    name, scorer_id, options = spec.get("name"), spec.get("id"), spec.get("options")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"a scorer needs a 'name' (e.g. 'exact-match'): {_show(spec)}")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise InvalidRequestError(f"scorer {name!r}: unknown key(s) {', '.join(repr(u) for u in unknown)}; "
                                  f"a scorer has 'name', 'id', 'options' and 'timeoutMs' (put settings in 'options')")
    if scorer_id is None:
        scorer_id = name
    if not isinstance(scorer_id, str) or not scorer_id or len(scorer_id) > 200:
        raise InvalidRequestError(f"scorer {name!r}: 'id' must be a string of 1 to 200 characters")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidRequestError(f"scorer {name!r}: 'options' must be an object, not {_show(options)}")
    timeout_ms = spec.get("timeoutMs")
    if timeout_ms is not None and (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int)
                                   or not 1 <= timeout_ms <= MAX_SCORER_TIMEOUT_MS):
        raise InvalidRequestError(f"scorer {name!r}: 'timeoutMs' must be a whole number of milliseconds from 1 to "
                                  f"{MAX_SCORER_TIMEOUT_MS:,}, not {_show(timeout_ms)}")
    return name, scorer_id, options, timeout_ms


def _unknown_scorer(name: str, registry: Registry | None) -> str:
    available = list(BUILTINS) + sorted(registry.scorers if registry is not None else ())
    guess = process.extractOne(name, available, scorer=fuzz.ratio, score_cutoff=75)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"unknown scorer {name!r}{hint}; available: {', '.join(available)}"


def describe_builtin_scorers() -> list[dict[str, Any]]:
    """Each built-in's name, description and options (name, type, default, meaning,
    required, choices), for `GET /api/scorers`."""
    return [cls.describe() for cls in BUILTINS.values()]
