"""``regress ci``: the kernel-bump gate over several workloads, as core code.

Each workload is one ``pipeline.compare`` (capture both kernels, diff once with the
CI's thresholds and the A/A negative control, render once). Then the gate writes
``summary.json``, ``junit.xml`` (``gate/junit.py``) and ``index.html`` (a jinja2
template rendering the summary). The exit code is data (``CiOutcome.exit_code``):
0 pass, 1 the ``fail_on`` policy tripped, 2 a workload could not be compared or the
``--selftest`` canary was missed.

Core code: never prints or exits; progress goes to a callback.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import regress
from regress.errors import RegressError, UsageError
from regress.gate import pipeline, shard
from regress.gate.controls import AAControl
from regress.gate.junit import junit_xml
from regress.gate.selftest import SelftestOptions, run_selftest
from regress.model.capture import atomic_write_text
from regress.model.events import Event, Progress, ignore
from regress.model.paths import safe_component
from regress.model.result import (
    OUTCOME_KINDS,
    DiffResult,
    Divergence,
    FailOn,
    Thresholds,
    fails,
    status_of,
)
from regress.report.format import fmt_num, fmt_pct
from regress.report.html import render_ci_index
from regress.vm import backend as vm_backend
from regress.vm.backend import DEFAULT_NEW, DEFAULT_OLD, DEFAULT_WORKLOAD, RunOptions

Status = Literal["clean", "divergent", "regression", "error"]

SUMMARY_FORMAT = "regress-ci-summary"
SUMMARY_VERSION = 1
TOP_IN_MESSAGE = 5
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


@dataclass
class CiOptions:
    old: str = DEFAULT_OLD
    new: str = DEFAULT_NEW
    workloads: list[str] = field(default_factory=lambda: [DEFAULT_WORKLOAD])
    fail_on: FailOn = FailOn.regression
    out_dir: Path = Path("reports/ci")
    thresholds: Thresholds = field(default_factory=Thresholds)
    # runs, iterations and the VM shape, as for ``regress run`` (same defaults)
    run: RunOptions = field(default_factory=RunOptions)
    selftest: bool = False  # run the positive control on the new kernel first
    backend: str = "qemu"
    narrow: bool = True  # narrowing pass on workloads that regressed
    shard: tuple[int, int] | None = None  # (I, N): capture only this slice (gate/shard.py)


@dataclass
class CanaryOutcome:
    """``regress selftest`` run inside ``regress ci`` (``--selftest``) on the new kernel."""

    kernel: str
    passed: bool
    message: str
    report: str | None = None  # relative to the CI output directory
    error: str | None = None
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "passed": self.passed,
            "message": self.message,
            "report": self.report,
            "error": self.error,
            "wall_s": round(self.wall_s, 2),
        }


@dataclass
class WorkloadOutcome:
    workload: str  # as given (built-in name or path)
    slug: str  # its directory under the output directory
    status: Status
    failed: bool  # per the fail_on policy (or an error)
    significant: int = 0
    regressions: int = 0
    keys_tested: int = 0
    top: list[dict[str, Any]] = field(default_factory=list)
    aa: AAControl | None = None
    reports: dict[str, str] = field(default_factory=dict)  # kind -> path relative to out_dir
    captures: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    wall_s: float = 0.0

    def message(self) -> str:
        """One line for JUnit and the index: the verdict and the top divergences."""
        if self.error is not None:
            return f"could not compare: {self.error}"
        if self.status == "clean":
            return f"no significant divergence among {self.keys_tested} keys"
        head = (
            f"{self.significant} significant divergence(s), {self.regressions} regression(s) "
            f"among {self.keys_tested} keys"
        )
        tops = "; ".join(t["summary"] for t in self.top[:TOP_IN_MESSAGE])
        return f"{head}: {tops}" if tops else head

    def aa_text(self) -> str:
        aa = self.aa
        if aa is None or aa.false_positives is None:
            return "not run"
        return f"{aa.false_positives} false positive(s) among {aa.keys_tested} keys"

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "slug": self.slug,
            "status": self.status,
            "failed": self.failed,
            "significant": self.significant,
            "regressions": self.regressions,
            "keys_tested": self.keys_tested,
            "top": self.top,
            "aa": self.aa.to_dict() if self.aa is not None else None,
            "aa_text": self.aa_text(),
            "reports": dict(self.reports),
            "captures": dict(self.captures),
            "error": self.error,
            "message": self.message(),
            "wall_s": round(self.wall_s, 2),
        }


@dataclass
class CiOutcome:
    out_dir: Path
    workloads: list[WorkloadOutcome]
    exit_code: int
    index: Path
    summary: Path
    junit: Path
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    canary: CanaryOutcome | None = None


# --------------------------------------------------------------------------- validation


def workload_slug(name: str) -> str:
    """A directory name for a workload given as a built-in name or a .toml path."""
    return safe_component(name)


def validate(opts: CiOptions) -> list[str]:
    """Refuse bad options; returns warnings (e.g. too few runs for the A/A split)."""
    if not opts.workloads:
        raise UsageError("--workload needs at least one workload")
    slugs = [workload_slug(w) for w in opts.workloads]
    dupes = sorted({s for s in slugs if slugs.count(s) > 1})
    if dupes:
        raise UsageError(f"--workload names a workload twice: {', '.join(dupes)}")
    if opts.run.runs < 1:
        raise UsageError("--runs must be at least 1")
    warnings: list[str] = []
    if opts.run.runs < 4:
        warnings.append(
            f"--runs {opts.run.runs}: the A/A negative control splits the old kernel's runs "
            "in two and needs at least 4 runs per kernel to mean anything"
        )
    return warnings


# --------------------------------------------------------------------------- one workload


def row_summary(d: Divergence) -> str:
    mark = " REGRESSION" if d.regression else ""
    if d.kind in OUTCOME_KINDS:
        return (
            f"{d.kind} failures {fmt_pct(d.old.center)} -> {fmt_pct(d.new.center)} of "
            f"iterations{mark}"
        )
    return f"{d.key} {d.cls} {fmt_num(d.old.center)} -> {fmt_num(d.new.center)}/it{mark}"


def top_rows(result: DiffResult, n: int = TOP_IN_MESSAGE) -> list[dict[str, Any]]:
    """The first ``n`` significant rows, as plain data with a one-line summary each."""
    return [
        {
            "key": d.key,
            "class": d.cls,
            "regression": d.regression,
            "old": None if d.old.center != d.old.center else d.old.center,
            "new": None if d.new.center != d.new.center else d.new.center,
            "q": d.q,
            "summary": row_summary(d),
        }
        for d in result.significant[:n]
    ]


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def _one_workload(opts: CiOptions, workload: str, emit: Progress) -> WorkloadOutcome:
    slug = workload_slug(workload)
    ropts = replace(
        opts.run, old=opts.old, new=opts.new, workload=workload, out_dir=opts.out_dir / slug
    )
    started = time.monotonic()
    try:
        comparison = pipeline.compare(
            ropts, opts.thresholds, emit, backend=opts.backend, narrow=opts.narrow
        )
    except RegressError as exc:
        return WorkloadOutcome(
            workload,
            slug,
            "error",
            True,
            error=exc.one_line(),
            wall_s=time.monotonic() - started,
        )
    return _outcome_of(
        opts, workload, comparison.judged, comparison.reports, comparison.captures, started
    )


def _outcome_of(
    opts: CiOptions,
    workload: str,
    judged: pipeline.Judged,
    reports: dict[str, Path],
    captures: dict[str, Path],
    started: float,
) -> WorkloadOutcome:
    """A compared workload's outcome (the same for a run and for merged shards)."""
    result = judged.result
    return WorkloadOutcome(
        workload=workload,
        slug=workload_slug(workload),
        status=status_of(result),
        failed=fails(result, opts.fail_on),
        significant=len(result.significant),
        regressions=len(result.regressions),
        keys_tested=result.keys_tested,
        top=top_rows(result),
        aa=judged.aa,
        reports={k: _rel(p, opts.out_dir) for k, p in reports.items()},
        captures={k: _rel(p, opts.out_dir) for k, p in captures.items()},
        wall_s=time.monotonic() - started,
    )


