"""``regress selftest``: the positive control -- can this setup see a known regression?

Boots one kernel twice through the pipeline -- control, then with an injected fault in
the new side's guests -- and judges the result. Canaries (``CANARIES``):

* ``lsm`` (default): a BPF-LSM program denies some /proc/<pid>/stat opens by ps
  (``regress.guest.faults``); ``controls.evaluate_canary`` asks whether the differ put
  the symptom (openat EACCES, liveness) at the top;
* ``null`` / ``errno``: a kernel module makes one function misbehave
  (``regress.guest.modfault``: ``find_ge_pid()`` returning NULL early, or
  ``proc_pid_permission()`` returning -EACCES); function returns are traced and
  ``controls.evaluate_culprit`` asks whether that function leads "Where it diverges".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from regress.errors import UsageError
from regress.gate import pipeline
from regress.gate.controls import (
    AAControl,
    CanaryVerdict,
    evaluate_canary,
    evaluate_culprit,
    evaluate_origin,
)
from regress.guest.faults import FaultSpec
from regress.guest.modfault import ReturnFault
from regress.model.capture import Capture, atomic_write_text
from regress.model.events import Progress, ignore
from regress.model.result import DiffResult, Thresholds
from regress.vm.backend import DEFAULT_NEW, DEFAULT_WORKLOAD, KernelPaths, RunOptions

SELFTEST_RUNS = 4
SELFTEST_ITERATIONS = 10
CANARIES = ("lsm", "null", "errno")
MODULE_FAULT_EVERY = 8  # every 8th matching return: some iterations fail, others pass


def canary_fault(name: str, every: int | None = None) -> FaultSpec | ReturnFault:
    """The fault of a named canary (``every`` overrides its rate)."""
    if name == "lsm":
        return FaultSpec() if every is None else FaultSpec(every=every)
    n = MODULE_FAULT_EVERY if every is None else every
    if name == "null":
        return ReturnFault("find_ge_pid", "null", every=n)
    if name == "errno":
        return ReturnFault("proc_pid_permission", "EACCES", every=n)
    raise UsageError(f"canary {name!r}: expected one of {', '.join(CANARIES)}")


@dataclass
class SelftestOptions:
    kernel: str = DEFAULT_NEW
    workload: str = DEFAULT_WORKLOAD
    fault: FaultSpec | ReturnFault = field(default_factory=FaultSpec)
    thresholds: Thresholds = field(default_factory=Thresholds)
    top_n: int | None = None
    paths: KernelPaths | None = None  # an own build instead of ``kernel``
    # VM shape and runs, as for ``regress run`` (same defaults, so captures compare)
    run: RunOptions = field(
        default_factory=lambda: RunOptions(
            runs=SELFTEST_RUNS,
            iterations=SELFTEST_ITERATIONS,
            out_dir=Path("reports/selftest"),
        )
    )
    backend: str = "qemu"
    narrow: bool = False  # run the narrowing pass on the canary (the LSM canary's origin)


@dataclass
class SelftestOutcome:
    verdict: CanaryVerdict
    aa: AAControl
    result: DiffResult
    out_dir: Path
    reports: dict[str, Path]
    captures: dict[str, Path]
    wall_s: float


def judge(
    result: DiffResult,
    fault: FaultSpec | ReturnFault,
    faulted: Capture,
    *,
    expect_liveness: bool,
    top_n: int | None,
    narrowed: bool = False,
) -> CanaryVerdict:
    """The canary's verdict: the symptom at the top (LSM) or the culprit first (module)."""
    if isinstance(fault, ReturnFault):
        return evaluate_culprit(result, fault, faulted=faulted)
    verdict = evaluate_canary(
        result, fault, faulted=faulted, expect_liveness=expect_liveness, top_n=top_n
    )
    if narrowed:  # the errno must also be traced to its birth on the LSM hook path
        problems = evaluate_origin(result, fault)
        if problems:
            return replace(verdict, passed=False, problems=[*verdict.problems, *problems])
        first = result.culprits[0]
        path = " <- ".join(first.path[:3])
        detail = f"openat {fault.errno} born in {first.function}()" + (
            f" <- {path}" if path else ""
        )
        return replace(verdict, detail=detail)
    return verdict


def evaluate_selftest(
    control: Capture,
    faulted: Capture,
    fault: FaultSpec | ReturnFault,
    thresholds: Thresholds,
    *,
    top_n: int | None = None,
    control_path: str = "control",
    faulted_path: str = "faulted",
) -> tuple[CanaryVerdict, pipeline.Judged]:
    """The selftest's judgement on two captures (no VMs): canary + A/A on the control."""
    judged = pipeline.judge_captures(
        control, faulted, thresholds, old_path=control_path, new_path=faulted_path
    )
    expect_liveness = bool(control.workload.spec.get("liveness"))
    verdict = judge(judged.result, fault, faulted, expect_liveness=expect_liveness, top_n=top_n)
    return verdict, judged


def run_selftest(opts: SelftestOptions, progress: Progress = ignore) -> SelftestOutcome:
    """Boot ``opts.kernel`` twice (control, then with the fault), diff, judge the canary."""
    started = time.monotonic()
    ropts = replace(
        opts.run,
        old=opts.kernel,
        new=opts.kernel,
        old_paths=opts.paths,
        new_paths=opts.paths,
        workload=opts.workload,
        fault=opts.fault.to_job(),
        # a module canary is judged on what its function returns
        function_returns=opts.run.function_returns or isinstance(opts.fault, ReturnFault),
    )
    comparison = pipeline.compare(
        ropts, opts.thresholds, progress, backend=opts.backend, narrow=opts.narrow
    )
    judged = comparison.judged
    expect_liveness = bool(judged.old.workload.spec.get("liveness"))
    verdict = judge(
        judged.result,
        opts.fault,
        judged.new,
        expect_liveness=expect_liveness,
        top_n=opts.top_n,
        narrowed=opts.narrow,
    )
    atomic_write_text(
        comparison.out_dir / "selftest.json",
        json.dumps(
            {
                "kernel": opts.kernel,
                "workload": opts.workload,
                "runs": ropts.runs,
                "iterations": ropts.iterations,
                "fault": opts.fault.describe(),
                "thresholds": opts.thresholds.as_dict(),
                "verdict": verdict.to_dict(),
                "message": verdict.message(),
                "aa": judged.aa.to_dict(),
            },
            indent=1,
            sort_keys=True,
        )
        + "\n",
    )
    return SelftestOutcome(
        verdict,
        judged.aa,
        judged.result,
        comparison.out_dir,
        comparison.reports,
        {"control": comparison.captures["old"], "faulted": comparison.captures["new"]},
        time.monotonic() - started,
    )
