"""Which packaged kernel first broke it: a search over one Debian kernel line.

Between a good and a bad package of one stable line (package-version order) the search
captures kernels and compares each against the good kernel with the ordinary statistical
verdict (``Criterion``). Two VMs fit this 2-core machine, so each step captures two
kernels at once -- the thirds of the remaining range -- and the range shrinks to a third
per step instead of a half (10 kernels: the endpoints, then 2 steps, not 3). Captures are
kept per release under the output directory and reused by a later search over the same
workload, runs and VM shape. The first bad package's diff against the last good one
names the suspect upstream changes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from regress.errors import InputError, UsageError
from regress.gate import pipeline
from regress.gate.suspects import suspects_between
from regress.model.capture import Capture, atomic_write_text, load_capture
from regress.model.events import Event, Progress, ignore
from regress.model.result import DiffResult, Suspects, Thresholds
from regress.vm import backend as vm_backend
from regress.vm import debian, kernels
from regress.vm.backend import RunOptions

CriterionKind = Literal["regression", "key", "liveness", "exit"]


@dataclass(frozen=True)
class Criterion:
    """What makes a kernel bad: any regression row (default), one key significant, the
    liveness check, or the command's exit status -- each judged against the good kernel."""

    kind: CriterionKind = "regression"
    key: str = ""

    def __post_init__(self) -> None:
        if (self.kind == "key") != bool(self.key):
            raise UsageError("--key needs a row key such as syscall:openat:EACCES")

    def describe(self) -> str:
        return {
            "regression": "any regression",
            "key": f"{self.key} significant",
            "liveness": "the liveness check failing more often",
            "exit": "the command failing more often",
        }[self.kind]

    def judge(self, result: DiffResult) -> tuple[bool, str]:
        """(bad, the evidence with its confidence) for one kernel against the good one."""
        if self.kind == "regression":
            regs = result.regressions
            if regs:
                d = regs[0]
                return True, f"{d.label}: {d.cls}, q={_q(d.q)}"
            return False, f"no regression among {result.keys_tested} keys at FDR " + (
                f"{result.thresholds.alpha:g}"
            )
        wanted = {"key": self.key, "liveness": "liveness", "exit": "exit-status"}[self.kind]
        row = next(
            (d for d in result.divergences if d.key == wanted or d.cls == wanted),
            None,
        )
        if row is None:
            return False, f"{wanted}: not measured on either kernel"
        bad = row.significant and (self.kind == "key" or row.regression)
        what = f"{row.label}: {row.cls}" if bad else f"{row.label}: not significant"
        return bad, f"{what}, q={_q(row.q)}"


def _q(q: float | None) -> str:
    return "exact" if q is None else f"{q:.2g}"


@dataclass(frozen=True)
class Step:
    kernel: debian.DebianKernel
    bad: bool
    evidence: str
    capture: str
    report: str
    step: int  # 0: the endpoints


@dataclass
class BisectOutcome:
    good: debian.DebianKernel
    bad: debian.DebianKernel
    first_bad: debian.DebianKernel
    last_good: debian.DebianKernel
    candidates: list[debian.DebianKernel]
    criterion: Criterion
    steps: list[Step] = field(default_factory=list)
    suspects: Suspects | None = None
    out_dir: Path = Path(".")
    boots: int = 0
    wall_s: float = 0.0

    def summary_line(self) -> str:
        return (
            f"first bad: {self.first_bad.release} (upstream {self.first_bad.upstream}, "
            f"package {self.first_bad.version}), last good: {self.last_good.release} "
            f"(upstream {self.last_good.upstream}, package {self.last_good.version})"
        )

    def to_dict(self) -> dict[str, object]:
        def k(x: debian.DebianKernel) -> dict[str, str]:
            return {"release": x.release, "version": x.version, "upstream": x.upstream}

        return {
            "format": "regress-bisect",
            "format_version": 1,
            "criterion": self.criterion.describe(),
            "good": k(self.good),
            "bad": k(self.bad),
            "first_bad": k(self.first_bad),
            "last_good": k(self.last_good),
            "candidates": [k(c) for c in self.candidates],
            "steps": [
                {
                    **k(s.kernel),
                    "step": s.step,
                    "verdict": "bad" if s.bad else "good",
                    "evidence": s.evidence,
                    "capture": s.capture,
                    "report": s.report,
                }
                for s in self.steps
            ],
            "suspects": None if self.suspects is None else dataclasses.asdict(self.suspects),
            "boots": self.boots,
            "wall_s": round(self.wall_s, 1),
        }


def line_between(good_ref: str, bad_ref: str) -> list[debian.DebianKernel]:
    """The packaged kernels of one line from good to bad, in package-version order."""
    good, bad = kernels.lookup(good_ref), kernels.lookup(bad_ref)
    if good.line != bad.line:
        raise UsageError(
            f"--good {good.release} ({good.line}) and --bad {bad.release} ({bad.line}) are "
            "different kernel lines: bisect within one (run compares across lines)"
        )
    lo, hi = debian.version_sort_key(good.version), debian.version_sort_key(bad.version)
    if not lo < hi:
        raise UsageError(f"--good {good.release} must be an older package than --bad {bad.release}")
    return [
        k
        for k in kernels.available_debian()
        if k.line == good.line and lo <= debian.version_sort_key(k.version) <= hi
    ]


def _usable(path: Path, opts: RunOptions, spec_hash: str) -> Capture | None:
    """A kept capture of this kernel from an earlier step or search, if it matches."""
    try:
        cap = load_capture(path)
    except Exception:  # unreadable or foreign: capture again
        return None
    ok = (
        cap.complete
        and cap.workload.hash == spec_hash
        and len(cap.runs) == opts.runs
        and cap.machine.cpus == opts.cpus
        and cap.machine.mem_mb // 64 == opts.mem_mb // 64
    )
    return cap if ok else None


