"""``regress ci`` and ``regress selftest``: kernel-bump gate and positive control, as core code.

``run_ci`` runs every workload on both kernels through the ``regress run`` engine
(``vm.orchestrate.run``; no boot logic here), re-diffs each pair with the CI's
thresholds, runs the A/A negative control on the old kernel's runs
(``controls.aa_control``) and puts its false-positive count into every report's
method section, then writes one directory per workload plus ``index.html``
(self-contained, every string escaped), ``summary.json`` and ``junit.xml`` (one
test case per workload). The exit code is data (``CiOutcome.exit_code``), the CLI
returns it: 0 pass, 1 the ``fail_on`` policy tripped, 2 a workload could not be
compared (its error is in the JUnit file and the summary).

``run_selftest`` boots one kernel twice -- control, then with the built-in fault
(``regress.faults``) -- and asks ``controls.evaluate_canary`` whether the differ put
the fault's symptom at the top.

Core code: never prints or exits; progress goes to a callback.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import regress
from regress.capture import Capture, atomic_write_text, load_capture
from regress.controls import AAControl, CanaryVerdict, aa_control, evaluate_canary
from regress.differ import diff_captures
from regress.diffmodel import DiffResult, Divergence
from regress.errors import RegressError, UsageError
from regress.faults import FaultSpec
from regress.stats import Thresholds
from regress.vm import orchestrate
from regress.vm.orchestrate import KernelPaths, RunOptions, RunOutcome

FailOn = Literal["any", "regression", "none"]
FAIL_ON: tuple[str, ...] = ("any", "regression", "none")
Status = Literal["clean", "divergent", "regression", "error"]
Progress = Callable[[dict[str, Any]], None]
Runner = Callable[[RunOptions, Progress], RunOutcome]

SUMMARY_FORMAT = "regress-ci-summary"
SUMMARY_VERSION = 1
TOP_IN_MESSAGE = 5
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class CiOptions:
    old: str = orchestrate.DEFAULT_OLD
    new: str = orchestrate.DEFAULT_NEW
    workloads: list[str] = field(default_factory=lambda: [orchestrate.DEFAULT_WORKLOAD])
    runs: int = orchestrate.DEFAULT_RUNS
    iterations: int | None = None
    fail_on: str = "regression"
    out_dir: Path = Path("reports/ci")
    thresholds: Thresholds = field(default_factory=Thresholds)
    accel: str = "auto"
    cpus: int = 2
    mem_mb: int = 2048
    timeout_s: float | None = None
    parallel: bool = True
    selftest: bool = False  # run the positive control on the new kernel first


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
        return {"kernel": self.kernel, "passed": self.passed, "message": self.message,
                "report": self.report, "error": self.error, "wall_s": round(self.wall_s, 2)}


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
    base = Path(name).stem if name.endswith(".toml") else name
    slug = _SAFE_NAME.sub("_", base).strip("._") or "workload"
    return slug[:60]


def validate(opts: CiOptions) -> list[str]:
    """Refuse bad options; returns warnings (e.g. too few runs for the A/A split)."""
    if opts.fail_on not in FAIL_ON:
        raise UsageError(f"--fail-on must be one of {', '.join(FAIL_ON)} (got {opts.fail_on!r})")
    if not opts.workloads:
        raise UsageError("--workloads needs at least one workload")
    slugs = [workload_slug(w) for w in opts.workloads]
    dupes = sorted({s for s in slugs if slugs.count(s) > 1})
    if dupes:
        raise UsageError(f"--workloads names a workload twice: {', '.join(dupes)}")
    if opts.runs < 1:
        raise UsageError("--runs must be at least 1")
    warnings: list[str] = []
    if opts.runs < 4:
        warnings.append(
            f"--runs {opts.runs}: the A/A negative control splits the old kernel's runs in two "
            "and needs at least 4 runs per kernel to mean anything"
        )
    return warnings


# --------------------------------------------------------------------------- one workload


def _fmt(x: float) -> str:
    if x != x:  # NaN: probe absent
        return "n/a"
    return f"{x:.3g}"


def top_rows(result: DiffResult, n: int = TOP_IN_MESSAGE) -> list[dict[str, Any]]:
    """The first ``n`` significant rows, as plain data with a one-line summary each."""
    out: list[dict[str, Any]] = []
    for d in result.significant[:n]:
        out.append(
            {
                "key": d.key,
                "class": d.cls,
                "regression": d.regression,
                "old": _center(d, "old"),
                "new": _center(d, "new"),
                "q": d.q,
                "summary": _row_summary(d),
            }
        )
    return out


def _center(d: Divergence, side: str) -> float | None:
    v = (d.old if side == "old" else d.new).center
    return None if v != v else v


def _row_summary(d: Divergence) -> str:
    mark = " REGRESSION" if d.regression else ""
    if d.kind == "liveness":
        return (f"liveness failures {d.old.center:.0%} -> {d.new.center:.0%} of "
                f"iterations{mark}")
    return f"{d.key} {d.cls} {_fmt(d.old.center)} -> {_fmt(d.new.center)}/it{mark}"


def _status(result: DiffResult) -> Status:
    if result.regressions:
        return "regression"
    if result.significant:
        return "divergent"
    return "clean"


def _fails(status: Status, fail_on: str) -> bool:
    if status == "error":
        return True
    if fail_on == "any":
        return status in ("divergent", "regression")
    if fail_on == "regression":
        return status == "regression"
    return False


def diff_with_control(
    old: Capture,
    new: Capture,
    thresholds: Thresholds,
    *,
    old_path: str,
    new_path: str,
) -> tuple[DiffResult, AAControl]:
    """The real diff plus the A/A split of the old side, its count set on the result."""
    result = diff_captures(old, new, thresholds=thresholds, old_path=old_path, new_path=new_path)
    aa = aa_control(old, thresholds)
    result.aa_false_positives = aa.false_positives
    return result, aa


def _write_reports(result: DiffResult, old: Capture, new: Capture, wdir: Path) -> dict[str, Path]:
    from regress.report import write_reports

    html_path, text_path = wdir / "report.html", wdir / "report.txt"
    write_reports(result, old, new, html=html_path, text=text_path)
    return {"html": html_path, "text": text_path}


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def _run_options(opts: CiOptions, workload: str, wdir: Path) -> RunOptions:
    return RunOptions(
        old=opts.old, new=opts.new, workload=workload, runs=opts.runs,
        iterations=opts.iterations, out_dir=wdir, accel=opts.accel, cpus=opts.cpus,
        mem_mb=opts.mem_mb, timeout_s=opts.timeout_s, parallel=opts.parallel,
    )


def _one_workload(opts: CiOptions, workload: str, runner: Runner,
                  emit: Progress) -> WorkloadOutcome:
    slug = workload_slug(workload)
    wdir = opts.out_dir / slug
    started = time.monotonic()
    try:
        outcome = runner(_run_options(opts, workload, wdir), emit)
        old_path, new_path = outcome.captures["old"], outcome.captures["new"]
        old, new = load_capture(old_path), load_capture(new_path)
        result, aa = diff_with_control(old, new, opts.thresholds,
                                       old_path=str(old_path), new_path=str(new_path))
        reports = _write_reports(result, old, new, wdir)
    except RegressError as exc:
        return WorkloadOutcome(workload, slug, "error", True, error=exc.one_line(),
                               wall_s=time.monotonic() - started)
    status = _status(result)
    return WorkloadOutcome(
        workload=workload,
        slug=slug,
        status=status,
        failed=_fails(status, opts.fail_on),
        significant=len(result.significant),
        regressions=len(result.regressions),
        keys_tested=result.keys_tested,
        top=top_rows(result),
        aa=aa,
        reports={k: _rel(p, opts.out_dir) for k, p in reports.items()},
        captures={"old": _rel(old_path, opts.out_dir), "new": _rel(new_path, opts.out_dir)},
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


def run_ci(opts: CiOptions, progress: Progress | None = None,
           runner: Runner | None = None) -> CiOutcome:
    """Every workload on both kernels; reports, index, summary, JUnit; never raises per workload.

    A workload that cannot be compared (VM failure, workload failure) is recorded as an
    error and the others still run, so one broken workload does not hide the rest.
    """
    emit: Progress = progress or (lambda _ev: None)
    run_one: Runner = runner or orchestrate.run
    warnings = validate(opts)
    started = time.monotonic()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    canary = _canary(opts, run_one, emit) if opts.selftest else None
    outcomes: list[WorkloadOutcome] = []
    for i, workload in enumerate(opts.workloads):
        emit({"kind": "workload", "workload": workload, "index": i,
              "count": len(opts.workloads)})
        wo = _one_workload(opts, workload, run_one, emit)
        outcomes.append(wo)
        emit({"kind": "workload-done", "workload": workload, "status": wo.status,
              "message": wo.message()})
        for w in wo.aa.warnings if wo.aa is not None else []:
            if w not in warnings:
                warnings.append(w)
        if wo.aa is not None and wo.aa.false_positives:
            warnings.append(
                f"{workload}: the A/A control found {wo.aa.false_positives} significant "
                f"row(s) between halves of the same kernel's runs "
                f"({', '.join(wo.aa.significant_keys[:5])}): rows like these in the real "
                "comparison may be noise")
    code = exit_code(outcomes, canary)
    wall = time.monotonic() - started
    created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = opts.out_dir / "summary.json"
    junit = opts.out_dir / "junit.xml"
    index = opts.out_dir / "index.html"
    atomic_write_text(summary, json.dumps(
        summary_doc(opts, outcomes, code, warnings, created, wall, canary), indent=1,
        sort_keys=True) + "\n")
    atomic_write_text(junit, junit_xml(opts, outcomes, created, canary))
    atomic_write_text(index, index_html(opts, outcomes, code, warnings, created, canary))
    return CiOutcome(opts.out_dir, outcomes, code, index, summary, junit, warnings, wall, canary)


def _canary(opts: CiOptions, runner: Runner, emit: Progress) -> CanaryOutcome:
    """The positive control on the new kernel, with the CI's thresholds and VM shape."""
    emit({"kind": "stage", "message": f"selftest: injected fault on {opts.new}"})
    st = SelftestOptions(kernel=opts.new, thresholds=opts.thresholds,
                         out_dir=opts.out_dir / "selftest", accel=opts.accel, cpus=opts.cpus,
                         mem_mb=opts.mem_mb, timeout_s=opts.timeout_s, parallel=opts.parallel)
    started = time.monotonic()
    try:
        res = run_selftest(st, emit, runner)
    except RegressError as exc:
        return CanaryOutcome(opts.new, False, f"selftest could not run: {exc.one_line()}",
                             error=exc.one_line(), wall_s=time.monotonic() - started)
    html_report = res.reports.get("html")
    return CanaryOutcome(opts.new, res.verdict.passed, res.verdict.message(),
                         report=_rel(html_report, opts.out_dir) if html_report else None,
                         wall_s=res.wall_s)


