"""``regress report`` and ``regress bundle``: a diff rendered as a bug report.

Both load the two captures, run the differ with the same knobs as ``regress
diff`` and hand the result to ``regress.report``. They never gate: the exit
code is 0 whatever the verdict (use ``regress diff --fail-on`` for CI).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from regress.cli import options as o
from regress.cli.app import app, err
from regress.errors import UsageError
from regress.model.capture import Capture
from regress.model.result import DiffResult, Thresholds


class Format(StrEnum):
    html = "html"
    text = "text"


def _diff(
    old: Path, new: Path, *, force: bool, th: Thresholds
) -> tuple[DiffResult, Capture, Capture]:
    from regress.diff.differ import load_side
    from regress.gate.pipeline import judge_captures

    co, cn = load_side(old), load_side(new)
    judged = judge_captures(co, cn, th, force=force, old_path=str(old), new_path=str(new))
    return judged.result, co, cn


def _verdict(result: DiffResult) -> str:
    return (
        f"{len(result.significant)} significant divergence(s), "
        f"{len(result.regressions)} regression(s)"
    )


@app.command("report")
def report_cmd(
    old: o.OldCapture,
    new: o.NewCapture,
    output: str | None = typer.Option(
        None, "-o", "--output", help="write the report here, in --format (default html)"
    ),
    fmt: Format | None = typer.Option(
        None, "--format", help="format of -o: html (self-contained, the default) or text"
    ),
    html_out: o.HtmlOut = None,
    text_out: o.TextOut = None,
    force: o.Force = False,
    alpha: o.Alpha = o.ALPHA,
    min_ratio: o.MinRatio = o.MIN_RATIO,
    min_delta: o.MinDelta = o.MIN_DELTA,
) -> int:
    """Render the diff of two captures as a bug report (HTML, or plain text for a list).

    Example: regress report old.json new.json -o reports/bug.html --text reports/bug.txt
    """
    from regress.report import render_html, render_text

    targets: dict[str, str] = {}
    if output is not None:
        targets[(fmt or Format.html).value] = output
    elif fmt is not None:
        raise UsageError("--format sets the format of -o: pass -o PATH (or --html/--text)")
    for kind, dest in (("html", html_out), ("text", text_out)):
        if dest is None:
            continue
        if kind in targets:
            raise UsageError(f"-o and --{kind} both ask for the {kind} report: pass one of them")
        targets[kind] = dest
    if not targets:
        raise UsageError("nothing to write: pass -o FILE.html, --html PATH|- or --text PATH|-")
    o.check_outputs(targets)
    th = o.thresholds(alpha, min_ratio, min_delta)
    result, co, cn = _diff(old, new, force=force, th=th)
    render = {"html": render_html, "text": render_text}
    for kind, dest in sorted(targets.items()):
        o.emit_text(render[kind](result, co, cn), dest)
        if dest != "-":
            err.print(f"wrote {dest} ({_verdict(result)})", markup=False)
    return 0


@app.command("bundle")
def bundle_cmd(
    old: o.OldCapture,
    new: o.NewCapture,
    output: Path = typer.Option(..., "-o", "--output", help="the .tar.gz to write"),
    force: o.Force = False,
    alpha: o.Alpha = o.ALPHA,
    min_ratio: o.MinRatio = o.MIN_RATIO,
    min_delta: o.MinDelta = o.MIN_DELTA,
) -> int:
    """Pack both captures, the HTML and text reports and a sha256 manifest into a tar.gz.

    Example: regress bundle old.json new.json -o bug.tar.gz
    """
    from regress.model.paths import safe_component
    from regress.report import render_html, render_text, write_bundle
    from regress.report.repro import repro_script
    from regress.report.view import build_view

    if not output.name.endswith((".tar.gz", ".tgz")):
        raise UsageError(f"{output}: the bundle name must end in .tar.gz or .tgz")
    th = o.thresholds(alpha, min_ratio, min_delta)
    result, co, cn = _diff(old, new, force=force, th=th)
    steps = [s.command for s in build_view(result, co, cn).repro if s.command]
    # the console logs of the boots that made these captures (regress run's layout)
    logs = sorted(
        {p.resolve() for c in (old, new) for p in Path(c).parent.glob("logs/*.console.log")}
    )
    top = safe_component(
        f"regress-{co.workload.name}-{co.kernel.release}..{cn.kernel.release}", limit=120
    )
    manifest = write_bundle(
        output,
        old_path=old,
        new_path=new,
        html=render_html(result, co, cn),
        text=render_text(result, co, cn),
        repro=repro_script(result, co, cn, steps[-1] if steps else "regress run"),
        logs=logs,
        top=top,
        meta={
            "old_kernel": co.kernel.release,
            "new_kernel": cn.kernel.release,
            "workload": co.workload.name,
            "significant": len(result.significant),
            "regressions": len(result.regressions),
        },
    )
    err.print(
        f"wrote {output}: {top}/ with {len(manifest['files'])} files, SHA256SUMS and "
        f"manifest.json ({_verdict(result)})",
        markup=False,
    )
    return 0
