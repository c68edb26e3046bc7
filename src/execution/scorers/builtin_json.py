"""The built-in scorers that compare JSON structure: equal values, a subset of the
expected output's values, validity against a JSON Schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry as ReferenceRegistry

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.scorers.builtin import YES, BuiltinScorer
from evalledger.execution.scorers.contract import ScoreOutput
from evalledger.execution.scorers.options import FIELD, Option
from evalledger.execution.scorers.values import MISSING, first_difference, json_equal, parse_json_text, show


class JsonEquals(BuiltinScorer):
    """1 when output and expected output are equal JSON values (true is not 1; key order
    does not matter). A string output holding JSON is parsed when the string itself is not
    already equal to the expected output."""

    name = "json-equals"
    description = "1 if the output and the expected output are equal JSON values (JSON in a string is parsed)."
    OPTIONS = (FIELD,)

    def judge(self, output: Any, expected: Any) -> ScoreOutput:
        if json_equal(output, expected):
            return YES
        parsed = _parse_any_json(output)
        if parsed is not MISSING and json_equal(parsed, expected):
            return YES
        seen = parsed if parsed is not MISSING else output
        where = first_difference(expected, seen)
        if where is None or where == "(the whole value)":
            return ScoreOutput(0.0, f"expected {show(expected)}, got {show(seen)}")
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
            return YES
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
            return YES
        errors = sorted(self.validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
        shown = "; ".join(f"{e.json_path}: {e.message[:120]}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return ScoreOutput(0.0, shown + more)