def summary_doc(opts: CiOptions, outcomes: list[WorkloadOutcome], code: int,
                warnings: list[str], created: str, wall_s: float,
                canary: CanaryOutcome | None = None) -> dict[str, Any]:
    return {
        "format": SUMMARY_FORMAT,
        "version": SUMMARY_VERSION,
        "regress_version": regress.__version__,
        "created_utc": created,
        "old": opts.old,
        "new": opts.new,
        "runs": opts.runs,
        "iterations": opts.iterations,
        "fail_on": opts.fail_on,
        "thresholds": opts.thresholds.as_dict(),
        "exit_code": code,
        "verdict": {0: "pass", 1: "fail", 2: "error"}[code],
        "warnings": list(warnings),
        "wall_s": round(wall_s, 1),
        "workloads": [o.to_dict() for o in outcomes],
        "selftest": canary.to_dict() if canary is not None else None,
    }


def junit_xml(opts: CiOptions, outcomes: list[WorkloadOutcome], created: str,
              canary: CanaryOutcome | None = None) -> str:
    """JUnit XML: one test case per workload (+ the selftest); ElementTree escapes strings."""
    failures = sum(1 for o in outcomes if o.failed and o.status != "error")
    errors = sum(1 for o in outcomes if o.status == "error")
    tests = len(outcomes)
    if canary is not None:
        tests += 1
        errors += 1 if canary.error else 0
        failures += 1 if not canary.passed and not canary.error else 0
    suites = ET.Element("testsuites", name="regress ci", tests=str(tests),
                        failures=str(failures), errors=str(errors))
    suite = ET.SubElement(
        suites, "testsuite", name=f"regress ci {opts.old} -> {opts.new}",
        tests=str(tests), failures=str(failures), errors=str(errors), skipped="0",
        timestamp=created, time=f"{sum(o.wall_s for o in outcomes):.1f}",
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (("old", opts.old), ("new", opts.new), ("runs", str(opts.runs)),
                        ("fail_on", opts.fail_on)):
        ET.SubElement(props, "property", name=name, value=value)
    # JUnit viewers split class names at dots: keep the kernels' dots out of it.
    pair = f"{workload_slug(opts.old)}-vs-{workload_slug(opts.new)}".replace(".", "_")
    classname = f"regress_ci.{pair}"
    if canary is not None:
        case = ET.SubElement(suite, "testcase", classname=classname,
                             name="selftest (injected fault)", time=f"{canary.wall_s:.1f}")
        if canary.error:
            ET.SubElement(case, "error", message=canary.message, type="error")
        elif not canary.passed:
            ET.SubElement(case, "failure", message=canary.message, type="canary-missed")
        ET.SubElement(case, "system-out").text = (
            f"{canary.message}\nreport: {canary.report or 'none'}")
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname=classname, name=o.workload,
                             time=f"{o.wall_s:.1f}")
        detail = _detail(o)
        if o.status == "error":
            el = ET.SubElement(case, "error", message=o.message(), type="error")
            el.text = detail
        elif o.failed:
            el = ET.SubElement(case, "failure", message=o.message(), type=o.status)
            el.text = detail
        out = ET.SubElement(case, "system-out")
        out.text = detail
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _detail(o: WorkloadOutcome) -> str:
    lines = [f"workload {o.workload}: {o.status}", o.message()]
    for t in o.top:
        lines.append(f"  {t['summary']} (q={_fmt(t['q']) if t['q'] is not None else 'n/a'})")
    if o.aa is not None:
        lines.append(f"A/A negative control ({o.aa.release}, {o.aa.runs_a} vs {o.aa.runs_b} "
                     f"runs): {_aa_text(o.aa)}")
    for kind, path in sorted(o.reports.items()):
        lines.append(f"report ({kind}): {path}")
    return "\n".join(lines)


