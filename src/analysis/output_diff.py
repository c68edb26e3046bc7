"""How a result's output differs from the item's expected output: for two strings, a diff
of words (whitespace kept, so lines show too); for other JSON, field by field (the dataset
diff's `field_changes`); and what there is to say when either side is missing."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic.alias_generators import to_camel

from evalledger.projections.dataset_queries import FieldChange, field_changes

# Words and the whitespace between them, so a diff of one long line still points at words.
_TOKENS = re.compile(r"\s+|[^\s]+")
# Longer texts are compared line by line, and longer still, whole: matching is quadratic
# at worst, and one request must not hold the service for seconds.
MAX_TOKENS = 4000


def output_diff(expected: Any, output: Any, *, failed: bool = False) -> dict[str, Any]:
    """expected -> output. `kind`: text (`segments` of equal / del / add text), json
    (`changes`, as in a dataset diff), missingOutput or noExpectedOutput."""
    if failed or output is None:
        return {"kind": "missingOutput", "equal": expected is None}
    if expected is None:
        return {"kind": "noExpectedOutput", "equal": False}
    if isinstance(expected, str) and isinstance(output, str):
        return {"kind": "text", "equal": expected == output, "segments": text_segments(expected, output)}
    return {"kind": "json", "equal": expected == output,
            "changes": [change_dict(c) for c in field_changes(expected, output, ("output",))]}


def change_dict(change: FieldChange) -> dict[str, Any]:
    """A field change as the run answers still carry it (a FieldChange of the API's diff, as a dict)."""
    return {"field": ".".join((to_camel(change.path[0]), *change.path[1:])), "before": change.before,
            "after": change.after, **({"kind": change.kind} if change.kind else {})}


def runs_output_diff(a: Any, b: Any) -> dict[str, Any]:
    """Run A's output -> run B's output for the same item (None: no output in that run)."""
    if a is None or b is None:
        return {"kind": "missingOutput", "equal": a is None and b is None,
                "missing": [side for side, value in (("A", a), ("B", b)) if value is None]}
    return output_diff(a, b)


def text_segments(before: str, after: str) -> list[dict[str, str]]:
    """The two texts as runs of equal, deleted and added text, in reading order."""
    a, b = _TOKENS.findall(before), _TOKENS.findall(after)
    if max(len(a), len(b)) > MAX_TOKENS:
        a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
        if max(len(a), len(b)) > MAX_TOKENS:
            a, b = [before], [after]
    segments: list[dict[str, str]] = []

    def add(op: str, tokens: list[str]) -> None:
        if not tokens:
            return
        if segments and segments[-1]["op"] == op:
            segments[-1]["text"] += "".join(tokens)
        else:
            segments.append({"op": op, "text": "".join(tokens)})

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            add("equal", a[i1:i2])
        else:
            add("del", a[i1:i2])
            add("add", b[j1:j2])
    return segments
