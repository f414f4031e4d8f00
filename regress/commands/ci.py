"""``regress ci`` (kernel-bump gate) and ``regress selftest`` (positive + negative control).

``regress ci`` exit codes: 0 pass; 1 the ``--fail-on`` policy tripped on some workload;
2 a workload could not be compared (details in junit.xml / summary.json), the
``--selftest`` canary was missed, or bad usage.
``regress selftest`` exits 0 when the injected fault was ranked at the top, 1 when the
canary was missed (the detector cannot be trusted on this setup), like any other
error otherwise.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from regress.ci import CiOptions, SelftestOptions, run_ci, run_selftest
from regress.cli_app import app, err, out
from regress.errors import UsageError
from regress.faults import FAULT_ERRNOS, FaultSpec
from regress.stats import Thresholds
from regress.vm import orchestrate
from regress.vm.orchestrate import KernelPaths


class FailOn(StrEnum):
    any = "any"
    regression = "regression"
    none = "none"


def _progress(ev: dict[str, Any]) -> None:
    """Plain progress lines on stderr (CI logs have no terminal for progress bars)."""
    kind = ev.get("kind")
    if kind == "workload":
        err.print(f"regress ci: [{int(ev['index']) + 1}/{ev['count']}] {ev['workload']}",
                  markup=False)
    elif kind == "workload-done":
        err.print(f"regress ci: {ev['workload']}: {ev['status']}: {ev['message']}", markup=False)
    elif kind == "stage":
        err.print(f"regress: {ev['message']}", markup=False)
    elif kind == "boot":
        err.print(f"regress: {ev['side']} kernel {ev['release']} boot {int(ev['boot']) + 1}/"
                  f"{ev['boots']} (console log {ev['console_log']})", markup=False)
    elif kind == "run":
        err.print(f"regress: {ev['side']}: {ev['runs_done']}/{ev['runs']} runs", markup=False)


def _thresholds(alpha: float, min_ratio: float, min_delta: float) -> Thresholds:
    return Thresholds(alpha=alpha, min_ratio=min_ratio, min_abs_delta=min_delta)


_ALPHA = typer.Option(0.05, "--alpha", help="FDR level (BH q threshold)")
_RATIO = typer.Option(1.2, "--min-ratio", help="effect gate: minimum new/old ratio")
_DELTA = typer.Option(0.05, "--min-delta", help="effect gate: minimum |delta| per iteration")
_ACCEL = typer.Option("auto", "--accel", help="auto, kvm or tcg")
_CPUS = typer.Option(2, "--cpus", help="guest CPUs")
_MEM = typer.Option(2048, "--mem", help="guest memory (MB)")
_TIMEOUT = typer.Option(None, "--timeout", help="per-boot timeout in seconds")
_PARALLEL = typer.Option(True, "--parallel/--serial",
                         help="boot the two kernels at the same time")


@app.command("ci")
def ci_cmd(
    old: str = typer.Option(orchestrate.DEFAULT_OLD, "--old", help="old kernel (debian:<release>)"),
    new: str = typer.Option(orchestrate.DEFAULT_NEW, "--new", help="new kernel"),
    workloads: str = typer.Option(
        orchestrate.DEFAULT_WORKLOAD, "--workloads", "-w",
        help="comma-separated built-in names or .toml specs"),
    runs: int = typer.Option(orchestrate.DEFAULT_RUNS, "--runs",
                             help="runs per kernel (>= 4 for the A/A control)"),
    iterations: int | None = typer.Option(None, "--iterations",
                                          help="override each spec's iterations"),
    fail_on: FailOn = typer.Option(
        FailOn.regression, "--fail-on",
        help="exit 1 on: regressions (default), any significant row, or never"),
    out_dir: Path = typer.Option(Path("reports/ci"), "--out", "-o",
                                 help="output directory (index.html, junit.xml, ...)"),
    selftest: bool = typer.Option(
        False, "--selftest", help="first run the positive control (injected fault) on the new "
        "kernel; a missed canary makes the run exit 2"),
    alpha: float = _ALPHA,
    min_ratio: float = _RATIO,
    min_delta: float = _DELTA,
    accel: str = _ACCEL,
    cpus: int = _CPUS,
    mem: int = _MEM,
    timeout: float | None = _TIMEOUT,
    parallel: bool = _PARALLEL,
) -> int:
    """Kernel-bump gate: every workload on both kernels, reports + index + JUnit, exit 0/1/2."""
    opts = CiOptions(
        old=old, new=new, workloads=[w.strip() for w in workloads.split(",") if w.strip()],
        runs=runs, iterations=iterations, fail_on=fail_on.value, out_dir=out_dir,
        thresholds=_thresholds(alpha, min_ratio, min_delta), accel=accel, cpus=cpus,
        mem_mb=mem, timeout_s=timeout, parallel=parallel, selftest=selftest,
    )
    outcome = run_ci(opts, _progress)
    if outcome.canary is not None:
        c = outcome.canary
        (out if c.passed else err).print(
            f"{'ok' if c.passed else 'FAIL':<4} selftest on {c.kernel}: {c.message}", markup=False)
    for w in outcome.warnings:
        err.print(f"regress ci: warning: {w}", markup=False)
    for o in outcome.workloads:
        mark = "FAIL" if o.failed else "ok"
        out.print(f"{mark:<4} {o.workload}: {o.message()}", markup=False)
    verdict = {0: "pass", 1: "FAIL", 2: "ERROR"}[outcome.exit_code]
    out.print(f"regress ci: {verdict} (exit {outcome.exit_code}); {outcome.index}, "
              f"{outcome.junit}, {outcome.summary} ({outcome.wall_s:.0f} s)", markup=False)
    return outcome.exit_code


@app.command("selftest")
def selftest_cmd(
    kernel: str = typer.Option(orchestrate.DEFAULT_NEW, "--kernel",
                               help="the kernel to test on (debian:<release>)"),
    kernel_image: Path | None = typer.Option(
        None, "--kernel-image", help="own build: bzImage (instead of --kernel)"),
    modules: Path | None = typer.Option(
        None, "--modules", help="own build: its lib/modules/<release> directory"),
    headers: Path | None = typer.Option(
        None, "--headers", help="own build: its headers/build tree (for bcc)"),
    append: list[str] | None = typer.Option(
        None, "--append", help="extra kernel command-line words, e.g. "
        "lsm=lockdown,capability,yama,bpf when BPF LSM is not enabled by default"),
    workload: str = typer.Option(orchestrate.DEFAULT_WORKLOAD, "--workload", "-w",
                                 help="workload whose process the fault targets"),
    runs: int = typer.Option(4, "--runs", help="runs per boot"),
    iterations: int = typer.Option(10, "--iterations", help="iterations per run"),
    fault_comm: str = typer.Option("ps", "--fault-comm",
                                   help="process name whose /proc/<pid>/<file> opens fail"),
    fault_file: str = typer.Option("stat", "--fault-file", help="the /proc/<pid>/ file"),
    fault_every: int = typer.Option(2, "--fault-every", help="deny every Nth matching open"),
    fault_errno: str = typer.Option("EACCES", "--fault-errno",
                                    help=f"one of {', '.join(sorted(FAULT_ERRNOS))}"),
    top_n: int | None = typer.Option(None, "--top",
                                     help="expected rows must be within the top N (default: "
                                          "exactly the top rows)"),
    out_dir: Path = typer.Option(Path("reports/selftest"), "--out", "-o",
                                 help="output directory"),
    alpha: float = _ALPHA,
    min_ratio: float = _RATIO,
    min_delta: float = _DELTA,
    accel: str = _ACCEL,
    cpus: int = _CPUS,
    mem: int = _MEM,
    timeout: float | None = _TIMEOUT,
    parallel: bool = _PARALLEL,
) -> int:
    """Positive control: boot one kernel twice, the second time with an injected fault
    (BPF-LSM denies some /proc/<pid>/stat opens by ps), and check the differ ranks it first."""
    fault = FaultSpec(comm=fault_comm, name=fault_file, every=fault_every, errno=fault_errno)
    paths = None
    if kernel_image is not None or modules is not None or headers is not None:
        if kernel_image is None or modules is None:
            raise UsageError("an own kernel build needs both --kernel-image and --modules")
        paths = KernelPaths(kernel_image, modules, headers)
        kernel = str(kernel_image)
    opts = SelftestOptions(
        kernel=kernel, paths=paths, append=list(append or []),
        workload=workload, runs=runs, iterations=iterations, fault=fault,
        thresholds=_thresholds(alpha, min_ratio, min_delta), top_n=top_n, out_dir=out_dir,
        accel=accel, cpus=cpus, mem_mb=mem, timeout_s=timeout, parallel=parallel,
    )
    err.print(f"regress selftest: fault: {fault.describe()}", markup=False)
    outcome = run_selftest(opts, _progress)
    aa = outcome.aa
    aa_text = ("not run" if aa.false_positives is None else
               f"{aa.false_positives} false positive(s) among {aa.keys_tested} keys "
               f"({aa.runs_a} vs {aa.runs_b} runs)")
    for w in aa.warnings:
        err.print(f"regress selftest: warning: {w}", markup=False)
    report = outcome.reports.get("html")
    if outcome.verdict.passed:
        out.print(f"regress selftest: PASS: {outcome.verdict.message()}; A/A control: "
                  f"{aa_text}; {report} ({outcome.wall_s:.0f} s)", markup=False)
        return 0
    err.print(f"regress selftest: FAILED: {outcome.verdict.message()}", markup=False)
    err.print(f"regress selftest: the differ did not rank a known injected fault at the top on "
              f"{kernel}; do not trust its verdicts on this setup. Report: {report}",
              markup=False)
    return 1
