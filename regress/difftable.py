"""``DiffResult`` -> benchstat-like terminal table and machine JSON.

Pure string formatting (no terminal queries), so the same result always gives
byte-identical text; golden tests in ``tests/testdata/diff`` depend on it.
"""

from __future__ import annotations

import gc
import json
import math
from dataclasses import asdict
from typing import Any

from regress.diffmodel import DiffResult, Divergence, SideValues

DEFAULT_TOP = 20
JSON_FORMAT = "regress-diff"
JSON_VERSION = 1


def fmt_num(x: float) -> str:
    """Per-iteration value with ~4 significant digits, never scientific for big counts."""
    if math.isnan(x):
        return "-"
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


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fmt_signed(x: float) -> str:
    s = fmt_num(x)
    return s if s.startswith("-") or s == "0" else "+" + s


def fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    if p == 0:
        return "0"
    if p < 0.001:
        return f"{p:.1e}"
    return f"{p:.3f}"


def fmt_ratio(d: Divergence) -> str:
    if d.cls == "absent":
        return "-"
    if d.ratio is None:
        return "new" if d.new.center > 0 else "-"
    if d.ratio == 0:
        return "gone"
    text = f"x{d.ratio:.3g}"
    if d.ratio_ci is not None:
        lo, hi = d.ratio_ci
        if lo == hi:
            text += " exact"
        else:
            hi_s = "inf" if math.isinf(hi) else f"{hi:.3g}"
            text += f" [{lo:.3g}, {hi_s}]"
    return text


def _side_text(d: Divergence, sv: SideValues) -> str:
    if sv.probe_status not in ("attached", "n/a"):
        return sv.probe_status
    if d.kind == "liveness" and sv.trials is not None:
        return f"{sum(sv.raw)}/{sum(sv.trials)}"
    return fmt_num(sv.center)


def _delta_text(d: Divergence) -> str:
    if d.cls == "absent":
        return "-"
    if d.kind == "liveness":
        return f"{d.delta * 100:+.1f}%"
    return fmt_signed(d.delta)


def select_rows(result: DiffResult, *, top: int | None, show_all: bool) -> list[Divergence]:
    """Rows to print: significant, liveness and absent rows (all rows with ``show_all``)."""
    rows = [
        d
        for d in result.divergences
        if show_all or d.significant or d.cls in ("liveness", "absent")
    ]
    limit = top if top is not None else (None if show_all else DEFAULT_TOP)
    return rows if limit is None else rows[:limit]


