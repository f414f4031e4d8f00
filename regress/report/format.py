"""The one place numbers, p-values, ratios, plurals and captured strings are formatted.

Used by the terminal table, both reports, the CI index and JUnit, so a value reads the
same everywhere. Outputs for mail and terminals that must stay ASCII pass their text
through ``ASCII`` (``text.translate(ASCII)``).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from typing import Any, Literal

from regress.model.result import Culprit, Evidence

MISSING = "—"  # no number: a probe absent on that side, or no test
ASCII = str.maketrans({"×": "x", "—": "-", "–": "-", "→": "->", "…": "...", "∞": "inf"})
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Make control characters visible so capture strings cannot drive a terminal."""
    return _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def str_list(value: object) -> list[str]:
    """A free-form capture field (tracer options, workload spec) as a list of names:
    anything that is not a list counts as none."""
    return [str(x) for x in value] if isinstance(value, list) else []


def spec_text(value: object) -> str | None:
    """A free-form capture field that should be shell text: a string, or a list of words
    (joined as one command line); anything else counts as none."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        return shlex.join(str(x) for x in value) or None
    return None


def missing(x: float | None) -> bool:
    """None and NaN both mean "no number" (the differ uses NaN for absent probes)."""
    return x is None or x != x


def fmt_num(x: float | None) -> str:
    """A per-iteration value with ~4 significant digits, never scientific for big counts."""
    if x is None or missing(x):
        return MISSING
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1000:
        return f"{x:.0f}"
    if a >= 100:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    if a >= 0.001:
        return f"{x:.3f}"
    return f"{x:.2e}"


def fmt_signed(x: float | None) -> str:
    s = fmt_num(x)
    return s if s.startswith("-") or s in ("0", MISSING) else "+" + s


def fmt_pct(x: float) -> str:
    """A fraction as a percentage: 0.185 -> '18.5%'."""
    return f"{100.0 * x:.1f}%"


def fmt_p(p: float | None) -> str:
    if p is None or missing(p):
        return MISSING
    if p == 0:
        return "0"
    if p < 0.001:
        return f"{p:.1e}"
    return f"{p:.3f}"


def _bound(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.3g}"


def fmt_ratio(r: float | None) -> str:
    """new/old as '×0.867' (three significant digits)."""
    if r is None or missing(r):
        return MISSING
    return f"×{_bound(r)}"


def fmt_ci(ci: tuple[float, float] | None) -> str:
    """A ratio interval as '[0.81, 0.93]'; a degenerate one (exact) as 'exact'."""
    if ci is None:
        return ""
    lo, hi = ci
    if lo == hi:
        return "exact"
    return f"[{_bound(lo)}, {_bound(hi)}]"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fmt_value(v: Any) -> str:
    """A thresholds/options value as the user would type it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if v is None:
        return MISSING
    if isinstance(v, list | tuple | dict):
        return json.dumps(v, sort_keys=True)
    return str(v)


def aligned(
    headers: list[str],
    rows: list[list[str]],
    right: set[int],
    *,
    indent: str = "",
    rule: bool = False,
) -> list[str]:
    """A fixed-width table; columns in ``right`` are right-aligned (numbers).

    ``rule`` puts a line of dashes under the headers (mail-style text tables).
    """
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return (indent + "  ".join(out)).rstrip()

    head = [line(headers)] + ([line(["-" * w for w in widths])] if rule else [])
    return head + [line(r) for r in rows]


def fitted_table(
    headers: list[str],
    rows: list[list[str]],
    right: set[int],
    *,
    width: int | None,
    drop_order: tuple[int, ...] = (),
    fold: int | None = None,
    min_fold: int = 16,
) -> list[str]:
    """A rich table that fits ``width`` columns (None: its natural width).

    The ``fold`` column (a key name) folds onto more lines down to ``min_fold``
    characters; numbers never wrap or shrink; when folding is not enough the columns in
    ``drop_order`` are left out one by one. Deterministic for a given width (rendered to
    a string, no terminal queried).
    """
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    natural = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    keep = [i for i in range(len(headers)) if natural[i] > 0]
    pending = [c for c in drop_order if c in keep]
    fold_width: int | None = None
    while width is not None:
        total = sum(natural[i] for i in keep) + 2 * (len(keep) - 1)
        if total <= width:
            break
        if fold is not None and fold in keep:
            room = width - (total - natural[fold])
            if room >= min(min_fold, natural[fold]):
                fold_width = room
                break
        if not pending:
            break
        keep.remove(pending.pop(0))
    table = Table(
        box=None, show_edge=False, pad_edge=False, padding=(0, 1), header_style="", expand=False
    )
    justify: dict[int, Literal["left", "right"]] = {
        i: "right" if i in right else "left" for i in keep
    }
    for i in keep:
        table.add_column(
            Text(headers[i], justify=justify[i]),
            justify="right" if i in right else "left",
            no_wrap=i != fold,
            overflow="fold" if i == fold else "ellipsis",
            # (rich right-justifies only columns without an explicit width)
            width=fold_width if i == fold and fold_width is not None else None,
        )
    for r in rows:
        table.add_row(*(Text(r[i], justify=justify[i]) for i in keep))
    buf = io.StringIO()
    Console(
        file=buf,
        width=100_000,
        color_system=None,
        force_terminal=False,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    ).print(table)
    return [line.rstrip() for line in buf.getvalue().splitlines()]


def evidence_text(e: Evidence) -> str:
    """One line of "Where it diverges": what was found about a function, in numbers."""
    if e.measure == "share":
        if e.source == "contrast":
            how = "exact: the same in every iteration of each" if e.q == 0 else f"q {fmt_p(e.q)}"
            return (
                f"{e.label}: {e.after:.0%} of its returns in failing iterations, "
                f"{e.before:.0%} in passing ones on the {e.side} kernel ({how})"
            )
        how = " (exact: the same in every run)" if e.q == 0 else f" (q {fmt_p(e.q)})"
        return f"{e.label}: {e.before:.0%} -> {e.after:.0%} of its returns{how}"
    if e.source == "contrast":
        return (
            f"{e.label}: {fmt_num(e.after)} per failing iteration, {fmt_num(e.before)} per "
            f"passing one on the {e.side} kernel (q {fmt_p(e.q)})"
        )
    ratio = f", {fmt_ratio(e.ratio)}" if e.ratio is not None else ""
    how = {
        "certain-small": ", the same in every run",
        "suggestive": " (suggestive: p <= alpha, not past the FDR)",
    }.get(e.cls, " (exact: the same in every run)" if e.q == 0 else f" (q {fmt_p(e.q)})")
    return f"{e.label}: {fmt_num(e.before)} -> {fmt_num(e.after)} per iteration{ratio}{how}"


def path_text(path: tuple[str, ...], limit: int = 8) -> str:
    """A kernel call path, innermost caller first: ``a <- b <- c ...``."""
    shown = " <- ".join(path[:limit])
    return shown + (f" <- ... ({len(path) - limit} more)" if len(path) > limit else "")


def culprit_lines(culprits: tuple[Culprit, ...], indent: str = "") -> list[str]:
    """The "Where it diverges" list as plain lines (terminal and mail text)."""
    lines: list[str] = []
    for i, c in enumerate(culprits, 1):
        lines.append(f"{indent}{i}. {c.function}() -- {c.basis}")
        if c.syscalls:
            lines.append(f"{indent}   explains: {', '.join(c.syscalls)}")
        lines += [f"{indent}   {evidence_text(e)}" for e in c.evidence]
        if c.path:
            lines.append(f"{indent}   call path: {path_text(c.path)}")
    return lines
