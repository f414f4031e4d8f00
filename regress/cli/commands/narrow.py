"""``regress narrow OLD NEW``: the narrowing pass, later, from two saved captures.

The kernels, workload, runs, iterations and VM shape come from the captures (so the
second pass compares like the first); own-built kernels need their paths again. Exit
0 when the pass ran (or nothing regressed: nothing to narrow), 2 on bad input.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from regress.cli import options as o
from regress.cli.app import app, err, out
from regress.cli.progress import log_lines
from regress.errors import UsageError
from regress.gate.narrow import narrow
from regress.gate.pipeline import judge
from regress.model.capture import Capture
from regress.model.names import is_syscall_name
from regress.report.format import culprit_lines
from regress.report.write import write_reports
from regress.vm.backend import RunOptions, load_workload


def _kernel_ref(cap: Capture, which: str) -> str:
    release = cap.kernel.release
    if not release.endswith("-cloud-amd64"):
        raise UsageError(
            f"{which} capture's kernel {release} is not a Debian cloud kernel regress can "
            "fetch again",
            hint=f"pass --{which}-kernel/--{which}-modules/--{which}-headers of that build",
        )
    return f"debian:{release}"


def _check_workload(opts: RunOptions, cap: Capture, path: Path) -> None:
    spec = load_workload(opts)
    if spec.spec_hash() != cap.workload.hash:
        raise UsageError(
            f"{path}: captured with a workload {cap.workload.name!r} that differs from "
            f"{opts.workload!r} now (spec hash {cap.workload.hash[:12]} vs "
            f"{spec.spec_hash()[:12]})",
            hint="pass --workload FILE with the workload spec the captures were taken with",
        )


@app.command("narrow")
def narrow_cmd(
    old: o.OldCapture,
    new: o.NewCapture,
    workload: Annotated[
        str | None,
        typer.Option("--workload", "-w", help="workload (default: the captures' built-in one)"),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="output directory (default: OLD's directory)"),
    ] = None,
    old_kernel: o.OldKernelImage = None,
    old_modules: o.OldModules = None,
    old_headers: o.OldHeaders = None,
    new_kernel: o.NewKernelImage = None,
    new_modules: o.NewModules = None,
    new_headers: o.NewHeaders = None,
    syscalls: Annotated[
        str | None,
        typer.Option(
            "--syscalls",
            help="look under these syscalls (comma-separated) instead of the ones the "
            "regression points at; runs even when nothing regressed",
        ),
    ] = None,
    accel: o.Accel = o.ACCEL,
    timeout: o.Timeout = None,
    parallel: o.Parallel = o.PARALLEL,
    alpha: o.Alpha = o.ALPHA,
    min_ratio: o.MinRatio = o.MIN_RATIO,
    min_delta: o.MinDelta = o.MIN_DELTA,
) -> int:
    """Narrow a saved comparison down to kernel functions ('Where it diverges').

    Example: regress narrow reports/ps-loop-x/old.json reports/ps-loop-x/new.json
    --syscalls getdents64
    """
    th = o.thresholds(alpha, min_ratio, min_delta)
    chosen = [x.strip() for x in syscalls.split(",") if x.strip()] if syscalls else None
    for name in chosen or []:
        if not is_syscall_name(name):
            raise UsageError(f"--syscalls: {name[:40]!r} is not a syscall name")
    paths = {
        "old": o.kernel_paths(old_kernel, old_modules, old_headers, "old"),
        "new": o.kernel_paths(new_kernel, new_modules, new_headers, "new"),
    }
    first = judge(old, new, th)
    old_cap, new_cap = first.old, first.new
    if not chosen and not first.result.regressions:
        out.print("regress narrow: nothing regressed: no narrowing pass to run", markup=False)
        return 0
    opts = o.with_vm_shape(
        RunOptions(
            old=_kernel_ref(old_cap, "old") if paths["old"] is None else str(old_kernel),
            new=_kernel_ref(new_cap, "new") if paths["new"] is None else str(new_kernel),
            old_paths=paths["old"],
            new_paths=paths["new"],
            workload=workload or old_cap.workload.name,
            runs=len(old_cap.runs),
            iterations=old_cap.iterations_per_run,
            out_dir=out_dir or Path(old).resolve().parent,
        ),
        cpus=old_cap.machine.cpus,
        mem=old_cap.machine.mem_mb,
        accel=accel,
        timeout=timeout,
        parallel=parallel,
    )
    opts = replace(opts, runs=min(len(old_cap.runs), len(new_cap.runs)))
    _check_workload(opts, old_cap, Path(old))
    outcome = narrow(opts, first, th, log_lines, syscalls=chosen)
    if outcome is None:
        out.print("regress narrow: nothing regressed: no narrowing pass to run", markup=False)
        return 0
    assert outcome.result.narrowing is not None
    target = Path(outcome.result.narrowing.captures[0]).parent
    html, text = target / "report.html", target / "report.txt"
    write_reports(outcome.result, old_cap, new_cap, html=html, text=text)
    lines = culprit_lines(outcome.result.culprits)
    if not lines:
        err.print(
            "regress narrow: the pass found no traced function whose returns or calls differ",
            markup=False,
        )
    sys.stdout.write("\n".join(["Where it diverges:", *lines]) + "\n" if lines else "")
    n = outcome.result.narrowing
    out.print(
        f"regress narrow: {n.functions} functions under {', '.join(n.syscalls)} traced on "
        f"both kernels ({n.wall_s:.0f} s); {html}",
        markup=False,
    )
    return 0
