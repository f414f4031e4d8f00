"""``regress diff OLD NEW``: ranked divergences between two captures.

Exit codes (``--fail-on``): 0 nothing significant (or ``none``), 1 significant
divergences (``any``) or regressions (``regression``), 2 usage/input error or
incomparable captures.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from regress.cli import options as o
from regress.cli.app import app
from regress.diff.differ import load_side
from regress.errors import UsageError
from regress.gate.ci import diff_junit
from regress.gate.pipeline import judge_captures
from regress.model.capture import atomic_write_text
from regress.model.result import FailOn, fails
from regress.report.html import render_html
from regress.report.json import to_json
from regress.report.table import render_table
from regress.report.text import render_text


@app.command("diff")
def diff_cmd(
    old: o.OldCapture,
    new: o.NewCapture,
    json_out: o.JsonOut = None,
    html_out: o.HtmlOut = None,
    text_out: o.TextOut = None,
    top: Annotated[
        int | None, typer.Option("--top", help="show at most N rows (default 20; all with --all)")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="list every key, including unchanged ones")
    ] = False,
    junit_out: Annotated[
        Path | None,
        typer.Option("--junit", help="also write a JUnit XML test case (CI without VMs)"),
    ] = None,
    force: o.Force = False,
    fail_on: o.FailOnOpt = FailOn.any,
    alpha: o.Alpha = o.ALPHA,
    min_ratio: o.MinRatio = o.MIN_RATIO,
    min_delta: o.MinDelta = o.MIN_DELTA,
) -> int:
    """Rank what the new kernel does differently (benchstat-like table).

    Example: regress diff old.json new.json --json diff.json --junit junit.xml
    """
    if top is not None and top < 1:
        raise UsageError("--top must be >= 1")
    th = o.thresholds(alpha, min_ratio, min_delta)
    old_cap, new_cap = load_side(old), load_side(new)
    outputs = {k: v for k, v in (("json", json_out), ("html", html_out), ("text", text_out)) if v}
    if junit_out is not None:
        outputs["junit"] = str(junit_out)
    o.check_outputs(outputs)  # before minutes of diffing: contradictions are refused
    judged = judge_captures(old_cap, new_cap, th, force=force, old_path=str(old), new_path=str(new))
    result = judged.result
    for kind, render in (("html", render_html), ("text", render_text)):
        if outputs.get(kind):
            o.emit_text(render(result, old_cap, new_cap), outputs[kind])
    if json_out is not None:
        o.emit_text(to_json(result), json_out)
    if junit_out is not None:
        reports = {k: v for k, v in (("html", html_out), ("text", text_out)) if v and v != "-"}
        atomic_write_text(junit_out, diff_junit(judged, fail_on, reports))
    if "-" not in outputs.values():  # the table, unless stdout carries one of the outputs
        sys.stdout.write(render_table(result, top=top, show_all=show_all, width=o.out_width()))
    sys.stdout.flush()
    return 1 if fails(result, fail_on) else 0
