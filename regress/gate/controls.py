"""Negative (A/A) and positive (canary) controls: can this setup be trusted as a gate?

Negative control: one kernel's capture is split into two halves (even-numbered
runs vs odd-numbered runs, so both halves span the whole boot and share its
warm-up and drift) and the halves are diffed with the same thresholds as the
real comparison. Every significant row there is a false positive; their number
is ``DiffResult.aa_false_positives``, shown in each report's method section. It
measures run-to-run noise inside one boot; boot-to-boot noise (pid numbers,
memory layout) is only covered by a full A/A run (``regress ci --old X --new X``).

Positive controls: ``evaluate_canary`` decides, as a pure function of a diff and
the fault that was injected (``regress.guest.faults``), whether the differ ranked the
fault's symptom -- the injected ``openat`` errno row and the liveness row -- at
the top; ``evaluate_culprit`` decides, for a kernel module that makes a known function
misbehave (``regress.guest.modfault``), whether that function leads "Where it diverges".
``regress selftest`` runs the VMs and calls them; tests call them on captures with
thresholds that must make them fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from regress.diff.differ import diff_captures
from regress.errors import UsageError
from regress.guest.faults import FaultSpec
from regress.guest.modfault import ReturnFault, stats_of
from regress.model.capture import Capture
from regress.model.result import DiffResult, Thresholds

MIN_AA_RUNS = 4  # fewer: halves of 1 run are compared as pooled Poisson rates (overdispersed)
LIVENESS_KEY = "liveness"
FAULT_NOTE_PREFIX = "fault injected: "
_DENIED_RE = re.compile(r"fault program saw (\d+) matching open\(s\) and denied (\d+)")


# --------------------------------------------------------------------------- A/A


@dataclass
class AAControl:
    """What the A/A split of one capture showed."""

    release: str
    runs_a: int
    runs_b: int
    false_positives: int | None  # None: the capture could not be split
    keys_tested: int
    significant_keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "runs_a": self.runs_a,
            "runs_b": self.runs_b,
            "false_positives": self.false_positives,
            "keys_tested": self.keys_tested,
            "significant_keys": list(self.significant_keys),
            "warnings": list(self.warnings),
        }


def split_halves(cap: Capture) -> tuple[Capture, Capture]:
    """(even-numbered runs, odd-numbered runs) as two complete captures of the same kernel."""
    if len(cap.runs) < 2:
        raise UsageError(
            f"an A/A split needs at least 2 runs of one kernel (this capture has {len(cap.runs)})"
        )

    def half(runs: list[Any]) -> Capture:
        renumbered = [replace(r, index=i) for i, r in enumerate(runs)]
        return replace(cap, runs=renumbered, requested_runs=len(renumbered), notes=list(cap.notes))

    return half(cap.runs[0::2]), half(cap.runs[1::2])


def aa_control(cap: Capture, thresholds: Thresholds | None = None) -> AAControl:
    """Diff the two halves of ``cap``; significant rows are false positives."""
    th = thresholds or Thresholds()
    n = len(cap.runs)
    release = cap.kernel.release
    if n < 2:
        return AAControl(
            release,
            n,
            0,
            None,
            0,
            warnings=[f"A/A control skipped: {n} run(s) of {release} cannot be split in two"],
        )
    a, b = split_halves(cap)
    result = diff_captures(a, b, thresholds=th, old_path="A/A even runs", new_path="A/A odd runs")
    warnings: list[str] = []
    if n < MIN_AA_RUNS:
        warnings.append(
            f"A/A control on {n} runs: halves of {len(a.runs)} and {len(b.runs)} run(s) are "
            f"compared as pooled rates, which overstates significance; use >= {MIN_AA_RUNS} "
            "runs per kernel for a meaningful negative control"
        )
    codes = {w.code for w in result.warnings}
    if "few-runs" in codes:
        warnings.append(
            f"A/A control on {len(a.runs)} vs {len(b.runs)} runs: halves this small cannot "
            "take constant counts as exact; more runs make it stricter"
        )
    sig = result.significant
    return AAControl(
        release=release,
        runs_a=len(a.runs),
        runs_b=len(b.runs),
        false_positives=len(sig),
        keys_tested=result.keys_tested,
        significant_keys=[d.key for d in sig],
        warnings=warnings,
    )


# --------------------------------------------------------------------------- canary


@dataclass
class CanaryVerdict:
    """Whether the injected fault's symptom was ranked at the top."""

    passed: bool
    expected: list[str]  # keys that had to be at the top
    top_n: int  # how many top rows they had to be among
    ranks: dict[str, int | None]  # 1-based rank among all rows; None: no such row
    top: list[str]  # the keys of the top rows, for the message
    problems: list[str] = field(default_factory=list)  # what was missed, one line each
    denied: int | None = None  # opens the fault denied, from the capture note
    detail: str = ""  # what narrowing found, when it ran

    def message(self) -> str:
        if self.passed:
            where = ", ".join(f"{k} #{self.ranks[k]}" for k in self.expected)
            return f"canary caught: {where} (top {self.top_n})" + (
                f"; {self.detail}" if self.detail else ""
            )
        return "canary MISSED: " + "; ".join(self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "expected": list(self.expected),
            "top_n": self.top_n,
            "ranks": dict(self.ranks),
            "top": list(self.top),
            "problems": list(self.problems),
            "denied": self.denied,
        }


