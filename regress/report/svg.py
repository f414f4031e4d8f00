"""Small inline SVG charts for the HTML report, built as escaped markup in Python.

Inline SVG keeps the report one self-contained file that prints and needs no
script. Only numbers and escaped labels go into the markup; the result is a
``markupsafe.Markup`` so the template can embed it without double-escaping.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from regress.report.format import fmt_num
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
