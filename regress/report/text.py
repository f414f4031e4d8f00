"""The plain-text report, shaped for the kernel's "reporting regressions" rules.

Mailing lists read plain text at 72 columns: prose is wrapped here (tables are
the only lines allowed to be wider), the subject is folded like a mail header,
and the regzbot line names the kernel range so the regression tracker picks
it up. No HTML; control characters from captures are made visible.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from regress import __version__
from regress.model.capture import Capture
from regress.model.result import DiffResult
from regress.report.format import ASCII, aligned
from regress.report.html import environment
from regress.report.view import CONFIG_OPEN_MAX, ReportView, RowView, build_view

WIDTH = 72
TOP_ROWS = 10
LABEL_MAX = 40


def wrap(text: str, indent: str = "", hanging: str | None = None) -> list[str]:
    """Prose wrapped to ``WIDTH`` columns; long tokens are broken rather than overflow."""
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=indent,
        subsequent_indent=indent if hanging is None else hanging,
        break_on_hyphens=False,
        break_long_words=True,
    ) or [indent.rstrip()]


def fold_subject(subject: str) -> list[str]:
    """An RFC 5322 folded ``Subject:`` header: continuation lines start with a space."""
    return wrap(f"Subject: {subject}", hanging=" ")


def wrap_command(argv: list[str], indent: str = "    ") -> list[str]:
    """A shell command split at argument boundaries with ``\\`` continuations."""
    import shlex

    words = [shlex.quote(a) for a in argv]
    lines: list[str] = []
    line = indent + "$"
    for w in words:
        if len(line) + 1 + len(w) + 2 > WIDTH and line.strip() != "$":
            lines.append(line + " \\")
            line = indent + "   "
        line += " " + w
    lines.append(line)
    return lines


def _truncate(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """A mail-style fixed-width table, indented two columns, dashes under the headers."""
    return aligned(headers, rows, right, indent="  ", rule=True)


def _div_table(rows: list[RowView]) -> list[str]:
    body = []
    for r in rows:
        marks = "".join(f"[{n}]" for n in r.footnotes)
        body.append(
            [
                str(r.rank),
                _truncate(r.label, LABEL_MAX) + marks,
                r.cls_label + (" *" if r.regression else ""),
                r.old,
                r.new,
                r.ratio,
                r.ci,
                r.q,
            ]
        )
    headers = ["#", "what", "class", "old", "new", "ratio", "95% CI", "q"]
    return table(headers, body, right={0, 3, 4, 5, 7})


@dataclass
class TextView:
    """Pre-wrapped blocks of lines; the template only joins them."""

    v: ReportView
    subject: list[str]
    summary: list[str]
    impact: list[str]
    regzbot: str
    distro_note: list[str]
    table_intro: list[str]
    table: list[str]
    table_more: str
    footnotes: list[str]
    env: list[str]
    config: list[str]
    probes: list[str]
    lost: list[str]
    method: list[str]
    repro: list[str]
    contrasts: list[str]
    narrowing: list[str]  # what the narrowing pass did (wrapped), empty when none ran
    suspects: list[str]  # the suspect upstream changes (heading and list), empty when none
    where: list[str]


def _suspect_lines(v: ReportView) -> list[str]:
    if not v.suspects_title:
        return []
    lines = wrap(v.suspects_title)
    for i, x in enumerate(v.suspects, 1):
        lines += wrap(f"{x.subject} [{x.where}; {x.why}]", indent=f"  {i:>2}. ", hanging="      ")
    return lines


def build_text_view(result: DiffResult, old: Capture, new: Capture) -> TextView:
    v = build_view(result, old, new)
    rng = v.kernel_range
    tag = {"regression": "[REGRESSION]", "changed": "[KERNEL CHANGE]"}.get(
        v.verdict_class, "[NO CHANGE]"
    )
    subject = fold_subject(f"{tag} {v.workload}: {v.subject_summary} ({rng})")

    top = v.rows[:TOP_ROWS]
    lead = (
        f"{v.n_significant} significant divergence(s)"
        if v.n_significant
        else "No divergence is significant under the thresholds below"
    )
    intro = wrap(
        f"{lead}; the top {len(top)} rows, per workload iteration (median over runs), "
        "also listing changes that are certain but small or suggestive, the workload's "
        "own outcomes and probes absent on one side; ratio is new/old, q the "
        "Benjamini-Hochberg adjusted p-value, * marks rows judged regressions:"
        if top
        else f"{lead}."
    )
    more = ""
    if len(v.rows) > len(top):
        more = f"  ({len(v.rows) - len(top)} more in the attached HTML report.)"

    notes: list[str] = []
    for f in v.footnotes:
        notes += wrap(
            f.message,
            indent=f"  [{f.number}] ",
            hanging=" " * (len(str(f.number)) + 5),
        )

    env: list[str] = []
    for e in v.env:
        if e.old != e.new:
            env += wrap(e.label + ":", indent="  ")
            env += wrap(e.old, indent="   old: ", hanging="        ")
            env += wrap(e.new, indent="   new: ", hanging="        ")
        else:
            env += wrap(f"{e.label}: {e.old}", indent="  ", hanging="        ")

    config = wrap(v.config_note, indent="  ")
    if v.config_rows:
        shown_cfg = v.config_rows[:CONFIG_OPEN_MAX]
        config += table(
            ["option", "old", "new"], [[c.option, c.old, c.new] for c in shown_cfg], set()
        )
        if len(v.config_rows) > len(shown_cfg):
            config += wrap(
                f"({len(v.config_rows) - len(shown_cfg)} more in the HTML report.)", indent="  "
            )

    probes = (
        table(
            ["kind", "probe", "old", "new"],
            [[p.kind, p.name, p.old, p.new] for p in v.probes],
            set(),
        )
        if v.probes
        else wrap("Every requested probe attached on both kernels.", indent="  ")
    )
    lost = (
        table(["counter", "old", "new"], [[x.label, x.old, x.new] for x in v.lost], {1, 2})
        if v.lost
        else wrap("No events were lost on either kernel.", indent="  ")
    )

    method = wrap(
        f"{v.method_intro} {v.keys_tested} quantities were tested"
        + (f", false discovery rate controlled at {v.fdr} (Benjamini-Hochberg)." if v.fdr else "."),
        indent="  ",
    )
    for t in v.tests_used:
        method += wrap(t, indent="  - ", hanging="    ")
    if v.thresholds:
        method += wrap(
            "Thresholds: " + ", ".join(f"{t.label}={t.old}" for t in v.thresholds),
            indent="  ",
        )
    method += wrap(
        v.aa
        or "No A/A negative control was run, so the false-positive level of this "
        "setup was not measured.",
        indent="  ",
    )

    contrasts: list[str] = []
    for c in v.contrasts:
        contrasts += wrap(c.title + ":", indent="  ")
        if c.rows:
            contrasts += table(
                ["what", "failing", "passing", "q"], [list(r) for r in c.rows], {1, 2, 3}
            )
        else:
            contrasts += wrap(c.note, indent="  ")
    if v.contrasts:
        contrasts += wrap("Per iteration (mean); " + v.contrasts[0].method + ".", indent="  ")

    repro: list[str] = []
    for i, s in enumerate(v.repro):
        repro += wrap(f"{s.title}{':' if s.argv else '.'}", indent=f"  {i + 1}. ", hanging="     ")
        if s.argv:
            repro += wrap_command(s.argv, indent="     ")

    return TextView(
        v=v,
        subject=subject,
        summary=wrap(v.summary),
        impact=wrap(v.impact),
        regzbot=f"#regzbot introduced: {rng}" if v.verdict_class == "regression" else "",
        distro_note=wrap(v.distro_note) if v.verdict_class != "same" else [],
        table_intro=intro,
        table=_div_table(top),
        table_more=more,
        footnotes=notes,
        env=env,
        config=config,
        probes=probes,
        lost=lost,
        method=method,
        repro=repro,
        contrasts=contrasts,
        narrowing=wrap(v.narrowing, indent="  ", hanging="  ") if v.narrowing else [],
        suspects=_suspect_lines(v),
        where=[
            line
            for c in v.culprits
            for line in wrap(c.title, indent=f"  {c.number}. ", hanging="     ")
            + (
                wrap(f"explains: {c.explains}", indent="     ", hanging="     ")
                if c.explains
                else []
            )
            + [x for e in c.evidence for x in wrap(e, indent="     - ", hanging="       ")]
            + (wrap(f"call path: {c.path}", indent="     ", hanging="       ") if c.path else [])
        ],
    )


def render_text(result: DiffResult, old: Capture, new: Capture) -> str:
    """The plain-text report for ``result`` (the diff of ``old`` against ``new``)."""
    template = environment().get_template("report.txt.j2")
    text = template.render(t=build_text_view(result, old, new), version=__version__)
    return text.translate(ASCII)