def render_table(result: DiffResult, *, top: int | None = None, show_all: bool = False) -> str:
    """The ``regress diff`` text: header, ranked rows, numbered warning footnotes."""
    th = result.thresholds
    lines: list[str] = []
    for tag, s in (("old", result.old), ("new", result.new)):
        its = s.iterations_per_run if s.iterations_per_run is not None else "varying"
        partial = "" if s.complete else ", partial"
        runs = plural(s.runs, "run")
        lines.append(f"{tag}: {s.path}  kernel {s.kernel_release}  ({runs} x {its} it{partial})")
    sig = result.significant
    reg = result.regressions
    lines.append(
        f"workload {result.old.workload}: {plural(result.keys_tested, 'key')} tested, "
        f"{len(sig)} significant, {plural(len(reg), 'regression')} "
        f"(q <= {th['alpha']:g}, effect >= x{th['min_ratio']:g} and "
        f">= {th['min_abs_delta']:g}/iteration)"
    )
    lines.append("")
    footno = {w.code: i + 1 for i, w in reversed(list(enumerate(result.warnings)))}
    rows = select_rows(result, top=top, show_all=show_all)
    if not rows:
        lines.append("no significant divergences")
    else:
        header = [
            "#",
            "class",
            "key",
            "old/iter",
            "new/iter",
            "delta",
            "ratio [95% CI]",
            "p",
            "q",
            "test",
            "",
        ]
        table: list[list[str]] = [header]
        for i, d in enumerate(rows, 1):
            marks = sorted({footno[n] for n in d.notes if n in footno})
            table.append(
                [
                    str(i),
                    d.cls + ("!" if d.regression else ""),
                    d.key,
                    _side_text(d, d.old),
                    _side_text(d, d.new),
                    _delta_text(d),
                    fmt_ratio(d),
                    fmt_p(d.p),
                    fmt_p(d.q),
                    d.test,
                    "".join(f"[{m}]" for m in marks),
                ]
            )
        widths = [max(len(r[c]) for r in table) for c in range(len(header))]
        right = {0, 3, 4, 5, 7, 8}
        for r in table:
            cells = [
                r[c].rjust(widths[c]) if c in right else r[c].ljust(widths[c])
                for c in range(len(header))
            ]
            lines.append("  ".join(cells).rstrip())
        shown_possible = [
            d
            for d in result.divergences
            if show_all or d.significant or d.cls in ("liveness", "absent")
        ]
        hidden = len(shown_possible) - len(rows)
        if hidden > 0:
            lines.append(f"... {hidden} more rows not shown (--top N, --all)")
        if any(d.regression for d in rows):
            lines.append('! = regression (see README "Ranking")')
    if result.warnings:
        lines.append("")
        for i, w in enumerate(result.warnings, 1):
            lines.append(f"[{i}] {w.message}")
    return "\n".join(lines) + "\n"


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> null (unbounded or no number), tuples -> lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _side_dict(sv: SideValues) -> dict[str, Any]:
    # per_iter and raw are finite by construction (counts / iterations)
    return {
        "per_iter": sv.per_iter,
        "raw": sv.raw,
        "center": _finite(sv.center),
        "probe_status": sv.probe_status,
        "probe_reason": sv.probe_reason,
        "trials": sv.trials,
    }


def _divergence_dict(d: Divergence) -> dict[str, Any]:
    """Same fields as ``dataclasses.asdict(d)``, built directly (asdict deep-copies: slow)."""
    return {
        "key": d.key,
        "kind": d.kind,
        "label": d.label,
        "cls": d.cls,
        "old": _side_dict(d.old),
        "new": _side_dict(d.new),
        "ratio": _finite(d.ratio),
        "ratio_ci": None if d.ratio_ci is None else [_finite(x) for x in d.ratio_ci],
        "delta": _finite(d.delta),
        "test": d.test,
        "p": d.p,
        "q": d.q,
        "significant": d.significant,
        "regression": d.regression,
        "score": d.score,
        "notes": d.notes,
    }


def to_json(result: DiffResult) -> str:
    """Machine output: ``DiffResult.to_dict()`` fields plus format/version and summary counts.

    NaN/inf become null. Keys sorted; top level indented, one divergence per line,
    so the output is byte-identical for identical input and fast for 50k rows.
    """
    doc = {
        "format": JSON_FORMAT,
        "format_version": JSON_VERSION,
        "old": _clean(asdict(result.old)),
        "new": _clean(asdict(result.new)),
        "thresholds": _clean(result.thresholds),
        "keys_tested": result.keys_tested,
        "warnings": [asdict(w) for w in result.warnings],
        "forced": list(result.forced),
        "aa_false_positives": result.aa_false_positives,
        "significant_count": len(result.significant),
        "regression_count": len(result.regressions),
    }
    head = json.dumps(doc, sort_keys=True, indent=1, allow_nan=False)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # many small acyclic dicts: see differ.diff_captures
    try:
        rows = [
            json.dumps(_divergence_dict(d), sort_keys=True, allow_nan=False, separators=(",", ":"))
            for d in result.divergences
        ]
    finally:
        if gc_was_enabled:
            gc.enable()
    body = ",\n".join(rows)
    div = '"divergences": [\n' + body + "\n]" if rows else '"divergences": []'
    return head[:-2] + ",\n " + div + "\n}\n"
