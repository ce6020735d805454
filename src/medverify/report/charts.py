"""Inline SVG bar charts for the offline HTML report.

Why a hand-written SVG and not a plotting library: ``report.html`` must open anywhere, offline,
years later, from a run directory copied to a laptop. An inline ``<svg>`` needs no JavaScript, no
CDN and no image files, and is a few kilobytes. The functions here are pure (strings in, string
out), so the report is byte-for-byte reproducible from ``results.json``.

Used by :mod:`medverify.report.html`, which writes ``report.html`` for ``medverify healthbench``
and the consultation benchmark.
"""

from __future__ import annotations

import math
from html import escape

from medverify.grading.scoring import Stat

#: Tag prefixes dropped from the displayed label (the full tag stays in the tooltip).
KNOWN_PREFIXES = (
    "physician_agreed_category:",
    "dimension:",
    "cluster:",
    "theme:",
    "level:",
    "axis:",
)

# Layout, in SVG user units (the chart scales to its container's width).
_WIDTH = 880
_ROW_H = 26
_BAR_H = 14
_TITLE_H = 30
_AXIS_H = 22
_VALUE_W = 170
_PAD = 8
_CHAR_W = 6.9  # average width of a 12px system-font character
_LABEL_MIN_W = 170  # aligns the charts of HealthBench's themes and axes
_LABEL_MAX_W = 320

_BAR_FILL = "#4f7cac"
_BAR_BG = "#eef1f5"
_GRID = "#d5dae1"
_TEXT = "#1f2933"
_MUTED = "#616e7c"
_ERR = "#1f2933"


def display_label(tag: str) -> str:
    """The tag without a known prefix: ``axis:completeness`` -> ``completeness``."""
    for prefix in KNOWN_PREFIXES:
        if tag.startswith(prefix) and len(tag) > len(prefix):
            return tag[len(prefix) :]
    return tag


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _truncate(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max(1, max_chars - 1)] + "…"


def bar_chart(rows: list[tuple[str, Stat]], *, title: str, max_value: float = 1.0) -> str:
    """A horizontal bar chart, one bar per ``(name, stat)`` row, as an inline ``<svg>`` string.

    Each bar shows ``stat.score`` with an error bar of ± ``stat.std`` (clipped to
    ``[0, max_value]``), and the value and ``n`` as text. Known tag prefixes (``axis:``,
    ``theme:``...) are stripped from the labels; the full name is kept in a ``<title>`` tooltip.
    Rows are drawn in the order given. All text is HTML-escaped.

    Args:
        rows: ``(name, stat)`` pairs, drawn top to bottom.
        title: The chart's heading, drawn above the bars.
        max_value: The score at the right end of the axis.

    Returns:
        An ``<svg>`` element; with no rows, a small chart that says "no data".
    """
    if max_value <= 0:
        raise ValueError(f"max_value must be positive, got {max_value}")
    labels = [display_label(name) for name, _ in rows]
    longest = max((len(label) for label in labels), default=0)
    max_chars = int((_LABEL_MAX_W - 2 * _PAD) / _CHAR_W)
    label_w = max(_LABEL_MIN_W, math.ceil(min(longest, max_chars) * _CHAR_W) + 2 * _PAD)
    plot_x = label_w
    plot_w = _WIDTH - label_w - _VALUE_W
    value_x = _WIDTH - _PAD

    def x_of(value: float) -> float:
        clipped = min(max(value, 0.0), max_value)
        return round(plot_x + plot_w * clipped / max_value, 1)

    body_h = max(1, len(rows)) * _ROW_H
    top = _TITLE_H if title else _PAD
    height = top + body_h + _AXIS_H
    parts = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" role="img" aria-label="{escape(title or "bar chart")}" '
        f'font-family="inherit" font-size="12" fill="{_TEXT}">',
    ]
    if title:
        parts.append(f"<title>{escape(title)}</title>")
        parts.append(f'<text x="0" y="18" font-size="14" font-weight="600">{escape(title)}</text>')
    # Grid lines and tick labels at 0, 25, 50, 75 and 100 % of the axis.
    for i in range(5):
        tick = max_value * i / 4
        x = x_of(tick)
        dash = "" if i in (0, 4) else ' stroke-dasharray="3 3"'
        parts.append(
            f'<line x1="{x}" y1="{top}" x2="{x}" y2="{top + body_h}" stroke="{_GRID}" '
            f'stroke-width="1"{dash}/>'
        )
        parts.append(
            f'<text x="{x}" y="{top + body_h + 15}" text-anchor="middle" fill="{_MUTED}" '
            f'font-size="11">{tick:g}</text>'
        )
    if not rows:
        parts.append(
            f'<text x="{round(plot_x + plot_w / 2, 1)}" y="{top + _ROW_H / 2 + 4}" '
            f'text-anchor="middle" fill="{_MUTED}" font-style="italic">no data</text>'
        )
    for index, ((name, stat), label) in enumerate(zip(rows, labels, strict=True)):
        y = top + index * _ROW_H
        bar_y = y + (_ROW_H - _BAR_H) / 2
        mid = y + _ROW_H / 2
        x_score = x_of(stat.score)
        x_lo, x_hi = x_of(stat.score - stat.std), x_of(stat.score + stat.std)
        tooltip = (
            f"{name}: {_fmt(stat.score)} ± {_fmt(stat.std)} (n={stat.n})"
            if stat.n
            else f"{name}: no scored examples"
        )
        parts.append(f'<g class="bar"><title>{escape(tooltip)}</title>')
        parts.append(
            f'<text x="{label_w - _PAD}" y="{mid + 4}" text-anchor="end">'
            f"{escape(_truncate(label, max_chars))}</text>"
        )
        parts.append(
            f'<rect x="{plot_x}" y="{bar_y}" width="{plot_w}" height="{_BAR_H}" '
            f'fill="{_BAR_BG}" rx="2"/>'
        )
        parts.append(
            f'<rect x="{plot_x}" y="{bar_y}" width="{round(x_score - plot_x, 1)}" '
            f'height="{_BAR_H}" fill="{_BAR_FILL}" rx="2"/>'
        )
        if stat.std > 0 and x_hi > x_lo:
            cap = _BAR_H / 2 - 1
            parts.append(
                f'<path d="M{x_lo} {mid}H{x_hi}M{x_lo} {mid - cap}V{mid + cap}'
                f'M{x_hi} {mid - cap}V{mid + cap}" stroke="{_ERR}" stroke-width="1.3" '
                f'fill="none"/>'
            )
        value = (
            f'<tspan font-weight="600">{_fmt(stat.score)}</tspan>'
            f'<tspan fill="{_MUTED}" dx="5">± {_fmt(stat.std)}</tspan>'
            f'<tspan fill="{_MUTED}" dx="10">n={stat.n:,}</tspan>'
        )
        parts.append(
            f'<text x="{value_x}" y="{mid + 4}" text-anchor="end" '
            f'font-variant-numeric="tabular-nums">{value}</text>'
        )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
