"""What `evaluate()` returns: the run, its analytics, a per-item table, a link to the run
in the web UI and, with `compare_to=`, the service's statistical comparison with the
baseline (`assert_no_regression()` turns it into a test's verdict)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORST_ITEMS = 5  # regressed items an assertion message lists per run


@dataclass
class EvalResult:
    run_id: str
    run: dict[str, Any]
    analytics: dict[str, Any]
    results: list[dict[str, Any]]  # each recorded result, as GET /runs/{id}/results lists them
    url: str | None = None  # the run's page in the web UI (None: no server was used)
    comparison: dict[str, Any] | None = None  # POST /compare's answer, with compare_to=
    baseline_run_id: str | None = None
    scorer_ids: list[str] = field(default_factory=list)

    # -- reading ------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return str(self.run["status"])

    @property
    def scores(self) -> dict[str, float | None]:
        """Each scorer's mean score."""
        return {scorer_id: stats.get("mean") for scorer_id, stats in self.analytics.get("scorers", {}).items()}

    @property
    def usage(self) -> dict[str, Any]:
        """Tokens and cost the task reported: totals and means per result (analytics' usage)."""
        return dict(self.analytics.get("usage") or {})

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per result: item, repetition, input, expected output, output, error,
        latency, attempts, usage, trace id and link, and a column per scorer."""
        rows = []
        for result in self.results:
            row = {"item_id": result["itemId"], "repetition": result["repetition"], "input": result["input"],
                   "expected_output": result["expectedOutput"], "output": result["output"],
                   "error": result["error"], "latency_ms": result["latencyMs"], "attempts": result["attempt"],
                   "usage": result.get("usage"), "trace_id": result.get("traceId"),
                   "trace_url": result.get("traceUrl")}
            for score in result.get("scores") or []:
                row[score["scorerId"]] = score["score"]
            rows.append(row)
        return rows

    def to_pandas(self) -> Any:
        """The per-item table as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("EvalResult.to_pandas() needs pandas: pip install pandas "
                              "(EvalResult.rows() gives the same table as a list of dicts)") from None
        return pandas.DataFrame(self.rows())

    # -- the verdict ----------------------------------------------------------------------

    @property
    def regressed_scorers(self) -> dict[str, dict[str, Any]]:
        if self.comparison is None:
            return {}
        return {s: c for s, c in self.comparison["scorers"].items() if c["verdict"] == "regressed"}

    def assert_no_regression(self) -> None:
        """Raise AssertionError when the comparison with the baseline (`compare_to=`) found a
        statistically significant regression: which scorers, by how much, their p-values
        and the items that got worst."""
        __tracebackhide__ = True  # pytest shows the message, not this function
        if self.comparison is None:
            raise ValueError("this result was not compared with a baseline; pass compare_to= to evaluate()")
        regressed = self.regressed_scorers
        if not regressed:
            return
        lines = [f"run {self.run_id} regressed against baseline {self.baseline_run_id} "
                 f"(alpha {self.comparison['alpha']}):"]
        for scorer_id, c in sorted(regressed.items()):
            lines.append(f"  {scorer_id}: mean {c['meanA']:.3f} -> {c['meanB']:.3f} (delta {c['delta']:+.3f}), "
                         f"p = {c['pValue']:.3g} ({c['test']}), {c['regressed']} of {c['pairedItems']} items worse")
        worst = [item for item in self.comparison.get("items", []) if item["status"] == "regressed"][:WORST_ITEMS]
        if worst:
            mine = {r["itemId"]: r for r in self.results}
            lines.append("  worst items:")
            for item in worst:
                changes = ", ".join(f"{s} {v['a']:.2f} -> {v['b']:.2f}" for s, v in sorted(item["scores"].items())
                                    if s in regressed and v["delta"] is not None and v["delta"] < 0)
                result = mine.get(item["itemId"], {})
                lines.append(f"    {item['itemId']} input={_short(result.get('input'))} "
                             f"output={_short(result.get('output'))} expected={_short(result.get('expectedOutput'))}"
                             f": {changes}")
        if self.url:
            lines.append(f"  see {self.url}")
        raise AssertionError("\n".join(lines))

    def __repr__(self) -> str:
        scores = ", ".join(f"{k}={v:.3f}" if v is not None else f"{k}=n/a" for k, v in self.scores.items())
        text = f"EvalResult(run {self.run_id}: {self.status}, {len(self.results)} results"
        text += f", {scores})" if scores else ")"
        if self.comparison is not None:
            text += f" vs {self.baseline_run_id}: " + ("REGRESSED " + ", ".join(sorted(self.regressed_scorers))
                                                       if self.regressed_scorers else "no regression")
        return text + (f" {self.url}" if self.url else "")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