def fault_figures(cap: Capture) -> tuple[bool, int | None]:
    """(capture says a fault was injected, opens it denied when recorded)."""
    injected = any(n.startswith(FAULT_NOTE_PREFIX) for n in cap.notes)
    denied: int | None = None
    for note in cap.notes:
        m = _DENIED_RE.search(note)
        if m:
            denied = int(m.group(2))
    return injected, denied


def evaluate_canary(
    result: DiffResult,
    fault: FaultSpec,
    *,
    faulted: Capture | None = None,
    expect_liveness: bool = True,
    top_n: int | None = None,
) -> CanaryVerdict:
    """Pass only if every expected row is significant, a regression and within the top rows.

    Expected rows: the fault's ``syscall:openat:<ERRNO>`` and (``expect_liveness``) the
    liveness row. ``top_n`` defaults to the number of expected rows: they must be *the*
    top rows. ``faulted`` (the capture taken with the fault) lets the verdict tell
    "the detector missed it" from "the fault never fired".
    """
    expected = [fault.expected_key()] + ([LIVENESS_KEY] if expect_liveness else [])
    n_top = top_n if top_n is not None else len(expected)
    if n_top < len(expected):
        raise UsageError(f"top_n must be at least {len(expected)}")
    rows = result.divergences
    ranks: dict[str, int | None] = {k: None for k in expected}
    for i, d in enumerate(rows, start=1):
        if d.key in ranks and ranks[d.key] is None:
            ranks[d.key] = i
    problems: list[str] = []
    denied: int | None = None
    if faulted is not None:
        injected, denied = fault_figures(faulted)
        if not injected:
            problems.append("the faulted capture has no 'fault injected' note: no fault was loaded")
        elif denied == 0:
            problems.append(
                "the fault program denied 0 opens: it never fired, so the detector was not "
                "tested (is BPF LSM active? /sys/kernel/security/lsm must list bpf: boot with "
                "--append lsm=<the kernel's list>,bpf; does the workload run the fault's comm?)"
            )
    for key in expected:
        rank = ranks[key]
        if rank is None:
            problems.append(f"{key}: no such row in the diff")
            continue
        d = rows[rank - 1]
        if not d.significant:
            q = "n/a" if d.q is None else f"{d.q:.3g}"
            th = result.thresholds
            why = "failed the effect gate" if "effect-gate" in d.notes else "not significant"
            problems.append(
                f"{key}: {why} (q={q}, old {d.old.center:.3g}, new {d.new.center:.3g} per "
                f"iteration; alpha={th.alpha:g}, min_ratio={th.min_ratio:g}, "
                f"min_abs_delta={th.min_abs_delta:g})"
            )
        elif not d.regression:
            problems.append(f"{key}: significant but not judged a regression")
        if rank > n_top:
            problems.append(f"{key}: ranked #{rank}, not in the top {n_top}")
    top = [d.key for d in rows[: max(n_top, 5)]]
    if problems and top:
        problems.append("top rows were: " + ", ".join(top))
    return CanaryVerdict(
        passed=not problems,
        expected=expected,
        top_n=n_top,
        ranks=ranks,
        top=top,
        problems=problems,
        denied=denied,
    )


