"""How a result's output differs from the item's expected output: for two strings, a diff
of words (whitespace kept, so lines show too); for other JSON, field by field (the dataset
diff's `field_changes`); and what there is to say when either side is missing."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from evalledger.projections.dataset_queries import FieldChange, field_changes

# Words and the whitespace between them, so a diff of one long line still points at words.
_TOKENS = re.compile(r"\s+|[^\s]+")
# Longer texts are compared line by line, and longer still, whole: matching is quadratic
# at worst, and one request must not hold the service for seconds.
MAX_TOKENS = 4000


@dataclass(slots=True)
class Segment:
    op: str  # equal, del (before only) or add (after only)
    text: str


@dataclass(slots=True)
class OutputDiff:
    """`kind`: text (`segments`), json (`changes`, as in a dataset diff), missingOutput (`missing`
    names the runs without one, when two runs' outputs are compared) or noExpectedOutput."""

    kind: str
    equal: bool
    segments: list[Segment] | None = None
    changes: list[FieldChange] | None = None
    missing: list[str] | None = None


def output_diff(expected: Any, output: Any, *, failed: bool = False) -> OutputDiff:
    """expected -> output."""
    if failed or output is None:
        return OutputDiff("missingOutput", expected is None)
    if expected is None:
        return OutputDiff("noExpectedOutput", False)
    if isinstance(expected, str) and isinstance(output, str):
        return OutputDiff("text", expected == output, segments=text_segments(expected, output))
    return OutputDiff("json", expected == output, changes=field_changes(expected, output, ("output",)))


def runs_output_diff(a: Any, b: Any) -> OutputDiff:
    """Run A's output -> run B's output for the same item (None: no output in that run)."""
    if a is None or b is None:
        return OutputDiff("missingOutput", a is None and b is None,
                          missing=[side for side, value in (("A", a), ("B", b)) if value is None])
    return output_diff(a, b)


def text_segments(before: str, after: str) -> list[Segment]:
    """The two texts as runs of equal, deleted and added text, in reading order."""
    a, b = _TOKENS.findall(before), _TOKENS.findall(after)
    if max(len(a), len(b)) > MAX_TOKENS:
        a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
        if max(len(a), len(b)) > MAX_TOKENS:
            a, b = [before], [after]
    segments: list[Segment] = []

    def add(op: str, tokens: list[str]) -> None:
        if not tokens:
            return
        if segments and segments[-1].op == op:
            segments[-1].text += "".join(tokens)
        else:
            segments.append(Segment(op, "".join(tokens)))

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            add("equal", a[i1:i2])
        else:
            add("del", a[i1:i2])
            add("add", b[j1:j2])
    return segments
