"""Paired statistics for two runs' per-item scores (numpy / scipy, vectorised).

The test depends on the scores:
- every score 0 or 1 (pass/fail scorers such as exact-match): McNemar's exact test on the
  discordant pairs (a binomial test), the textbook test for paired binary outcomes;
- anything else: the Wilcoxon signed-rank test on the paired differences (no normality
  assumption; scores in 0..1 are rarely normal).
The confidence interval of the mean paired difference is Student's t interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedResult:
    n: int
    mean_a: float | None
    mean_b: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str | None


def paired(a: np.ndarray, b: np.ndarray, *, confidence: float) -> PairedResult:
    """Compare paired samples a (baseline) and b (candidate) of equal length."""
    n = int(a.size)
    if n == 0:
        return PairedResult(0, None, None, None, None, None, None, None)
    diff = b - a
    delta = float(diff.mean())
    mean_a, mean_b = float(a.mean()), float(b.mean())
    if np.all(diff == 0):
        return PairedResult(n, mean_a, mean_b, 0.0, 0.0, 0.0, 1.0, "none (identical scores)")
    if n < 2 or np.all(diff == diff[0]):
        low = high = delta  # no spread: the interval is the difference itself
    else:
        low, high = stats.t.interval(confidence, n - 1, loc=delta, scale=stats.sem(diff))
    binary = np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()
    if binary:
        worse = int(np.count_nonzero((a == 1) & (b == 0)))
        better = int(np.count_nonzero((a == 0) & (b == 1)))
        discordant = worse + better
        p = 1.0 if discordant == 0 else float(stats.binomtest(better, discordant, 0.5).pvalue)
        test = "mcnemar-exact"
    else:
        p = float(stats.wilcoxon(diff[diff != 0]).pvalue)
        test = "wilcoxon-signed-rank"
    return PairedResult(n, mean_a, mean_b, delta, float(low), float(high), p, test)
