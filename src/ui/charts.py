"""Charts as inline SVG, built on the server: a page shows them without a script or a
chart library, they scale with the page, and each bar says its numbers on hover (<title>)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 420, 160
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 36, 8, 10, 24
TONES = {"accent": "#6366f1", "good": "#16a34a", "bad": "#dc2626", "neutral": "#94a3b8"}


@dataclass(frozen=True)
class Bar:
    count: int
    tooltip: str
    tone: str = "accent"


def bar_chart(bars: Sequence[Bar], *, label: str, ticks: Sequence[tuple[int, str]] = ()) -> Markup:
    """Vertical bars side by side; `ticks` are (bar index, text) pairs shown under the axis,
    a tick at index len(bars) marking the right edge."""
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    top = max((bar.count for bar in bars), default=0)
    scale = _nice(top)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
             f'preserveAspectRatio="xMidYMid meet"><title>{escape(label)}</title>']
    for fraction in (0.0, 0.5, 1.0):
        y = PAD_TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid-line"/>')
        parts.append(f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                     f'{_count(scale * fraction)}</text>')
    if bars:
        step = plot_w / len(bars)
        gap = min(2.0, step * 0.15)
        for k, bar in enumerate(bars):
            h = 0.0 if scale == 0 else plot_h * bar.count / scale
            x = PAD_LEFT + k * step + gap / 2
            y = PAD_TOP + plot_h - h
            fill = TONES.get(bar.tone, TONES["accent"])
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(step - gap, 0.5):.1f}" height="{max(h, 0):.1f}" '
                         f'rx="1.5" fill="{fill}"><title>{escape(bar.tooltip)}</title></rect>')
        for index, text in ticks:
            x = PAD_LEFT + index * step
            anchor = "start" if index == 0 else "end" if index >= len(bars) else "middle"
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}" class="tick">{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def score_histogram(counts: Sequence[int], scorer: str) -> Markup:
    """Scores of [0, 1] in equal bins: red for low, green for high."""
    bins = len(counts)
    bars = []
    for k, count in enumerate(counts):
        low, high = k / bins, (k + 1) / bins
        tone = "bad" if high <= 0.5 else "good" if low >= 0.5 else "neutral"
        bars.append(Bar(count, f"{count:,} score(s) in [{low:.2f}, {high:.2f}{']' if k == bins - 1 else ')'}", tone))
    return bar_chart(bars, label=f"Distribution of {scorer} scores",
                     ticks=[(0, "0"), (bins // 2, "0.5"), (bins, "1")])


def latency_histogram(low: float | None, high: float | None, counts: Sequence[int]) -> Markup:
    if low is None or high is None or not counts:
        return bar_chart([], label="Latency histogram (no results yet)")
    width = (high - low) / len(counts) if high > low else 0.0
    bars = [Bar(count, f"{count:,} result(s) took {milliseconds(low + k * width)}–{milliseconds(low + (k + 1) * width)}")
            for k, count in enumerate(counts)]
    return bar_chart(bars, label="Latency histogram", ticks=[(0, milliseconds(low)), (len(counts), milliseconds(high))])


def delta_histogram(deltas: Sequence[float], scorer: str, *, bins: int = 20, lower_is_better: bool = False) -> Markup:
    """Per-item score differences (candidate minus baseline) in equal bins of [-1, 1]:
    the bars on the worse side red, on the better side green, 'no change' grey."""
    counts = [0] * bins
    unchanged = 0
    for delta in deltas:
        if abs(delta) <= 1e-9:
            unchanged += 1
            continue
        k = min(bins - 1, max(0, int((delta + 1) / 2 * bins)))
        counts[k] += 1
    bars = []
    for k, count in enumerate(counts):
        low, high = -1 + 2 * k / bins, -1 + 2 * (k + 1) / bins
        better = (low >= 0) != lower_is_better
        bars.append(Bar(count, f"{count:,} item(s) changed by {low:+.1f} to {high:+.1f}", "good" if better else "bad"))
    middle = bins // 2
    bars.insert(middle, Bar(unchanged, f"{unchanged:,} item(s) unchanged", "neutral"))
    return bar_chart(bars, label=f"Per-item change of {scorer} (candidate − baseline)",
                     ticks=[(0, "−1"), (middle, "0"), (len(bars), "+1")])


def milliseconds(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _nice(top: int) -> float:
    """The top of the y-axis: the smallest 1, 2 or 5 times a power of ten at or above `top`."""
    if top <= 0:
        return 0.0
    power = 10 ** math.floor(math.log10(top))
    for factor in (1, 2, 5, 10):
        if top <= factor * power:
            return float(factor * power)
    return float(top)


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 1 or value == 0 else f"{value:.1f}"
