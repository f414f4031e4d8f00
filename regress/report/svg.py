"""Small inline SVG charts for the HTML report, built as escaped markup in Python.

Inline SVG keeps the report one self-contained file that prints and needs no
script. Only numbers and escaped labels go into the markup; the result is a
``markupsafe.Markup`` so the template can embed it without double-escaping.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

from regress.model.result import Divergence
from regress.report.format import fmt_num, fmt_ratio
from regress.report.view import HistBar

OLD_COLOR = "#4d6a8a"
NEW_COLOR = "#c4551a"


def _f(x: float) -> str:
    return f"{x:.1f}"


def dots(old: list[float], new: list[float], label: str) -> Markup:
    """Per-run values of one key as dots on two lanes (old above, new below).

    A shared linear axis from 0 makes a rate change visible at a glance; the
    vertical tick on each lane is the median the table shows.
    """
    width, left, right = 340.0, 34.0, 14.0
    values = [v for v in old + new if v == v]  # drop NaN
    top = max(values) if values else 0.0
    top = top * 1.05 if top > 0 else 1.0
    span = width - left - right

    def x(v: float) -> float:
        return left + span * (v / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {_f(width)} 64" width="{_f(width)}" height="64" '
        f'role="img" aria-label="{escape("per-run values of " + label)}">',
        f'<line x1="{_f(left)}" y1="56" x2="{_f(width - right)}" y2="56" class="axis"/>',
        f'<text x="{_f(left)}" y="63" class="tick">0</text>',
        f'<text x="{_f(width - right)}" y="63" class="tick" text-anchor="end">'
        f"{escape(fmt_num(top))}</text>",
    ]
    for lane, (name, vals, color) in enumerate((("old", old, OLD_COLOR), ("new", new, NEW_COLOR))):
        y = 16.0 + lane * 22.0
        parts.append(f'<text x="0" y="{_f(y + 4)}" class="lane">{name}</text>')
        parts.append(
            f'<line x1="{_f(left)}" y1="{_f(y)}" x2="{_f(width - right)}" y2="{_f(y)}" '
            'class="grid"/>'
        )
        clean_vals = sorted(v for v in vals if v == v)
        if clean_vals:
            n = len(clean_vals)
            med = clean_vals[n // 2] if n % 2 else (clean_vals[n // 2 - 1] + clean_vals[n // 2]) / 2
            parts.append(
                f'<line x1="{_f(x(med))}" y1="{_f(y - 8)}" x2="{_f(x(med))}" '
                f'y2="{_f(y + 8)}" stroke="{color}" stroke-width="2"/>'
            )
        for i, v in enumerate(vals):
            if v != v:
                continue
            jitter = ((i % 3) - 1) * 3.0
            parts.append(
                f'<circle cx="{_f(x(v))}" cy="{_f(y + jitter)}" r="3.5" fill="{color}" '
                f'fill-opacity="0.75"><title>{name} run {i + 1}: '
                f"{escape(fmt_num(v))}</title></circle>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram(bars: list[HistBar], label: str) -> Markup:
    """Old and new log2 return-value histograms side by side on one y scale."""
    if not bars:
        return Markup("")
    panel, gap, height, base = 160.0, 16.0, 106.0, 78.0
    top = max(max(b.old, b.new) for b in bars) or 1.0
    bw = panel / len(bars)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_f(2 * panel + gap)} {_f(height)}" '
        f'width="{_f(2 * panel + gap)}" height="{_f(height)}" role="img" '
        f'aria-label="{escape("log2 return-value histograms of " + label)}">'
    ]
    for p, (name, color) in enumerate((("old", OLD_COLOR), ("new", NEW_COLOR))):
        x0 = p * (panel + gap)
        parts.append(f'<text x="{_f(x0)}" y="10" class="lane">{name}</text>')
        parts.append(
            f'<line x1="{_f(x0)}" y1="{_f(base)}" x2="{_f(x0 + panel)}" y2="{_f(base)}" '
            'class="axis"/>'
        )
        for i, b in enumerate(bars):
            v = b.old if p == 0 else b.new
            h = (base - 16.0) * (v / top)
            bx = x0 + i * bw
            opacity = "1" if b.highlight else "0.45"
            parts.append(
                f'<rect x="{_f(bx + 1)}" y="{_f(base - h)}" width="{_f(max(bw - 2, 1))}" '
                f'height="{_f(h)}" fill="{color}" fill-opacity="{opacity}">'
                f"<title>{name} bucket {b.bucket} ({escape(b.values)}): "
                f"{escape(fmt_num(v))} per iteration"
                "</title></rect>"
            )
            if len(bars) <= 12 or i % 2 == 0 or b.highlight:
                cls = "tick hl" if b.highlight else "tick"
                parts.append(
                    f'<text x="{_f(bx + bw / 2)}" y="{_f(base + 11)}" class="{cls}" '
                    f'text-anchor="middle">{b.bucket}</text>'
                )
    parts.append(
        f'<text x="{_f(panel + gap / 2)}" y="{_f(height - 2)}" class="tick" '
        'text-anchor="middle">log2 bucket of the return value</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


CLASS_COLORS = {
    "liveness": "#a4161a",
    "exit-status": "#a4161a",
    "appeared": "#c4551a",
    "vanished": "#2f5d8a",
    "rate": "#3b3b3b",
    "certain-small": "#7a7a7a",
    "suggestive": "#b0a36a",
    "absent": "#9a9a9a",
}
OVERVIEW_ROWS = 12
MAX_LOG2 = 4.0  # the axis spans x1/16 .. x16; beyond (and appear/vanish) sit at its ends


def _outcome_ratio(d: Divergence) -> float | None:
    """Failure fraction new/old for liveness/exit rows (None: nothing failed on either)."""
    a, b = d.old.center, d.new.center
    if a != a or b != b or (a == 0 and b == 0):
        return None
    return math.inf if a == 0 else b / a


def overview(rows: list[Divergence]) -> Markup:
    """The comparison at a glance: each top row's new/old ratio with its confidence
    interval on one log axis, coloured by class (appeared/vanished at the ends)."""
    rows = [d for d in rows if d.cls != "absent"][:OVERVIEW_ROWS]
    if not rows:
        return Markup("")
    label_w, plot_w, value_w, row_h, top = 300.0, 380.0, 160.0, 22.0, 26.0
    width = label_w + plot_w + value_w
    height = top + row_h * len(rows) + 10

    def x(ratio: float) -> float:
        lr = max(-MAX_LOG2, min(MAX_LOG2, math.log2(ratio))) if ratio > 0 else -MAX_LOG2
        if math.isinf(ratio):
            lr = MAX_LOG2
        return label_w + plot_w * (lr + MAX_LOG2) / (2 * MAX_LOG2)

    parts = [
        f'<svg class="overview" viewBox="0 0 {_f(width)} {_f(height)}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" '
        f'aria-label="new/old ratio of the top {len(rows)} rows on a log axis">',
    ]
    for tick in (1 / 16, 1 / 4, 1 / 2, 1, 2, 4, 16):
        tx = x(tick)
        name = f"x{tick:g}" if tick >= 1 else f"x1/{round(1 / tick)}"
        parts.append(
            f'<line x1="{_f(tx)}" y1="{_f(top - 6)}" x2="{_f(tx)}" y2="{_f(height - 8)}" '
            f'class="{"axis" if tick == 1 else "grid"}"/>'
        )
        parts.append(
            f'<text x="{_f(tx)}" y="{_f(top - 10)}" class="tick" text-anchor="middle">{name}</text>'
        )
    for i, d in enumerate(rows):
        y = top + row_h * i + row_h / 2
        color = CLASS_COLORS.get(d.cls, "#3b3b3b")
        label = d.label if len(d.label) <= 44 else d.label[:43] + "…"
        parts.append(
            f'<text x="{_f(label_w - 8)}" y="{_f(y + 4)}" class="lane" text-anchor="end">'
            f"{escape(label)}<title>{escape(d.key)}</title></text>"
        )
        if d.kind in ("liveness", "exit"):
            ratio = _outcome_ratio(d)
            ci = None
        elif d.cls == "appeared":
            ratio, ci = math.inf, None
        elif d.cls == "vanished":
            ratio, ci = 0.0, None
        else:
            ratio, ci = d.ratio, d.ratio_ci
        if ratio is None or ratio != ratio:
            continue
        if ci is not None and all(c == c and c is not None for c in ci):
            lo, hi = x(max(ci[0], 1e-12)), x(ci[1])
            parts.append(
                f'<line x1="{_f(lo)}" y1="{_f(y)}" x2="{_f(hi)}" y2="{_f(y)}" '
                f'stroke="{color}" stroke-width="3" stroke-opacity="0.45"/>'
            )
        cx = x(ratio)
        at_edge = math.isinf(ratio) or ratio == 0 or abs(math.log2(ratio)) > MAX_LOG2
        if at_edge:  # an arrowhead pointing off the axis
            tip = 6.0 if math.isinf(ratio) or ratio > 1 else -6.0
            shape = (
                f'<path d="M{_f(cx - tip)} {_f(y - 6)} L{_f(cx + tip)} {_f(y)} '
                f'L{_f(cx - tip)} {_f(y + 6)} Z" fill="{color}"/>'
            )
        else:
            shape = f'<circle cx="{_f(cx)}" cy="{_f(y)}" r="5" fill="{color}"/>'
        parts.append(shape)
        text = (
            "appeared" if d.cls == "appeared" else "vanished" if d.cls == "vanished"
            else "new" if math.isinf(ratio) else fmt_ratio(ratio)
        )  # fmt: skip
        cls = "" if text == d.cls else f' <tspan class="cls">{escape(d.cls)}</tspan>'
        parts.append(
            f'<text x="{_f(label_w + plot_w + 8)}" y="{_f(y + 4)}" class="lane">'
            f"{escape(text)}{cls}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
