"""``regress ci`` (kernel-bump gate) and ``regress selftest`` (positive + negative control).

``regress ci`` exit codes: 0 pass; 1 the ``--fail-on`` policy tripped on some workload;
2 a workload could not be compared (details in junit.xml / summary.json), the
``--selftest`` canary was missed, or bad usage.
``regress selftest`` exits 0 when the injected fault was ranked at the top, 1 when the
canary was missed (the detector cannot be trusted on this setup), like any other
error otherwise.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from regress.cli import options as o
from regress.cli.app import app, err, out
from regress.cli.progress import log_lines
from regress.errors import UsageError
from regress.gate.ci import CiOptions, CiOutcome, merge_ci, run_ci, run_shard
from regress.gate.kcidb import ORIGIN_RE, kcidb_doc
from regress.gate.selftest import (
    MODULE_FAULT_EVERY,
    SELFTEST_ITERATIONS,
    SELFTEST_RUNS,
    SelftestOptions,
    canary_fault,
    run_selftest,
)
from regress.gate.shard import parse_shard
from regress.guest.faults import FAULT_ERRNOS, FaultSpec
from regress.guest.modfault import ReturnFault
from regress.model.capture import atomic_write_text
from regress.model.result import FailOn
from regress.vm.backend import KernelPaths, RunOptions


def _split(values: list[str] | None) -> list[str]:
    """Repeated and/or comma-separated values."""
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


KcidbOut = Annotated[
    Path | None,
    typer.Option("--kcidb", help="also write the comparison as KCIDB I/O JSON (KernelCI)"),
]
KcidbOrigin = Annotated[
    str, typer.Option("--kcidb-origin", help="KCIDB origin: the submitting CI system's name")
]
KcidbUrl = Annotated[
    str | None,
    typer.Option("--kcidb-url", help="where the output directory will be published (links)"),
]


def _check_kcidb(origin: str, url: str | None) -> None:
    """Before any work: KCIDB would refuse these."""
    if not ORIGIN_RE.match(origin):
        raise UsageError(f"--kcidb-origin {origin[:40]!r}: lowercase letters, digits and _ only")
    if url is not None and not url.startswith(("https://", "http://")):
        raise UsageError(f"--kcidb-url {url[:60]!r}: expected an http(s):// URL")


def _write_kcidb(outcome: CiOutcome, path: Path | None, origin: str, url: str | None) -> None:
    if path is None:
        return
    summary = json.loads(outcome.summary.read_text())
    try:
        doc = kcidb_doc(summary, origin=origin, base_url=url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    err.print(f"regress: KCIDB I/O JSON written to {path}", markup=False)


@app.command("ci")
def ci_cmd(
    old: o.OldKernel = o.OLD,
    new: o.NewKernel = o.NEW,
    workloads: Annotated[
        list[str] | None,
        typer.Option(
            "--workload",
            "--workloads",
            "-w",
            help="built-in names or .toml specs (repeatable or comma-separated; default: ps-loop)",
        ),
    ] = None,
    runs: o.Runs = o.RUNS,
    iterations: o.Iterations = None,
    fail_on: o.FailOnOpt = FailOn.regression,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--output", "--out", "-o", help="output directory (index.html, junit.xml, ...)"
        ),
    ] = Path("reports/ci"),
    selftest: Annotated[
        bool,
        typer.Option(
            "--selftest",
            help="first run the positive control (injected fault) "
            "on the new kernel; a missed canary makes the run exit 2",
        ),
    ] = False,
    alpha: o.Alpha = o.ALPHA,
    min_ratio: o.MinRatio = o.MIN_RATIO,
    min_delta: o.MinDelta = o.MIN_DELTA,
    accel: o.Accel = o.ACCEL,
    cpus: o.Cpus = None,
    mem: o.Mem = o.MEM,
    timeout: o.Timeout = None,
    parallel: o.Parallel = o.PARALLEL,
    narrow: o.Narrow = True,
    backend: o.Backend = o.BACKEND,
    kcidb: KcidbOut = None,
    kcidb_origin: KcidbOrigin = "regress",
    kcidb_url: KcidbUrl = None,
    shard_spec: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="I/N: capture only this deterministic slice of the workloads (a CI matrix "
            "job); verdicts come from 'regress merge' over all N outputs",
        ),
    ] = None,
) -> int:
    """Kernel-bump gate: every workload on both kernels, reports + index + JUnit, exit 0/1/2.

    Example: regress ci --old debian:6.1.0-47-cloud-amd64
    --new debian:6.1.0-56-cloud-amd64 --workloads ps-loop,file-io --out ci-out
    """
    _check_kcidb(kcidb_origin, kcidb_url)
    run = o.with_vm_shape(
        RunOptions(runs=runs, iterations=iterations),
        cpus=cpus,
        mem=mem,
        accel=accel,
        timeout=timeout,
        parallel=parallel,
    )
    names = [o.WORKLOAD] if workloads is None else _split(workloads)
    if not names:
        raise UsageError("--workload needs at least one workload name")
    opts = CiOptions(
        old=old,
        new=new,
        workloads=names,
        fail_on=fail_on,
        out_dir=out_dir,
        thresholds=o.thresholds(alpha, min_ratio, min_delta),
        run=run,
        selftest=selftest,
        backend=backend,
        narrow=narrow,
    )
    if shard_spec is not None:
        opts = replace(opts, shard=parse_shard(shard_spec))
        path, mine, code = run_shard(opts, log_lines)
        out.print(
            f"regress ci: shard {shard_spec}: captured {', '.join(mine) or 'nothing'}; {path} "
            "(merge all shards with regress merge)",
            markup=False,
        )
        return code
    outcome = run_ci(opts, log_lines)
    _write_kcidb(outcome, kcidb, kcidb_origin, kcidb_url)
    return _report_outcome(outcome)


def _report_outcome(outcome: CiOutcome) -> int:
    if outcome.canary is not None:
        c = outcome.canary
        (out if c.passed else err).print(
            f"{'ok' if c.passed else 'FAIL':<4} selftest on {c.kernel}: {c.message}", markup=False
        )
    for w in outcome.warnings:
        err.print(f"regress ci: warning: {w}", markup=False)
    for wo in outcome.workloads:
        mark = "FAIL" if wo.failed else "ok"
        out.print(f"{mark:<4} {wo.workload}: {wo.message()}", markup=False)
    verdict = {0: "pass", 1: "FAIL", 2: "ERROR"}[outcome.exit_code]
    out.print(
        f"regress ci: {verdict} (exit {outcome.exit_code}); {outcome.index}, "
        f"{outcome.junit}, {outcome.summary} ({outcome.wall_s:.0f} s)",
        markup=False,
    )
    return outcome.exit_code


@app.command("merge")
def merge_cmd(
    shards: Annotated[list[Path], typer.Argument(help="the output directories of all N shards")],
    out_dir: Annotated[
        Path,
        typer.Option("--output", "-o", help="output directory (index.html, junit.xml, ...)"),
    ] = Path("reports/ci"),
    fail_on: Annotated[
        FailOn | None,
        typer.Option("--fail-on", help="override the shards' policy: any, regression or none"),
    ] = None,
    kcidb: KcidbOut = None,
    kcidb_origin: KcidbOrigin = "regress",
    kcidb_url: KcidbUrl = None,
) -> int:
    """Merge the shards of one 'regress ci --shard I/N' run: captures run by run, then
    every verdict once -- the summary, reports, index and JUnit of one unsharded run.

    Example: regress merge shard-1 shard-2 shard-3 -o ci-out
    """
    _check_kcidb(kcidb_origin, kcidb_url)
    outcome = merge_ci(list(shards), out_dir, log_lines, fail_on=fail_on)
    _write_kcidb(outcome, kcidb, kcidb_origin, kcidb_url)
    return _report_outcome(outcome)


@app.command("selftest")
def selftest_cmd(
    kernel: Annotated[
        str, typer.Option("--kernel", help="the kernel to test on (debian:<release>)")
    ] = o.NEW,
    kernel_image: Annotated[
        Path | None, typer.Option("--kernel-image", help="own build: bzImage (instead of --kernel)")
    ] = None,
    modules: Annotated[
        Path | None,
        typer.Option("--modules", help="own build: its lib/modules/<release> directory"),
    ] = None,
    headers: Annotated[
        Path | None, typer.Option("--headers", help="own build: its headers/build tree (for bcc)")
    ] = None,
    append: o.Append = None,
    workload: Annotated[
        str, typer.Option("--workload", "-w", help="workload whose process the fault targets")
    ] = o.WORKLOAD,
    runs: Annotated[int, typer.Option("--runs", help="runs per boot")] = SELFTEST_RUNS,
    iterations: Annotated[
        int, typer.Option("--iterations", help="iterations per run")
    ] = SELFTEST_ITERATIONS,
    fault_comm: Annotated[
        str, typer.Option("--fault-comm", help="process name whose /proc/<pid>/<file> opens fail")
    ] = "ps",
    fault_file: Annotated[str, typer.Option("--fault-file", help="the /proc/<pid>/ file")] = "stat",
    canary: Annotated[
        str,
        typer.Option(
            "--canary",
            help="lsm: BPF-LSM denies /proc/<pid>/<file> opens; null: a module makes "
            "find_ge_pid() return NULL early; errno: a module makes proc_pid_permission() "
            "return -EACCES (null/errno check that the function leads 'Where it diverges')",
        ),
    ] = "lsm",
    fault_every: Annotated[
        int | None,
        typer.Option(
            "--fault-every",
            help=f"fault every Nth matching call (default: 2 for lsm, {MODULE_FAULT_EVERY} "
            "for the module canaries)",
        ),
    ] = None,
    fault_errno: Annotated[
        str, typer.Option("--fault-errno", help=f"one of {', '.join(sorted(FAULT_ERRNOS))}")
    ] = "EACCES",
    top_n: Annotated[
        int | None,
        typer.Option(
            "--top", help="expected rows must be within the top N (default: exactly the top rows)"
        ),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--output", "--out", "-o", help="output directory")
    ] = Path("reports/selftest"),
    alpha: o.Alpha = o.ALPHA,
    min_ratio: o.MinRatio = o.MIN_RATIO,
    min_delta: o.MinDelta = o.MIN_DELTA,
    accel: o.Accel = o.ACCEL,
    cpus: o.Cpus = None,
    mem: o.Mem = o.MEM,
    timeout: o.Timeout = None,
    parallel: o.Parallel = o.PARALLEL,
    narrow: o.Narrow = False,
    backend: o.Backend = o.BACKEND,
) -> int:
    """Positive control: boot one kernel twice, the second time with an injected fault
    (BPF-LSM denies some /proc/<pid>/stat opens by ps), and check the differ ranks it first.

    Example: regress selftest --canary null
    """
    fault: FaultSpec | ReturnFault
    if canary == "lsm":
        fault = FaultSpec(
            comm=fault_comm,
            name=fault_file,
            every=2 if fault_every is None else fault_every,
            errno=fault_errno,
        )
    else:
        fault = canary_fault(canary, fault_every)
    paths = None
    if kernel_image is not None or modules is not None or headers is not None:
        if kernel_image is None or modules is None:
            raise UsageError("an own kernel build needs both --kernel-image and --modules")
        paths = KernelPaths(kernel_image, modules, headers)
        kernel = str(kernel_image)
    run = o.with_vm_shape(
        replace(
            SelftestOptions().run,
            runs=runs,
            iterations=iterations,
            out_dir=out_dir,
            append=list(append or []),
        ),
        cpus=cpus,
        mem=mem,
        accel=accel,
        timeout=timeout,
        parallel=parallel,
    )
    opts = SelftestOptions(
        kernel=kernel,
        paths=paths,
        workload=workload,
        fault=fault,
        thresholds=o.thresholds(alpha, min_ratio, min_delta),
        top_n=top_n,
        run=run,
        backend=backend,
        narrow=narrow,
    )
    err.print(f"regress selftest: fault: {fault.describe()}", markup=False)
    outcome = run_selftest(opts, log_lines)
    aa = outcome.aa
    aa_text = (
        "not run"
        if aa.false_positives is None
        else f"{aa.false_positives} false positive(s) among {aa.keys_tested} keys "
        f"({aa.runs_a} vs {aa.runs_b} runs)"
    )
    for w in aa.warnings:
        err.print(f"regress selftest: warning: {w}", markup=False)
    report = outcome.reports.get("html")
    if outcome.verdict.passed:
        out.print(
            f"regress selftest: PASS: {outcome.verdict.message()}; A/A control: "
            f"{aa_text}; {report} ({outcome.wall_s:.0f} s)",
            markup=False,
        )
        return 0
    err.print(f"regress selftest: FAILED: {outcome.verdict.message()}", markup=False)
    err.print(
        f"regress selftest: the differ did not rank a known injected fault at the top on "
        f"{kernel}; do not trust its verdicts on this setup. Report: {report}",
        markup=False,
    )
    return 1
