"""Human reviews of run results, folded: what a result's reviews add up to, and the scores
that count once they are applied (read models and rebuilds use these same functions, so
they agree).

A review says only what it changes: a verdict, comment or flag left None keeps the one
before; a score per scorer overrides the automatic score until a later review sets it
again (None: back to the automatic score); a criterion is a score no scorer gives.
"""

from __future__ import annotations

from typing import Any

JSON = Any


def fold_review(current: dict[str, JSON] | None, *, verdict: str | None, scores: list[dict[str, JSON]],
                criteria: list[dict[str, JSON]], comment: str | None, flagged: bool | None, actor: str,
                reason: str | None, at: str) -> dict[str, JSON]:
    """The review state after one more review (`current`: the state before, or None)."""
    state: dict[str, JSON] = dict(current) if current else {
        "verdict": None, "comment": None, "flagged": False, "scores": {}, "criteria": {}, "reviews": 0}
    overrides, own = dict(state["scores"]), dict(state["criteria"])
    for entry in scores:
        if entry["score"] is None:
            overrides.pop(entry["scorerId"], None)
        else:
            overrides[entry["scorerId"]] = entry["score"]
    for entry in criteria:
        if entry["score"] is None:
            own.pop(entry["name"], None)
        else:
            own[entry["name"]] = entry["score"]
    state.update(scores=overrides, criteria=own, reviews=state["reviews"] + 1, actor=actor, reason=reason,
                 reviewedAt=at)
    if verdict is not None:
        state["verdict"] = verdict
    if comment is not None:
        state["comment"] = comment or None  # an empty comment clears it
    if flagged is not None:
        state["flagged"] = flagged
    return state


def reviewed_scores(scores: list[dict[str, JSON]], review: dict[str, JSON] | None) -> list[dict[str, JSON]] | None:
    """The result's scores with the review's overrides applied (each marked `reviewed`, with
    the automatic score kept beside it) and its criteria added; None when the review
    changes no score, so readers fall back to the automatic scores."""
    if not review or not (review["scores"] or review["criteria"]):
        return None
    overrides = review["scores"]
    out = []
    for entry in scores:
        if entry.get("scorerId") in overrides:
            out.append({**entry, "score": overrides[entry["scorerId"]], "automaticScore": entry.get("score"),
                        "reviewed": True})
        else:
            out.append(entry)
    present = {entry.get("scorerId") for entry in scores}
    for scorer_id, score in overrides.items():
        if scorer_id not in present:  # a declared scorer that gave this result no score
            out.append({"scorerId": scorer_id, "score": score, "reason": None, "error": None,
                        "automaticScore": None, "reviewed": True})
    for name, score in review["criteria"].items():
        out.append({"scorerId": name, "score": score, "reason": None, "error": None, "automaticScore": None,
                    "reviewed": True, "criterion": True})
    return out