# --------------------------------------------------------------------------- the whole run


def exit_code(outcomes: list[WorkloadOutcome], canary: CanaryOutcome | None = None) -> int:
    """2 when something could not be compared or the canary was missed (the gate is blind)."""
    if any(o.status == "error" for o in outcomes) or (canary is not None and not canary.passed):
        return EXIT_ERROR
    if any(o.failed for o in outcomes):
        return EXIT_FAIL
    return EXIT_PASS


def run_ci(opts: CiOptions, progress: Progress = ignore) -> CiOutcome:
    """Every workload on both kernels; reports, index, summary, JUnit; never raises per workload.

    A workload that cannot be compared (VM failure, workload failure) is recorded as an
    error and the others still run, so one broken workload does not hide the rest.
    """
    warnings = validate(opts)
    if opts.shard is not None:
        raise UsageError("a shard captures only: use run_shard (regress ci --shard I/N)")
    started = time.monotonic()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    canary = _canary(opts, progress) if opts.selftest else None
    outcomes: list[WorkloadOutcome] = []
    for i, workload in enumerate(opts.workloads):
        progress(Event("workload", workload=workload, index=i, count=len(opts.workloads)))
        wo = _one_workload(opts, workload, progress)
        outcomes.append(wo)
        progress(Event("workload_done", workload=workload, status=wo.status, message=wo.message()))
    return _finish(opts, outcomes, warnings, canary, started)