def evaluate_culprit(
    result: DiffResult, fault: ReturnFault, *, faulted: Capture | None = None
) -> CanaryVerdict:
    """Pass only if the fault's function is *first* in "Where it diverges", with the
    return class the fault adds among its evidence (the narrowing canaries)."""
    expected = f"culprit:{fault.function}"
    names = [c.function for c in result.culprits]
    rank = names.index(fault.function) + 1 if fault.function in names else None
    problems: list[str] = []
    rewritten: int | None = None
    if faulted is not None:
        injected, _ = fault_figures(faulted)
        stats = stats_of(list(faulted.notes))
        rewritten = stats[1] if stats else None
        if not injected:
            problems.append("the faulted capture has no 'fault injected' note: no fault was loaded")
        elif rewritten == 0:
            problems.append(
                f"the fault module rewrote 0 returns of {fault.function}(): it never fired, "
                f"so narrowing was not tested (does the workload run comm {fault.comm!r} "
                "through that function?)"
            )
    if rank is None:
        problems.append(f"{fault.function}() is not in 'Where it diverges' at all")
    else:
        culprit = result.culprits[rank - 1]
        labels = [e.label for e in culprit.evidence]
        if not any(fault.return_class in label for label in labels):
            problems.append(
                f"{fault.function}(): its evidence does not name the return class "
                f"{fault.return_class} ({'; '.join(labels)})"
            )
        if rank != 1:
            problems.append(f"{fault.function}() is #{rank} in 'Where it diverges', not first")
    if problems and names:
        problems.append("'Where it diverges' was: " + ", ".join(names[:5]))
    return CanaryVerdict(
        passed=not problems,
        expected=[expected],
        top_n=1,
        ranks={expected: rank},
        top=[f"culprit:{n}" for n in names[:5]],
        problems=problems,
        denied=rewritten,
    )


# The LSM hook path of file_open: where an LSM canary's errno must be born.
LSM_HOOK_FUNCTIONS = ("bpf_lsm_file_open", "security_file_open")


def evaluate_origin(result: DiffResult, fault: FaultSpec) -> list[str]:
    """Problems with the narrowing pass's account of the LSM canary (none: it traced the
    injected errno to its birth on the LSM hook path, first in 'Where it diverges')."""
    if result.narrowing is None:
        return ["no narrowing pass ran (a regression should have started one)"]
    want = f"openat {fault.errno} born in "
    if not result.culprits:
        return [f"the narrowing pass named no function (wanted the origin of openat {fault.errno})"]
    first = result.culprits[0]
    born = [e.label for e in first.evidence if e.label.startswith(want)]
    on_path = first.function in LSM_HOOK_FUNCTIONS or any(
        f in first.path for f in LSM_HOOK_FUNCTIONS
    )
    problems: list[str] = []
    if not born:
        problems.append(
            f"{first.function}() leads 'Where it diverges' but not as the origin of openat "
            f"{fault.errno} ({'; '.join(e.label for e in first.evidence[:3])})"
        )
    elif not on_path:
        problems.append(
            f"openat {fault.errno} traced to {first.function}(), not the LSM hook path "
            f"({', '.join(LSM_HOOK_FUNCTIONS)}); call path: {' <- '.join(first.path)}"
        )
    return problems
