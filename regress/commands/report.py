"""``regress report`` and ``regress bundle``: a diff rendered as a bug report.

Both load the two captures, run the differ with the same knobs as ``regress
diff`` and hand the result to ``regress.report``. They never gate: the exit
code is 0 whatever the verdict (use ``regress diff --fail-on`` for CI).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from regress.capture import Capture
from regress.cli_app import app, err
from regress.diffmodel import DiffResult
from regress.errors import UsageError


class Format(StrEnum):
    html = "html"
    text = "text"


def _diff(
    old: Path, new: Path, *, force: bool, alpha: float, min_ratio: float, min_delta: float
) -> tuple[DiffResult, Capture, Capture]:
    from regress.differ import diff_captures, load_side
    from regress.stats import Thresholds

    co, cn = load_side(old), load_side(new)
    th = Thresholds(alpha=alpha, min_ratio=min_ratio, min_abs_delta=min_delta)
    result = diff_captures(co, cn, thresholds=th, force=force, old_path=str(old), new_path=str(new))
    return result, co, cn


def _verdict(result: DiffResult) -> str:
    return (
        f"{len(result.significant)} significant divergence(s), "
        f"{len(result.regressions)} regression(s)"
    )


_OLD = typer.Argument(..., help="capture (or bpftrace -f json output) from the old kernel")
_NEW = typer.Argument(..., help="capture (or bpftrace -f json output) from the new kernel")
_FORCE = typer.Option(False, "--force", help="report even if the captures are not comparable")
_ALPHA = typer.Option(0.05, "--alpha", help="FDR level (BH q threshold)")
_RATIO = typer.Option(1.2, "--min-ratio", help="effect gate: minimum new/old ratio")
_DELTA = typer.Option(0.05, "--min-delta", help="effect gate: minimum |delta| per iteration")


@app.command("report")
def report_cmd(
    old: Path = _OLD,
    new: Path = _NEW,
    output: str | None = typer.Option(
        None, "-o", "--output", help="write the report here (text: '-' or omitted = stdout)"
    ),
    fmt: Format = typer.Option(Format.html, "--format", help="html (self-contained) or text"),
    text: bool = typer.Option(False, "--text", help="same as --format text"),
    force: bool = _FORCE,
    alpha: float = _ALPHA,
    min_ratio: float = _RATIO,
    min_delta: float = _DELTA,
) -> int:
    """Render the diff of two captures as a bug report (HTML, or plain text for a list)."""
    from regress.report import render_text, write_reports

    if text:
        fmt = Format.text
    if fmt is Format.html and output in (None, "-"):
        raise UsageError("the HTML report needs a file: pass -o FILE.html")
    result, co, cn = _diff(
        old, new, force=force, alpha=alpha, min_ratio=min_ratio, min_delta=min_delta
    )
    if output in (None, "-"):  # text only: HTML without -o was refused above
        sys.stdout.write(render_text(result, co, cn))
        sys.stdout.flush()
        return 0
    assert output is not None
    target = Path(output)
    write_reports(
        result,
        co,
        cn,
        html=target if fmt is Format.html else None,
        text=target if fmt is Format.text else None,
    )
    err.print(f"wrote {output} ({_verdict(result)})", markup=False)
    return 0


@app.command("bundle")
def bundle_cmd(
    old: Path = _OLD,
    new: Path = _NEW,
    output: Path = typer.Option(..., "-o", "--output", help="the .tar.gz to write"),
    force: bool = _FORCE,
    alpha: float = _ALPHA,
    min_ratio: float = _RATIO,
    min_delta: float = _DELTA,
) -> int:
    """Pack both captures, the HTML and text reports and a sha256 manifest into a tar.gz."""
    from regress.report import render_html, render_text, write_bundle

    if not output.name.endswith((".tar.gz", ".tgz")):
        raise UsageError(f"{output}: the bundle name must end in .tar.gz or .tgz")
    result, co, cn = _diff(
        old, new, force=force, alpha=alpha, min_ratio=min_ratio, min_delta=min_delta
    )
    manifest = write_bundle(
        output,
        old_path=old,
        new_path=new,
        html=render_html(result, co, cn),
        text=render_text(result, co, cn),
        meta={
            "old_kernel": co.kernel.release,
            "new_kernel": cn.kernel.release,
            "workload": co.workload.name,
            "significant": len(result.significant),
            "regressions": len(result.regressions),
        },
    )
    err.print(
        f"wrote {output}: {len(manifest['files'])} files + manifest.json ({_verdict(result)})",
        markup=False,
    )
    return 0
