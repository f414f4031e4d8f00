"""The differ's result as typed, immutable data: what ``regress diff`` prints and reports render.

This is the contract between the differ (``regress.diff``) and every renderer (terminal
table, JSON, HTML, text report, CI index, JUnit). Renderers format; they never recompute
statistics. Values are checked when built (``__post_init__``), so a renderer can rely on
the invariants below instead of re-deriving them:

* a regression is significant;
* context rows (return-value buckets) and absent/unchanged rows are never significant;
* absent rows carry no p, q or ratio (there is no number on one side).

A row names its quantity by ``kind``, ``name`` and ``sub`` -- never by a string that has
to be split again:

==========  =====================  ===========================  ``key``
kind        name                   sub
==========  =====================  ===========================  ==========================
syscall     openat                 ENOENT / ok (kernel errno)   ``syscall:openat:ENOENT``
retval      read                   log2 bucket, e.g. "9"        ``retval:read:9``
tracepoint  sched:sched_switch     ""                           ``tracepoint:sched:...``
function    find_ge_pid            ""                           ``function:find_ge_pid``
liveness    liveness               ""                           ``liveness``
origin      openat                 EACCES@bpf_lsm_file_open     ``origin:openat:EACCES@...``
syscall     ``*`` (whole family)   ""                           ``syscall:*`` (absent rows)
==========  =====================  ===========================  ==========================

Stdlib only (shipped into the guest with the rest of ``regress.model``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

from regress.errors import UsageError
from regress.model.rows import Rows

DivergenceClass = Literal[
    "liveness",  # the workload's own check fails at a different rate
    "exit-status",  # the workload's command fails (non-zero exit, timeout) at a different rate
    "appeared",  # zero on old, present on new, beyond noise
    "vanished",  # present on old, zero on new, beyond noise
    "rate",  # present on both, rate changed beyond noise and the effect gate
    "certain-small",  # an exact (constant-count) change below the effect gate: shown, not gated
    "suggestive",  # a change past the effect gate whose p passes alpha but not the FDR
    "absent",  # probe could not be attached on one side: no number to compare
    "unchanged",  # tested, nothing to report (only listed with --all)
]
MetricKind = Literal[
    "liveness", "exit", "syscall", "origin", "retval", "tracepoint", "function", "funcret", "map"
]

# Display order of classes and the tie-break order of kinds (the user-visible outcomes
# first, then the syscall outcome, derived views last).
CLASSES: tuple[str, ...] = (
    "liveness",
    "exit-status",
    "appeared",
    "vanished",
    "rate",
    "certain-small",
    "suggestive",
    "absent",
    "unchanged",
)
METRIC_KINDS: tuple[str, ...] = (
    "liveness",
    "exit",
    "syscall",
    "origin",
    "funcret",
    "tracepoint",
    "function",
    "map",
    "retval",
)
CONTEXT_KINDS: frozenset[str] = frozenset({"retval"})  # tested, ranked, never significant
OUTCOME_KINDS: frozenset[str] = frozenset({"liveness", "exit"})  # one row each, per workload
# Counts of kernel functions: noisy ones pass ``Thresholds.function_ratio``.
FUNCTION_KINDS: frozenset[str] = frozenset({"function", "funcret"})
FAMILY = "*"  # ``name`` of a row that stands for a whole probe family (absent rows)
_NEVER_SIGNIFICANT = frozenset({"absent", "unchanged", "certain-small", "suggestive"})
SHOWN_CLASSES = frozenset(CLASSES) - {"unchanged"}  # listed by default (not only with --all)


@dataclass(frozen=True)
class Thresholds:
    """Every knob of the differ in one place, recorded in each ``DiffResult``.

    The CLI takes its option defaults from here, so one number means one thing everywhere.

    alpha: FDR level; a key is significant when its BH q <= alpha (and the effect
        gate passes). Also the level of the liveness Fisher test.
    min_ratio: effect gate; new/old (or old/new) per-iteration ratio must reach this.
    min_ratio_signal: the effect gate of counts of signal-interrupted syscalls (EINTR and
        the restart codes): how many calls a signal lands in moves with machine load
        between sessions and VM boots, which the run-to-run noise of one session does
        not show (measured: 7 of 325 host A/A pairs of ps-loop moved x0.8 there with
        q < 0.05; between the two VMs of the default job, 6.1.0-47 vs -56, ps-loop's
        ERESTARTNOHAND rate moved x0.50-x2.12 over 20 runs, log sd 0.34, README
        "Statistics"); never below ``min_ratio`` (``signal_ratio``).
    min_ratio_function: the effect gate of kernel-function counts tested as noisy (not
        exact): how often timers, the slab allocator or the entropy pool's helpers run
        follows the state of the boot, and all runs of a side share one boot, so their
        spread does not show it (measured on a forced narrowing pass over an A/A pair of
        boots: mod_timer x1.24 and get_random_u32 x0.62 with q < 0.05, README
        "Statistics"); never below ``min_ratio`` (``function_ratio``).
    min_abs_delta: effect gate; |new - old| per iteration must reach this.
    min_runs_per_side: runs per side needed to test run-to-run noise (the QL test);
        below it the sides are pooled and tested as Poisson rates.
    min_runs_exact: runs per side needed before counts that are identical in
        every run are treated as exact (deterministic) values.
    max_chance_constancy: ...and only when Poisson noise of that size would make all
        runs equal with at most this probability (small counts are equal by chance).
    confidence: level of the ratio confidence intervals.
    """

    alpha: float = 0.05
    min_ratio: float = 1.2
    min_ratio_signal: float = 3.0
    min_ratio_function: float = 2.0
    min_abs_delta: float = 0.05
    min_runs_per_side: int = 2
    min_runs_exact: int = 3
    max_chance_constancy: float = 1e-3
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise UsageError(f"alpha must be between 0 and 1 (got {self.alpha})")
        if not 1.0 <= self.min_ratio < math.inf:
            raise UsageError(f"min ratio must be >= 1 and finite (got {self.min_ratio})")
        if not 1.0 <= self.min_ratio_signal < math.inf:
            raise UsageError(
                f"signal-race ratio gate must be >= 1 and finite (got {self.min_ratio_signal})"
            )
        if not 1.0 <= self.min_ratio_function < math.inf:
            raise UsageError(
                f"function-count ratio gate must be >= 1 and finite (got {self.min_ratio_function})"
            )
        if not 0.0 <= self.min_abs_delta < math.inf:
            raise UsageError(
                f"min absolute delta must be >= 0 and finite (got {self.min_abs_delta})"
            )
        if self.min_runs_per_side < 2:
            raise UsageError(f"min runs per side must be >= 2 (got {self.min_runs_per_side})")
        if self.min_runs_exact < 2:
            raise UsageError(f"min runs for exact counts must be >= 2 (got {self.min_runs_exact})")
        if not 0.0 < self.max_chance_constancy <= 1.0:
            raise UsageError(
                f"max chance constancy must be in (0, 1] (got {self.max_chance_constancy})"
            )
        if not 0.5 <= self.confidence < 1.0:
            raise UsageError(f"confidence must be in [0.5, 1) (got {self.confidence})")

    @property
    def signal_ratio(self) -> float:
        """The gate signal-race rows pass: theirs, and never below everyone's (a raised
        ``min_ratio`` raises it too)."""
        return max(self.min_ratio, self.min_ratio_signal)

    @property
    def function_ratio(self) -> float:
        """The gate noisy kernel-function counts pass (never below ``min_ratio``)."""
        return max(self.min_ratio, self.min_ratio_function)

    def own_gates(self, functions: bool = True) -> str:
        """The gates some rows pass instead of ``min_ratio``, as printed (the noisy
        kernel-function one only where there are ``functions``)."""
        text = f"signal races x{self.signal_ratio:g}"
        return text + (f", noisy function counts x{self.function_ratio:g}" if functions else "")

    def as_dict(self) -> dict[str, float | int]:
        return {
            "alpha": self.alpha,
            "min_ratio": self.min_ratio,
            "min_ratio_signal": self.min_ratio_signal,
            "min_ratio_function": self.min_ratio_function,
            "min_abs_delta": self.min_abs_delta,
            "min_runs_per_side": self.min_runs_per_side,
            "min_runs_exact": self.min_runs_exact,
            "max_chance_constancy": self.max_chance_constancy,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, init=False)
class SideValues:
    """One key on one kernel. ``per_iter`` holds one value per run.

    When the probe is not attached on this side (``probe_status`` "absent" or
    "failed") there is no number: ``per_iter`` and ``raw`` are empty and
    ``center`` is NaN (``null`` in JSON); render the status, never 0.
    For the ``liveness`` key ``raw`` holds failures per run, ``trials`` the
    checked iterations per run, ``per_iter`` failures/trials per run and
    ``center`` the pooled failure fraction (sum of failures / sum of trials).
    """

    per_iter: tuple[float, ...]
    raw: tuple[int, ...]
    center: float  # median of per_iter (the number shown); NaN when absent
    probe_status: str = "attached"  # "attached" / "absent" / "failed" / "n/a"
    probe_reason: str | None = None
    trials: tuple[int, ...] | None = None  # liveness only: checked iterations per run

    # Hand-written (frozen dataclasses set each field through object.__setattr__, 2.5x
    # slower): the differ builds 100k of these for 50k keys (bench/bench_differ.py).
    def __init__(
        self,
        per_iter: tuple[float, ...],
        raw: tuple[int, ...],
        center: float,
        probe_status: str = "attached",
        probe_reason: str | None = None,
        trials: tuple[int, ...] | None = None,
    ) -> None:
        self.__dict__.update(
            per_iter=tuple(per_iter),
            raw=tuple(raw),
            center=center,
            probe_status=probe_status,
            probe_reason=probe_reason,
            trials=None if trials is None else tuple(trials),
        )

    @property
    def observed(self) -> bool:
        return self.probe_status not in ("absent", "failed")


@dataclass(frozen=True, slots=True)
class TestMethod:
    """A statistical test as the report states it: its id and the sentence about it."""

    name: str  # stable id stored on rows ("mwu", "exact", ...)
    description: str


def _key(kind: str, name: str, sub: str) -> str:
    if kind == "liveness":
        return "liveness"
    if kind == "exit":
        return "exit-status"
    return f"{kind}:{name}:{sub}" if sub else f"{kind}:{name}"


@dataclass(frozen=True, init=False)
class Divergence:
    """One measured quantity, compared across the two kernels."""

    kind: MetricKind
    name: str
    sub: str  # errno name / "ok" for syscalls, log2 bucket for retvals, "" otherwise
    cls: DivergenceClass
    old: SideValues
    new: SideValues
    ratio: float | None  # new.center / old.center; None when old is 0 or absent
    ratio_ci: tuple[float, float] | None  # CI of the ratio when the test gives one
    delta: float  # new.center - old.center (per iteration)
    test: str  # a ``TestMethod.name`` of the result, or "none"
    p: float | None
    q: float | None  # Benjamini–Hochberg adjusted (liveness: its own p)
    significant: bool  # q <= alpha AND effect gate passed (or exact change)
    regression: bool  # significant and judged a regression (README "Ranking")
    score: float  # ranking score; higher first
    notes: tuple[str, ...] = ()  # warning codes / per-row remarks
    interpretation: str = ""  # what the change means, when the differ can say

    def __init__(  # hand-written for speed, as SideValues'; checks the invariants
        self,
        kind: MetricKind,
        name: str,
        sub: str,
        cls: DivergenceClass,
        old: SideValues,
        new: SideValues,
        ratio: float | None,
        ratio_ci: tuple[float, float] | None,
        delta: float,
        test: str,
        p: float | None,
        q: float | None,
        significant: bool,
        regression: bool,
        score: float,
        notes: tuple[str, ...] = (),
        interpretation: str = "",
    ) -> None:
        self.__dict__.update(
            kind=kind,
            name=name,
            sub=sub,
            cls=cls,
            old=old,
            new=new,
            ratio=ratio,
            ratio_ci=ratio_ci,
            delta=delta,
            test=test,
            p=p,
            q=q,
            significant=significant,
            regression=regression,
            score=score,
            notes=tuple(notes),
            interpretation=interpretation,
            # the ``key`` property's value, cached up front: ranking sorts by it
            key=_key(kind, name, sub),
        )
        if kind not in METRIC_KINDS:
            raise ValueError(f"unknown metric kind {kind!r}")
        if cls not in CLASSES:
            raise ValueError(f"unknown divergence class {cls!r}")
        if regression and not significant:
            raise ValueError(f"{self.key}: a regression must be significant")
        if significant and (kind in CONTEXT_KINDS or cls in _NEVER_SIGNIFICANT):
            raise ValueError(f"{self.key}: a {kind}/{cls} row is never significant")
        if cls == "absent" and (p is not None or q is not None or ratio):
            raise ValueError(f"{self.key}: an absent row has no p, q or ratio")

    @cached_property
    def key(self) -> str:
        """The stable text id: ``syscall:openat:ENOENT``, ``function:find_ge_pid``, ..."""
        return _key(self.kind, self.name, self.sub)

    @property
    def label(self) -> str:
        """Human-readable: ``openat ENOENT``, ``find_ge_pid()``, ``read ret bucket 9``."""
        return self.label_of(self.kind, self.name, self.sub)

    @staticmethod
    def label_of(kind: str, name: str, sub: str) -> str:
        """The label of a row of ``kind``/``name``/``sub`` (``sub`` as displayed)."""
        if kind == "liveness":
            return "liveness check failures"
        if kind == "exit":
            return "workload command failures (non-zero exit or timeout)"
        if name == FAMILY:
            return {"syscall": "all syscalls", "retval": "all syscall return values"}.get(
                kind, f"all {kind}s"
            )
        if kind == "syscall":
            return f"{name} {sub}"
        if kind == "retval":
            return f"{name} ret bucket {sub}"
        if kind == "function":
            return f"{name}()"
        if kind == "map":
            return name  # a foreign count map's entry, as bpftrace prints it: @name[key]
        if kind == "funcret":
            return f"{name}() returned {sub}" if sub else f"{name}() returns"
        if kind == "origin":
            err, _, fn = sub.partition("@")
            where = "outside the traced functions" if fn == "?" else f"in {fn}()"
            return f"{name} {err} born {where}"
        return name

    @property
    def bucket(self) -> int | None:
        """The log2 bucket of a ``retval`` row."""
        if self.kind != "retval" or not self.sub.lstrip("-").isdigit():
            return None
        return int(self.sub)


@dataclass(frozen=True, slots=True)
class DiffWarning:
    """A statement about the whole comparison, printed as a footnote."""

    code: str  # stable id, e.g. "few-runs", "partial-capture", "forced"
    message: str


@dataclass(frozen=True, slots=True)
class ContrastRow:
    """One key that differs between one kernel's failing and passing iterations."""

    kind: MetricKind
    name: str
    sub: str  # as displayed (errno names)
    label: str
    failing: float  # mean count per failing iteration
    passing: float  # mean count per passing iteration
    p: float
    q: float

    def __post_init__(self) -> None:
        for what in ("failing", "passing"):
            if not math.isfinite(getattr(self, what)) or getattr(self, what) < 0:
                raise ValueError(f"contrast {what} must be a finite count >= 0")
        if not (0.0 <= self.p <= 1.0 and 0.0 <= self.q <= 1.0):
            raise ValueError("contrast p and q must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class Contrast:
    """Failing vs passing iterations of one kernel (liveness or exit status failed): the
    keys that differ between them are the failure's mechanism on that kernel."""

    side: Literal["old", "new"]
    failing: int  # iterations
    passing: int
    rows: tuple[ContrastRow, ...]  # significant at alpha after BH, strongest first
    keys_tested: int
    method: str
    mix: tuple[MixChange, ...] = ()  # return shares that differ, failing vs passing


@dataclass(frozen=True, slots=True)
class MixChange:
    """A (function, return class) whose share of the function's returns changed
    (``regress.diff.returnmix``): the seed bug's "NULL too early" shows here, not in counts."""

    function: str
    sub: str  # the class as displayed: "NULL/0", "-EACCES", "other"
    before: float  # mean share: old kernel's runs, or the passing iterations
    after: float  # new kernel's runs, or the failing iterations
    p: float
    q: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """One finding about a function: a diff row (old -> new per iteration) or a contrast
    row (passing -> failing iterations of one kernel)."""

    source: Literal["diff", "contrast"]
    label: str  # the row's label, e.g. "find_ge_pid() returned NULL/0"
    before: float  # per iteration: old kernel, or the passing iterations
    after: float  # per iteration: new kernel, or the failing iterations (shares: 0-1)
    side: str  # the contrast's kernel ("old"/"new"), "" for diff rows
    q: float | None
    ratio: float | None
    cls: str  # the diff row's class, "" for contrast rows
    measure: Literal["count", "share"] = "count"  # share: of the function's returns


@dataclass(frozen=True, slots=True)
class Culprit:
    """A kernel function the comparison points at ("Where it diverges"), with why."""

    function: str
    basis: str  # why it is ranked where it is
    evidence: tuple[Evidence, ...]
    # the syscalls it explains: where its errno was born, else the syscalls it ran under
    # that diverge (else the ones it ran under most), at most three
    syscalls: tuple[str, ...] = ()
    path: tuple[str, ...] = ()  # kernel call path of its errno origin, innermost caller first


@dataclass(frozen=True, slots=True)
class Narrowing:
    """The automatic narrowing pass (``regress.gate.narrow``): what it looked under,
    what it traced, what it cost. Its culprits are the result's ``culprits``."""

    syscalls: tuple[str, ...]  # the diverging syscalls whose functions were discovered
    why: str  # how those syscalls were chosen
    functions: int  # functions traced (entries and returns) on both kernels
    discovered: int  # distinct non-void functions discovery saw under the syscalls
    captures: tuple[str, str]  # the pass's old and new capture files
    wall_s: float  # discovery + capture + diff
    significant: int  # significant rows in the pass's own diff
    aa_false_positives: int | None  # the pass's own A/A split
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Suspect:
    """One upstream (or distribution) change between the kernels, and why it is suspect."""

    subject: str
    upload: str  # the package upload that brought it (6.1.191-1)
    stable: str  # the kernel.org stable release (6.1.191), "" for the distribution's own
    score: float
    why: str  # what it matched: "names getdents64; subsystem proc"


@dataclass(frozen=True, slots=True)
class Suspects:
    """The changes that landed between the two kernels, ranked by what diverged."""

    old: str  # package versions compared (6.1.170-3 .. 6.1.192-2)
    new: str
    old_upstream: str
    new_upstream: str
    total: int  # every change listed between them
    matched: int  # changes that touch anything that diverged
    terms: tuple[str, ...]  # the names and subsystems they were ranked by
    top: tuple[Suspect, ...]
    source: str  # which changelog
    note: str = ""  # why there are none (different kernel lines, no changelog)


@dataclass(frozen=True, slots=True)
class CaptureSummary:
    path: str
    kernel_release: str
    kernel_version: str
    workload: str
    runs: int
    iterations_per_run: int | None
    complete: bool


@dataclass(frozen=True)
class DiffResult:
    old: CaptureSummary
    new: CaptureSummary
    thresholds: Thresholds
    # ranked: significant first by score, then the rest; a ``Rows`` once built (a tuple
    # or list given here is wrapped), whose quiet "unchanged" rows are built on demand
    divergences: Sequence[Divergence]
    keys_tested: int
    tests: tuple[TestMethod, ...] = ()  # every test a row names, with its description
    warnings: tuple[DiffWarning, ...] = ()
    forced: tuple[str, ...] = ()  # comparability problems overridden
    aa_false_positives: int | None = None  # from a negative control, when one was run
    contrasts: tuple[Contrast, ...] = ()  # per kernel with failing and passing iterations
    culprits: tuple[Culprit, ...] = ()  # "Where it diverges", strongest first
    return_mix: tuple[MixChange, ...] = ()  # return shares that changed between kernels
    narrowing: Narrowing | None = None  # the narrowing pass, when one ran
    suspects: Suspects | None = None  # changes between the kernels, ranked (Debian kernels)

    def __post_init__(self) -> None:
        if not isinstance(self.divergences, Rows):  # a plain sequence: every row eager
            object.__setattr__(self, "divergences", Rows(tuple(self.divergences)))
        named = {t.name for t in self.tests} | {"none"}
        unknown = ({d.test for d in self.rows.notable()} | self.rows.quiet_tests) - named
        if unknown:
            raise ValueError(f"rows name tests the result does not describe: {sorted(unknown)}")

    @property
    def rows(self) -> Rows:
        """``divergences`` as the lazy ``Rows`` it always is after construction."""
        assert isinstance(self.divergences, Rows)
        return self.divergences

    @property
    def significant(self) -> list[Divergence]:
        return [d for d in self.rows.notable() if d.significant]

    @property
    def shown(self) -> list[Divergence]:
        """Rows every output lists by default: significant, certain-small, suggestive,
        outcome and absent rows (``unchanged`` ones only on request)."""
        return [d for d in self.rows.notable() if d.significant or d.cls in SHOWN_CLASSES]

    @property
    def regressions(self) -> list[Divergence]:
        return [d for d in self.rows.notable() if d.regression]

    def test_description(self, name: str) -> str:
        for t in self.tests:
            if t.name == name:
                return t.description
        return "not tested: no number on one side (probe absent or failed)"

    def with_aa(self, false_positives: int | None) -> DiffResult:
        return replace(self, aa_false_positives=false_positives)


class FailOn(StrEnum):
    """When a comparison should fail a gate (``--fail-on``)."""

    any = "any"
    regression = "regression"
    none = "none"


Status = Literal["clean", "divergent", "regression"]


def status_of(result: DiffResult) -> Status:
    if result.regressions:
        return "regression"
    if result.significant:
        return "divergent"
    return "clean"


def fails(result: DiffResult, fail_on: FailOn | str) -> bool:
    """The one fail-on policy, used by ``diff``, ``ci`` and JUnit."""
    policy = FailOn(fail_on)
    status = status_of(result)
    if policy is FailOn.any:
        return status != "clean"
    if policy is FailOn.regression:
        return status == "regression"
    return False


def plain(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> null (unbounded or no number), tuples -> lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


__all__ = [
    "CLASSES",
    "CONTEXT_KINDS",
    "FAMILY",
    "FUNCTION_KINDS",
    "METRIC_KINDS",
    "OUTCOME_KINDS",
    "SHOWN_CLASSES",
    "CaptureSummary",
    "DiffResult",
    "DiffWarning",
    "Divergence",
    "DivergenceClass",
    "FailOn",
    "MetricKind",
    "SideValues",
    "Status",
    "TestMethod",
    "Thresholds",
    "fails",
    "plain",
    "status_of",
]
