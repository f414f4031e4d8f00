"""``regress bisect --good debian:X --bad debian:Y``: the first packaged kernel that broke it.

Exit 0 with the first bad package found, 2 on bad input (kernels of different lines, a
bad kernel that does not differ from the good one), 3/4 when a VM or the environment
fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regress.cli import options as o
from regress.cli.app import app, err, out
from regress.cli.progress import log_lines
from regress.errors import UsageError
from regress.gate.bisect import Criterion, CriterionKind, Step, bisect, summary_lines
from regress.model.paths import REPORTS_DIR, safe_component
from regress.vm.backend import RunOptions, load_workload


@app.command("bisect")
def bisect_cmd(
    good: Annotated[
        str, typer.Option("--good", help="last kernel known good (debian:<release|version>)")
    ],
    bad: Annotated[str, typer.Option("--bad", help="first kernel known bad, same line")],
    workload: Annotated[
        str, typer.Option("--workload", "-w", help="built-in name or .toml")
    ] = o.WORKLOAD,
    key: Annotated[
        str | None,
        typer.Option("--key", help="bad = this row significant (e.g. syscall:openat:EACCES)"),
    ] = None,
    liveness: Annotated[
        bool, typer.Option("--liveness", help="bad = the liveness check fails more often")
    ] = False,
    exit_status: Annotated[
        bool, typer.Option("--exit", help="bad = the command fails more often")
    ] = False,
    runs: o.Runs = o.RUNS,
    iterations: o.Iterations = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="default reports/bisect-<workload>-<good>..<bad>"),
    ] = None,
    json_out: o.JsonOut = None,
    backend: o.Backend = o.BACKEND,
    accel: o.Accel = o.ACCEL,
    cpus: o.Cpus = None,
    mem: o.Mem = o.MEM,
    timeout: o.Timeout = None,
    alpha: o.Alpha = o.ALPHA,
    min_ratio: o.MinRatio = o.MIN_RATIO,
    min_delta: o.MinDelta = o.MIN_DELTA,
) -> None:
    """Search the packaged kernels between --good and --bad for the first bad one.

    Each step compares a kernel against the good one with the statistical verdict (by
    default: any regression row); two kernels are captured per step. Captures are kept
    under the output directory and reused by a later search.

    Example: regress bisect --good debian:6.1.0-47-cloud-amd64
    --bad debian:6.1.0-56-cloud-amd64 -w ps-loop --liveness
    """
    flags: tuple[tuple[CriterionKind, bool], ...] = (
        ("key", key is not None),
        ("liveness", liveness),
        ("exit", exit_status),
    )
    chosen = [k for k, on in flags if on]
    if len(chosen) > 1:
        raise UsageError("give at most one of --key, --liveness, --exit")
    criterion = Criterion(chosen[0] if chosen else "regression", key or "")
    th = o.thresholds(alpha, min_ratio, min_delta)
    opts = o.with_vm_shape(
        RunOptions(workload=workload, runs=runs, iterations=iterations),
        cpus=cpus,
        mem=mem,
        accel=accel,
        timeout=timeout,
        parallel=True,
    )
    name = load_workload(opts).name
    target = out_dir or REPORTS_DIR / safe_component(
        f"bisect-{name}-{good.split(':', 1)[-1]}..{bad.split(':', 1)[-1]}"
    )

    def step_line(s: Step) -> None:
        verdict = "BAD " if s.bad else "good"
        err.print(
            f"regress bisect: step {s.step}: {s.kernel.release} ({s.kernel.upstream}) "
            f"{verdict} -- {s.evidence}",
            markup=False,
        )

    outcome = bisect(
        good, bad, opts, th, criterion, target, log_lines, backend=backend, on_step=step_line
    )
    if json_out is not None:
        o.emit_json(outcome.to_dict(), json_out)
        if json_out == "-":
            return
    for line in summary_lines(outcome):
        out.print(line, markup=False)
