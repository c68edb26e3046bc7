"""The built-in scorers that do no I/O, and what they share; those that compare JSON
structure are in builtin_json.py, the LLM judge in judge.py. See the package docstring for
the rules they share."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any, ClassVar

import re2
from rapidfuzz import fuzz

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.registry import OFF_LOOP
from evalledger.execution.scorers.contract import ScoreInput, ScoreOutput
from evalledger.execution.scorers.options import FIELD, Option, parse_path, read_options
from evalledger.execution.scorers.values import (
    MISSING,
    as_text,
    is_large,
    json_equal,
    pick,
    show,
)


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
        if is_large(output) or is_large(expected):
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


# The answer of a scorer whose comparison holds entirely.
YES = ScoreOutput(1.0)


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
        return YES if equal else ScoreOutput(0.0, f"expected {show(expected)}, got {show(output)}")


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
            return YES
        return ScoreOutput(0.0, f"{show(needle)} not found in the output")


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
            return YES
        return ScoreOutput(0.0, f"no match for /{self.options['pattern']}/")


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
        return None, f"{show(value)} is not a number"
    if isinstance(value, Real):
        number = float(value)
        return (number, "") if math.isfinite(number) else (None, f"{show(value)} is not a finite number")
    if not isinstance(value, str):
        return None, f"{show(value)} is not a number"
    try:
        number = float(value.strip().replace(",", ""))
    except ValueError:
        found = [m.group(0) for m in _NUMBER.finditer(value) if any(c.isdigit() for c in m.group(0))]
        if not found:
            return None, f"no number in {show(value)}"
        number = float(found[-1].replace(",", ""))
        return number, f"read {found[-1]} from the text"
    return (number, "") if math.isfinite(number) else (None, f"{show(value)} is not a finite number")


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
            raise ValueError(f"numeric-closeness: the expected output is not a number: {show(expected_value)}")
        actual, how = read_number(output)
        if actual is None:
            return ScoreOutput(0.0, f"the output has no number: {how}")
        distance = abs(actual - expected)
        beyond = distance - max(self.tolerance, self.relative * abs(expected))
        reason = f"{actual:g} vs expected {expected:g}" + (f"; {how}" if how else "")
        if self.smooth:
            return ScoreOutput(min(1.0, max(0.0, 1.0 - beyond / self.options["scale"])), reason)
        return ScoreOutput(1.0 if beyond <= 0 else 0.0, reason)

