"""``regress diff OLD NEW``: ranked divergences between two captures.

Exit codes (``--fail-on``): 0 nothing significant (or ``none``), 1 significant
divergences (``any``) or regressions (``regression``), 2 usage/input error or
incomparable captures.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from regress.capture import atomic_write_text
from regress.cli_app import app
from regress.differ import diff_captures, load_side
from regress.difftable import render_table, to_json
from regress.errors import UsageError
from regress.report.write import write_reports
from regress.stats import Thresholds


class FailOn(StrEnum):
    any = "any"
    regression = "regression"
    none = "none"


@app.command("diff")
def diff_cmd(
    old: Path = typer.Argument(
        ..., help="capture (or bpftrace -f json output) from the old kernel"
    ),
    new: Path = typer.Argument(
        ..., help="capture (or bpftrace -f json output) from the new kernel"
    ),
    json_out: str | None = typer.Option(
        None, "--json", help="also write JSON here ('-': only JSON to stdout)"
    ),
    html_out: Path | None = typer.Option(None, "--html", help="also write the HTML report here"),
    text_out: Path | None = typer.Option(None, "--text", help="also write the text report here"),
    top: int | None = typer.Option(
        None, "--top", help="show at most N rows (default 20; all with --all)"
    ),
    show_all: bool = typer.Option(False, "--all", help="list every key, including unchanged ones"),
    force: bool = typer.Option(
        False, "--force", help="diff even if the captures are not comparable"
    ),
    fail_on: FailOn = typer.Option(
        FailOn.any, "--fail-on", help="exit 1 on: any significant row, regressions, or never"
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="FDR level (BH q threshold)"),
    min_ratio: float = typer.Option(1.2, "--min-ratio", help="effect gate: minimum new/old ratio"),
    min_delta: float = typer.Option(
        0.05, "--min-delta", help="effect gate: minimum |delta| per iteration"
    ),
) -> int:
    """Rank what the new kernel does differently (benchstat-like table)."""
    if top is not None and top < 1:
        raise UsageError("--top must be >= 1")
    th = Thresholds(alpha=alpha, min_ratio=min_ratio, min_abs_delta=min_delta)
    old_cap, new_cap = load_side(old), load_side(new)
    result = diff_captures(
        old_cap,
        new_cap,
        thresholds=th,
        force=force,
        old_path=str(old),
        new_path=str(new),
    )
    write_reports(result, old_cap, new_cap, html=html_out, text=text_out)
    if json_out == "-":
        sys.stdout.write(to_json(result))
    else:
        if json_out is not None:
            atomic_write_text(Path(json_out), to_json(result))  # InputError on failure
        sys.stdout.write(render_table(result, top=top, show_all=show_all))
    sys.stdout.flush()
    if fail_on is FailOn.any and result.significant:
        return 1
    if fail_on is FailOn.regression and result.regressions:
        return 1
    return 0