def bisect(
    good_ref: str,
    bad_ref: str,
    opts: RunOptions,
    thresholds: Thresholds,
    criterion: Criterion,
    out_dir: Path,
    progress: Progress = ignore,
    *,
    backend: str = "qemu",
    on_step: Callable[[Step], None] = lambda _s: None,
) -> BisectOutcome:
    started = time.monotonic()
    line = line_between(good_ref, bad_ref)
    good, bad = line[0], line[-1]
    spec = vm_backend.load_workload(opts)
    caps_dir = out_dir / "captures"
    caps_dir.mkdir(parents=True, exist_ok=True)
    captured: dict[str, Capture] = {}
    outcome = BisectOutcome(good, bad, bad, good, line, criterion, out_dir=out_dir)
    step_no = 0

    def capture(ks: list[debian.DebianKernel]) -> None:
        todo = []
        for k in ks:
            hit = _usable(caps_dir / f"{k.release}.json", opts, spec.spec_hash())
            if hit is not None:
                captured[k.release] = hit
                progress(Event("stage", message=f"reusing the capture of {k.release}"))
            else:
                todo.append(k)
        if not todo:
            return
        a, b = todo[0], todo[-1]
        pair_dir = out_dir / "boots" / f"{a.release}+{b.release}"
        pair = vm_backend.get(backend).capture_pair(
            dataclasses.replace(
                opts, old=f"debian:{a.release}", new=f"debian:{b.release}", out_dir=pair_dir
            ),
            progress,
        )
        outcome.boots += 2
        for side, k in (("old", a), ("new", b)):
            dest = caps_dir / f"{k.release}.json"
            pair.captures[side].replace(dest)
            captured[k.release] = load_capture(dest)

    def judge(k: debian.DebianKernel) -> Step:
        judged = pipeline.judge_captures(
            captured[good.release],
            captured[k.release],
            thresholds,
            old_path=str(caps_dir / f"{good.release}.json"),
            new_path=str(caps_dir / f"{k.release}.json"),
        )
        report_dir = out_dir / "steps" / k.release
        report_dir.mkdir(parents=True, exist_ok=True)
        reports = pipeline.render(judged, report_dir)
        is_bad, evidence = criterion.judge(judged.result)
        step = Step(
            k, is_bad, evidence, str(caps_dir / f"{k.release}.json"), str(reports["html"]), step_no
        )
        outcome.steps.append(step)
        on_step(step)
        return step

    progress(Event("stage", message=f"bisect: {len(line)} kernels, {good.release}..{bad.release}"))
    capture([good, bad])
    endpoint = judge(bad)
    if not endpoint.bad:
        raise InputError(
            f"--bad {bad.release} does not differ from --good {good.release} by "
            f"{criterion.describe()} ({endpoint.evidence}); nothing to bisect",
            hint="check the report under " + str(out_dir / "steps" / bad.release),
        )
    lo, hi = 0, len(line) - 1  # line[lo] good, line[hi] bad
    while hi - lo > 1:
        step_no += 1
        inner = list(range(lo + 1, hi))
        picks = (
            [inner[len(inner) // 3], inner[(2 * len(inner)) // 3]] if len(inner) >= 3 else inner[:2]
        )
        picks = sorted(set(picks))
        capture([line[i] for i in picks])
        verdicts = {i: judge(line[i]).bad for i in picks}
        for i in picks:
            if verdicts[i]:
                hi = i
                break
            lo = i
    outcome.first_bad, outcome.last_good = line[hi], line[lo]
    # what the first bad kernel does differently from the last good one ranks the changes
    between = pipeline.judge_captures(
        captured[line[lo].release], captured[line[hi].release], thresholds
    ).result
    outcome.suspects = suspects_between(
        between, kernels.cached(line[lo].release), kernels.cached(line[hi].release)
    )
    outcome.wall_s = time.monotonic() - started
    atomic_write_text(out_dir / "bisect.json", json.dumps(outcome.to_dict(), indent=1) + "\n")
    atomic_write_text(out_dir / "bisect.txt", "\n".join(summary_lines(outcome)) + "\n")
    return outcome


def summary_lines(outcome: BisectOutcome) -> list[str]:
    lines = [
        f"regress bisect: {outcome.good.release}..{outcome.bad.release} "
        f"({len(outcome.candidates)} packaged kernels), bad = {outcome.criterion.describe()}",
    ]
    for s in outcome.steps:
        lines.append(
            f"  step {s.step}: {s.kernel.release} ({s.kernel.upstream}) "
            f"{'BAD ' if s.bad else 'good'}  {s.evidence}"
        )
    lines.append(outcome.summary_line())
    sus = outcome.suspects
    if sus is not None and sus.top:
        lines.append(
            f"suspect changes {sus.old_upstream}..{sus.new_upstream}: top {len(sus.top)} of "
            f"{sus.matched} matching, {sus.total} in all"
        )
        lines += [f"  {x.stable or 'Debian ' + x.upload}: {x.subject}" for x in sus.top[:5]]
    elif sus is not None:
        lines.append(
            f"changes {sus.old_upstream}..{sus.new_upstream}: {sus.total} listed, none matches"
            + (f" ({sus.note})" if sus.note else "")
        )
    lines.append(f"{outcome.boots} boots, {outcome.wall_s:.0f} s; reports under {outcome.out_dir}")
    return lines
