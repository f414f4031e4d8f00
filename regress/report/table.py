"""``DiffResult`` -> the benchstat-like ``regress diff`` terminal table.

Pure string formatting (no terminal queries), so the same result always gives
byte-identical text; golden tests in ``tests/testdata/diff`` depend on it. ASCII only.
"""

from __future__ import annotations

import textwrap

from regress.model.result import (
    FUNCTION_KINDS,
    OUTCOME_KINDS,
    DiffResult,
    Divergence,
    SideValues,
)
from regress.report.format import (
    ASCII,
    MISSING,
    aligned,
    culprit_lines,
    fitted_table,
    fmt_ci,
    fmt_num,
    fmt_p,
    fmt_ratio,
    fmt_signed,
    plural,
)

DEFAULT_TOP = 20
TABLE_LINE = "\x00"  # marks table lines, which are fitted already and never re-wrapped


def _ratio_cell(d: Divergence) -> str:
    if d.cls == "absent":
        return MISSING
    if d.ratio is None:
        return "new" if d.new.center > 0 else MISSING
    if d.ratio == 0:
        return "gone"
    ci = fmt_ci(d.ratio_ci)
    return fmt_ratio(d.ratio) + (f" {ci}" if ci else "")


def _side_text(d: Divergence, sv: SideValues) -> str:
    if not sv.observed:
        return sv.probe_status
    if d.kind in OUTCOME_KINDS and sv.trials is not None:
        return f"{sum(sv.raw)}/{sum(sv.trials)}"
    return fmt_num(sv.center)


def _delta_text(d: Divergence) -> str:
    if d.cls == "absent":
        return MISSING
    if d.kind in OUTCOME_KINDS:
        return f"{d.delta * 100:+.1f}%"
    return fmt_signed(d.delta)


def select_rows(result: DiffResult, *, top: int | None, show_all: bool) -> list[Divergence]:
    """Rows to print: significant, liveness and absent rows (all rows with ``show_all``)."""
    rows = list(result.divergences) if show_all else result.shown
    limit = top if top is not None else (None if show_all else DEFAULT_TOP)
    return rows if limit is None else rows[:limit]


def contrast_lines(result: DiffResult) -> list[str]:
    """Per kernel whose iterations both failed and passed: what differed between them."""
    lines: list[str] = []
    for c in result.contrasts:
        lines.append("")
        head = (
            f"{c.side} kernel, {c.failing} failing vs {c.passing} passing iterations: "
            f"{plural(len(c.rows), 'key')} {'differs' if len(c.rows) == 1 else 'differ'} "
            f"(of {c.keys_tested} that vary)"
        )
        lines.append(head)
        if c.rows:
            body = [[r.label, fmt_num(r.failing), fmt_num(r.passing), fmt_p(r.q)] for r in c.rows]
            lines += aligned(["what", "failing/iter", "passing/iter", "q"], body, right={1, 2, 3})
    return lines


def render_table(
    result: DiffResult,
    *,
    top: int | None = None,
    show_all: bool = False,
    width: int | None = None,
) -> str:
    """The ``regress diff`` text: header, ranked rows, numbered warning footnotes; fitted
    to ``width`` columns when given (the key folds; test, p, delta columns drop, in that
    order, before anything wraps; prose lines wrap)."""
    th = result.thresholds
    lines: list[str] = []
    for tag, s in (("old", result.old), ("new", result.new)):
        its = s.iterations_per_run if s.iterations_per_run is not None else "varying"
        partial = "" if s.complete else ", partial"
        runs = plural(s.runs, "run")
        lines.append(f"{tag}: {s.path}  kernel {s.kernel_release}  ({runs} x {its} it{partial})")
    sig = result.significant
    reg = result.regressions
    own = th.own_gates(any(d.kind in FUNCTION_KINDS for d in result.divergences))
    lines.append(
        f"workload {result.old.workload}: {plural(result.keys_tested, 'key')} tested, "
        f"{len(sig)} significant, {plural(len(reg), 'regression')} "
        f"(q <= {th.alpha:g}, effect >= x{th.min_ratio:g} ({own}) "
        f"and >= {th.min_abs_delta:g}/iteration)"
    )
    lines.append("")
    if result.culprits:
        lines.append("Where it diverges (kernel functions, strongest evidence first):")
        lines += culprit_lines(result.culprits, indent="  ")
        lines.append("")
    footno = {w.code: i + 1 for i, w in reversed(list(enumerate(result.warnings)))}
    rows = select_rows(result, top=top, show_all=show_all)
    if not rows:
        lines.append("no significant divergences")
    else:
        header = ["#", "class", "key", "old/iter", "new/iter", "delta", "ratio [95% CI]"]
        header += ["p", "q", "test", ""]
        body: list[list[str]] = []
        for i, d in enumerate(rows, 1):
            marks = sorted({footno[n] for n in d.notes if n in footno})
            body.append(
                [
                    str(i),
                    d.cls + ("!" if d.regression else ""),
                    d.key,
                    _side_text(d, d.old),
                    _side_text(d, d.new),
                    _delta_text(d),
                    _ratio_cell(d),
                    fmt_p(d.p),
                    fmt_p(d.q),
                    d.test,
                    "".join(f"[{m}]" for m in marks),
                ]
            )
        lines += fitted_table(
            header,
            body,
            right={0, 3, 4, 5, 7, 8},
            width=width,
            drop_order=(9, 7, 5, 0),
            fold=2,
        )
        hidden = (len(result.divergences) if show_all else len(result.shown)) - len(rows)
        if hidden > 0:
            lines.append(f"... {hidden} more rows not shown (--top N, --all)")
        if any(d.regression for d in rows):
            lines.append('! = regression (see README "Ranking")')
        for d in rows:
            if d.interpretation:
                lines.append(f"{d.key}: {d.interpretation}")
    if result.aa_false_positives is not None:
        lines.append(
            f"A/A control: the old runs split even/odd gave "
            f"{plural(result.aa_false_positives, 'significant row')} under the same "
            "thresholds (the measured false-positive level within one boot)"
        )
    lines += contrast_lines(result)
    if result.warnings:
        lines.append("")
        for i, w in enumerate(result.warnings, 1):
            lines.append(f"[{i}] {w.message}")
    if width is not None:  # prose folds at the width, continuation lines indented
        lines = [
            w
            for line in lines
            for w in (
                textwrap.wrap(
                    line,
                    width,
                    subsequent_indent=" " * (len(line) - len(line.lstrip()) + 2),
                    break_on_hyphens=False,
                )
                if len(line) > width and not line.startswith(TABLE_LINE)
                else [line]
            )
        ]
    lines = [line.removeprefix(TABLE_LINE) for line in lines]
    return ("\n".join(lines) + "\n").translate(ASCII)
