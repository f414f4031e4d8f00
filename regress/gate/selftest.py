"""``regress selftest``: the positive control -- can this setup see a known regression?

Boots one kernel twice through the pipeline -- control, then with the built-in fault
(``regress.guest.faults``) in the new side's guests -- and asks
``controls.evaluate_canary`` whether the differ put the fault's symptom at the top.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from regress.gate import pipeline
from regress.gate.controls import AAControl, CanaryVerdict, evaluate_canary
from regress.guest.faults import FaultSpec
from regress.model.capture import Capture, atomic_write_text
from regress.model.events import Progress, ignore
from regress.model.result import DiffResult, Thresholds
from regress.vm.backend import DEFAULT_NEW, DEFAULT_WORKLOAD, KernelPaths, RunOptions

SELFTEST_RUNS = 4
SELFTEST_ITERATIONS = 10


@dataclass
class SelftestOptions:
    kernel: str = DEFAULT_NEW
    workload: str = DEFAULT_WORKLOAD
    fault: FaultSpec = field(default_factory=FaultSpec)
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


@dataclass
class SelftestOutcome:
    verdict: CanaryVerdict
    aa: AAControl
    result: DiffResult
    out_dir: Path
    reports: dict[str, Path]
    captures: dict[str, Path]
    wall_s: float


def evaluate_selftest(
    control: Capture,
    faulted: Capture,
    fault: FaultSpec,
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
    verdict = evaluate_canary(
        judged.result, fault, faulted=faulted, expect_liveness=expect_liveness, top_n=top_n
    )
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
    )
    comparison = pipeline.compare(ropts, opts.thresholds, progress, backend=opts.backend)
    judged = comparison.judged
    expect_liveness = bool(judged.old.workload.spec.get("liveness"))
    verdict = evaluate_canary(
        judged.result,
        opts.fault,
        faulted=judged.new,
        expect_liveness=expect_liveness,
        top_n=opts.top_n,
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