def _aa_text(aa: AAControl | None) -> str:
    if aa is None or aa.false_positives is None:
        return "not run"
    return f"{aa.false_positives} false positive(s) among {aa.keys_tested} keys"


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.4em;
text-align:left;vertical-align:top}th{background:#f4f4f4}code{font-size:90%}
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;font-weight:600;white-space:nowrap}
.clean{background:#dff3e0}.divergent{background:#fff2cc}.regression,.error{background:#f8d7da}
.verdict{font-size:1.2em}ul{margin:.2em 0;padding-left:1.2em}
@media (max-width:40em){td,th{display:block}}
"""


def index_html(opts: CiOptions, outcomes: list[WorkloadOutcome], code: int,
               warnings: list[str], created: str, canary: CanaryOutcome | None = None) -> str:
    """The index page: one self-contained file, no scripts or fetches, every string escaped."""
    e = html.escape
    verdict = {0: "PASS", 1: "FAIL", 2: "ERROR"}[code]
    rows: list[str] = []
    for o in outcomes:
        links = " ".join(
            f'<a href="{e(path, quote=True)}">{e(kind)}</a>'
            for kind, path in sorted(o.reports.items())
        )
        tops = "".join(f"<li><code>{e(t['summary'])}</code></li>" for t in o.top)
        detail = f"<ul>{tops}</ul>" if tops else ""
        if o.error:
            detail = f"<code>{e(o.error)}</code>"
        rows.append(
            "<tr>"
            f"<td><strong>{e(o.workload)}</strong></td>"
            f'<td><span class="badge {e(o.status)}">{e(o.status)}</span>'
            f"{' fails the gate' if o.failed else ''}</td>"
            f"<td>{o.significant}</td><td>{o.regressions}</td><td>{o.keys_tested}</td>"
            f"<td>{e(_aa_text(o.aa))}</td>"
            f"<td>{e(o.message()) if not o.top and not o.error else ''}{detail}</td>"
            f"<td>{links}</td>"
            "</tr>"
        )
    warn = "".join(f"<li>{e(w)}</li>" for w in warnings)
    warn_block = f"<h2>Warnings</h2><ul>{warn}</ul>" if warn else ""
    canary_block = ""
    if canary is not None:
        state = "clean" if canary.passed else "regression"
        link = (f' (<a href="{e(canary.report, quote=True)}">report</a>)'
                if canary.report else "")
        canary_block = (
            f'<p>Positive control on <code>{e(canary.kernel)}</code>: '
            f'<span class="badge {state}">{"caught" if canary.passed else "MISSED"}</span> '
            f"{e(canary.message)}{link}</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>regress ci: {e(opts.old)} -&gt; {e(opts.new)}</title>
<style>{_CSS}</style></head><body>
<h1>regress ci: <code>{e(opts.old)}</code> &rarr; <code>{e(opts.new)}</code></h1>
<p class="verdict"><span class="badge {'clean' if code == 0 else 'regression'}">{verdict}</span>
exit code {code} with --fail-on {e(opts.fail_on)}; {len(outcomes)} workload(s),
{opts.runs} run(s) per kernel; created {e(created)} by regress {e(regress.__version__)}.</p>
<p>Thresholds: {e(", ".join(f"{k}={v}" for k, v in opts.thresholds.as_dict().items()))}.
The A/A column is the negative control: the old kernel's runs split in two halves and diffed
with the same thresholds; each significant row there is a false positive.</p>
{canary_block}
{warn_block}
<table><thead><tr><th>workload</th><th>status</th><th>significant</th><th>regressions</th>
<th>keys</th><th>A/A control</th><th>top divergences</th><th>report</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Files: <a href="summary.json">summary.json</a>, <a href="junit.xml">junit.xml</a>.</p>
</body></html>
"""


# --------------------------------------------------------------------------- selftest


@dataclass
class SelftestOptions:
    kernel: str = orchestrate.DEFAULT_NEW
    workload: str = orchestrate.DEFAULT_WORKLOAD
    runs: int = 4
    iterations: int | None = 10
    fault: FaultSpec = field(default_factory=FaultSpec)
    thresholds: Thresholds = field(default_factory=Thresholds)
    top_n: int | None = None
    out_dir: Path = Path("reports/selftest")
    accel: str = "auto"
    cpus: int = 2
    mem_mb: int = 2048
    timeout_s: float | None = None
    parallel: bool = True
    paths: KernelPaths | None = None  # an own build instead of ``kernel``
    append: list[str] = field(default_factory=list)  # e.g. "lsm=...,bpf" if BPF LSM is off


@dataclass
class SelftestOutcome:
    verdict: CanaryVerdict
    aa: AAControl
    result: DiffResult
    out_dir: Path
    reports: dict[str, Path]
    captures: dict[str, Path]
    wall_s: float


def evaluate_selftest(control: Capture, faulted: Capture, fault: FaultSpec,
                      thresholds: Thresholds, *, top_n: int | None = None,
                      control_path: str = "control", faulted_path: str = "faulted",
                      ) -> tuple[CanaryVerdict, AAControl, DiffResult]:
    """The selftest's judgement on two captures (no VMs): canary + A/A on the control."""
    result, aa = diff_with_control(control, faulted, thresholds,
                                   old_path=control_path, new_path=faulted_path)
    expect_liveness = bool(control.workload.spec.get("liveness"))
    verdict = evaluate_canary(result, fault, faulted=faulted, expect_liveness=expect_liveness,
                              top_n=top_n)
    return verdict, aa, result


def run_selftest(opts: SelftestOptions, progress: Progress | None = None,
                 runner: Runner | None = None) -> SelftestOutcome:
    """Boot ``opts.kernel`` twice (control, then with the fault), diff, judge the canary."""
    emit: Progress = progress or (lambda _ev: None)
    run_one: Runner = runner or orchestrate.run
    started = time.monotonic()
    ropts = RunOptions(
        old=opts.kernel, new=opts.kernel, old_paths=opts.paths, new_paths=opts.paths,
        workload=opts.workload, runs=opts.runs, iterations=opts.iterations,
        out_dir=opts.out_dir, accel=opts.accel, cpus=opts.cpus, mem_mb=opts.mem_mb,
        timeout_s=opts.timeout_s, parallel=opts.parallel, append=list(opts.append),
        fault=opts.fault.to_job(),
    )
    outcome = run_one(ropts, emit)
    cpath, fpath = outcome.captures["old"], outcome.captures["new"]
    control, faulted = load_capture(cpath), load_capture(fpath)
    verdict, aa, result = evaluate_selftest(
        control, faulted, opts.fault, opts.thresholds, top_n=opts.top_n,
        control_path=str(cpath), faulted_path=str(fpath))
    reports = _write_reports(result, control, faulted, opts.out_dir)
    atomic_write_text(opts.out_dir / "selftest.json", json.dumps({
        "kernel": opts.kernel, "workload": opts.workload, "runs": opts.runs,
        "iterations": opts.iterations, "fault": opts.fault.describe(),
        "thresholds": opts.thresholds.as_dict(), "verdict": verdict.to_dict(),
        "message": verdict.message(), "aa": aa.to_dict(),
    }, indent=1, sort_keys=True) + "\n")
    return SelftestOutcome(verdict, aa, result, opts.out_dir, reports,
                           {"control": cpath, "faulted": fpath}, time.monotonic() - started)