def _finish(
    opts: CiOptions,
    outcomes: list[WorkloadOutcome],
    warnings: list[str],
    canary: CanaryOutcome | None,
    started: float,
) -> CiOutcome:
    """Verdicts into summary.json, junit.xml and index.html (a run's or merged shards')."""
    for wo in outcomes:
        workload = wo.workload
        for w in wo.aa.warnings if wo.aa is not None else []:
            if w not in warnings:
                warnings.append(w)
        if wo.aa is not None and wo.aa.false_positives:
            warnings.append(
                f"{workload}: the A/A control found {wo.aa.false_positives} significant "
                f"row(s) between halves of the same kernel's runs "
                f"({', '.join(wo.aa.significant_keys[:5])}): rows like these in the real "
                "comparison may be noise"
            )
    code = exit_code(outcomes, canary)
    wall = time.monotonic() - started
    created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary_path = opts.out_dir / "summary.json"
    junit = opts.out_dir / "junit.xml"
    index = opts.out_dir / "index.html"
    doc = summary_doc(opts, outcomes, code, warnings, created, wall, canary)
    atomic_write_text(summary_path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    atomic_write_text(junit, junit_xml(doc))
    atomic_write_text(index, render_ci_index(doc))
    return CiOutcome(
        opts.out_dir, outcomes, code, index, summary_path, junit, warnings, wall, canary
    )


# --------------------------------------------------------------------------- shards


def _vm_shape(run: RunOptions) -> dict[str, Any]:
    return {"cpus": run.cpus, "mem_mb": run.mem_mb, "accel": run.accel, "append": run.append}


def run_shard(opts: CiOptions, progress: Progress = ignore) -> tuple[Path, list[str], int]:
    """This shard's slice of the CI run, captured (no diff, no verdict: ``merge_ci`` makes
    them once); returns the manifest, the workloads it took, and 0 or 2 (a capture
    failed, recorded in the manifest for the merge to report)."""
    validate(opts)
    assert opts.shard is not None
    if opts.selftest:
        raise UsageError("--selftest runs once, in an unsharded job: not with --shard")
    i, n = opts.shard
    mine = shard.slice_of(opts.workloads, opts.run.runs, opts.run.iterations, i, n)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    captures: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    for k, workload in enumerate(mine):
        progress(Event("workload", workload=workload, index=k, count=len(mine)))
        ropts = replace(
            opts.run,
            old=opts.old,
            new=opts.new,
            workload=workload,
            out_dir=opts.out_dir / workload_slug(workload),
        )
        try:
            pair = vm_backend.get(opts.backend).capture_pair(ropts, progress)
        except RegressError as exc:
            errors[workload] = exc.one_line()
            progress(
                Event("workload_done", workload=workload, status="error", message=errors[workload])
            )
            continue
        captures[workload] = {k2: _rel(p, opts.out_dir) for k2, p in pair.captures.items()}
        progress(Event("workload_done", workload=workload, status="captured", message="captured"))
    doc = shard.manifest(
        shard=opts.shard,
        mine=mine,
        workloads=opts.workloads,
        old=opts.old,
        new=opts.new,
        runs=opts.run.runs,
        iterations=opts.run.iterations,
        vm_shape=_vm_shape(opts.run),
        thresholds=opts.thresholds.as_dict(),
        fail_on=str(opts.fail_on),
        captures=captures,
        errors=errors,
    )
    return shard.write_manifest(opts.out_dir, doc), mine, EXIT_ERROR if errors else EXIT_PASS


def merge_ci(
    dirs: list[Path],
    out_dir: Path,
    progress: Progress = ignore,
    *,
    fail_on: FailOn | None = None,
) -> CiOutcome:
    """The shards of one CI run, merged: captures combined run by run, then every
    verdict computed once -- the same summary, reports, index and JUnit as one run."""
    started = time.monotonic()
    shards = shard.read_shards(dirs)
    first = shards[0].doc
    th = Thresholds(**first["thresholds"])
    opts = CiOptions(
        old=first["old"],
        new=first["new"],
        workloads=list(first["workloads"]),
        fail_on=fail_on or FailOn(first["fail_on"]),
        out_dir=out_dir,
        thresholds=th,
        run=replace(RunOptions(), runs=int(first["runs"]), iterations=first["iterations"]),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    captured, errors = shard.gather(shards, out_dir)
    warnings = validate(opts)
    outcomes: list[WorkloadOutcome] = []
    for k, workload in enumerate(opts.workloads):
        progress(Event("workload", workload=workload, index=k, count=len(opts.workloads)))
        t0 = time.monotonic()
        sides = captured.get(workload, {})
        if workload in errors or set(sides) != {"old", "new"}:
            why = errors.get(workload, "no shard captured both kernels")
            outcomes.append(
                WorkloadOutcome(workload, workload_slug(workload), "error", True, error=why)
            )
            continue
        judged = pipeline.judge(sides["old"], sides["new"], th)
        reports = pipeline.render(judged, sides["old"].parent)
        wo = _outcome_of(opts, workload, judged, reports, sides, t0)
        outcomes.append(wo)
        progress(Event("workload_done", workload=workload, status=wo.status, message=wo.message()))
    return _finish(opts, outcomes, warnings, None, started)


def _canary(opts: CiOptions, progress: Progress) -> CanaryOutcome:
    """The positive control on the new kernel, with the CI's thresholds and VM shape."""
    progress(Event("stage", message=f"selftest: injected fault on {opts.new}"))
    st = SelftestOptions(
        kernel=opts.new,
        thresholds=opts.thresholds,
        run=replace(
            SelftestOptions().run,
            cpus=opts.run.cpus,
            mem_mb=opts.run.mem_mb,
            accel=opts.run.accel,
            timeout_s=opts.run.timeout_s,
            parallel=opts.run.parallel,
            out_dir=opts.out_dir / "selftest",
        ),
        backend=opts.backend,
    )
    started = time.monotonic()
    try:
        res = run_selftest(st, progress)
    except RegressError as exc:
        return CanaryOutcome(
            opts.new,
            False,
            f"selftest could not run: {exc.one_line()}",
            error=exc.one_line(),
            wall_s=time.monotonic() - started,
        )
    html_report = res.reports.get("html")
    return CanaryOutcome(
        opts.new,
        res.verdict.passed,
        res.verdict.message(),
        report=_rel(html_report, opts.out_dir) if html_report else None,
        wall_s=res.wall_s,
    )


def diff_junit(judged: pipeline.Judged, fail_on: FailOn, reports: dict[str, str]) -> str:
    """JUnit XML of one comparison of saved captures (``regress diff --junit``): the same
    test case ``regress ci`` writes for a workload, for CI systems without VMs."""
    result = judged.result
    wo = WorkloadOutcome(
        workload=judged.old.workload.name,
        slug=workload_slug(judged.old.workload.name),
        status=status_of(result),
        failed=fails(result, fail_on),
        significant=len(result.significant),
        regressions=len(result.regressions),
        keys_tested=result.keys_tested,
        top=top_rows(result),
        aa=judged.aa,
        reports=reports,
        captures={"old": result.old.path, "new": result.new.path},
    )
    summary = {
        "old": judged.old.kernel.release,
        "new": judged.new.kernel.release,
        "runs": min(len(judged.old.runs), len(judged.new.runs)),
        "fail_on": str(fail_on),
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "workloads": [wo.to_dict()],
        "selftest": None,
    }
    return junit_xml(summary)


def summary_doc(
    opts: CiOptions,
    outcomes: list[WorkloadOutcome],
    code: int,
    warnings: list[str],
    created: str,
    wall_s: float,
    canary: CanaryOutcome | None = None,
) -> dict[str, Any]:
    """``summary.json``: everything the index and the JUnit file show, as plain data."""
    return {
        "format": SUMMARY_FORMAT,
        "version": SUMMARY_VERSION,
        "regress_version": regress.__version__,
        "created_utc": created,
        "old": opts.old,
        "new": opts.new,
        "runs": opts.run.runs,
        "iterations": opts.run.iterations,
        "fail_on": str(opts.fail_on),
        "thresholds": opts.thresholds.as_dict(),
        "exit_code": code,
        "verdict": {0: "pass", 1: "fail", 2: "error"}[code],
        "warnings": list(warnings),
        "wall_s": round(wall_s, 1),
        "workloads": [o.to_dict() for o in outcomes],
        "selftest": canary.to_dict() if canary is not None else None,
    }
