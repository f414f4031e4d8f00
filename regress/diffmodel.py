"""The differ's result as data: what ``regress diff`` prints and reports render.

This is the contract between the differ (``differ.py``/``stats.py``) and every
renderer (terminal table, JSON, HTML, text report, JUnit). Renderers format;
they never recompute statistics. Changes here are additive.

Keys name one measured quantity across both captures:
  ``syscall:<name>:<ERRNO|ok>``   exits of one syscall with one outcome
  ``retval:<name>:<bucket>``      successful returns in log2 bucket
  ``tracepoint:<cat>:<event>``    tracepoint hits in the workload's tree
  ``function:<name>``             kernel function calls in the workload's tree
  ``liveness``                    iterations whose liveness check failed
  ``syscall:*`` / ``retval:*``    a whole probe family; only on "absent" rows

``retval`` rows are context: tested and ranked, never ``significant`` (return
value sizes and PIDs drift between capture sessions of one kernel).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# What kind of difference a row is. Order here is the display order of classes.
DivergenceClass = Literal[
    "liveness",  # the user-visible symptom: liveness failure rate changed
    "appeared",  # zero (or never seen) on old, present on new, beyond noise
    "vanished",  # present on old, zero on new, beyond noise
    "rate",  # present on both, rate changed
    "absent",  # probe could not be attached on one side: no number to compare
    "unchanged",  # tested, not significant (only listed with --all)
]

MetricKind = Literal["syscall", "retval", "tracepoint", "function", "liveness"]
TestName = Literal["mwu", "poisson", "exact", "fisher", "none"]


@dataclass
class SideValues:
    """One key on one kernel. ``per_iter`` holds one value per run.

    When the probe is not attached on this side (``probe_status`` "absent" or
    "failed") there is no number: ``per_iter`` and ``raw`` are empty and
    ``center`` is NaN (``null`` in JSON); render the status, never 0.
    For the ``liveness`` key ``raw`` holds failures per run, ``trials`` the
    checked iterations per run, ``per_iter`` failures/trials per run and
    ``center`` the pooled failure fraction (sum of failures / sum of trials).
    """

    per_iter: list[float]  # count / iterations, one per run
    raw: list[int]  # raw counts, one per run
    center: float  # median of per_iter (the number shown); NaN when absent
    probe_status: str = "attached"  # "attached" / "absent" / "failed" / "n/a"
    probe_reason: str | None = None
    trials: list[int] | None = None  # liveness only: checked iterations per run


@dataclass
class Divergence:
    key: str
    kind: MetricKind
    label: str  # human-readable, e.g. "openat → ENOENT"
    cls: DivergenceClass
    old: SideValues
    new: SideValues
    ratio: float | None  # new.center / old.center; None when old is 0 or absent
    ratio_ci: tuple[float, float] | None  # 95% CI of the ratio when the test gives one
    delta: float  # new.center - old.center (per iteration)
    test: TestName
    p: float | None
    q: float | None  # Benjamini–Hochberg adjusted
    significant: bool  # q <= alpha AND effect gate passed (or exact change)
    regression: bool  # significant and judged a regression (see README "Ranking")
    score: float  # ranking score; higher first
    notes: list[str] = field(default_factory=list)  # footnote ids / per-row remarks


@dataclass
class DiffWarning:
    """A statement about the whole comparison, printed as a footnote."""

    code: str  # stable id, e.g. "few-runs", "partial-capture", "forced"
    message: str


@dataclass
class CaptureSummary:
    path: str
    kernel_release: str
    kernel_version: str
    workload: str
    runs: int
    iterations_per_run: int | None
    complete: bool


@dataclass
class DiffResult:
    old: CaptureSummary
    new: CaptureSummary
    thresholds: dict[str, Any]  # asdict(Thresholds)
    divergences: list[Divergence]  # ranked: significant first by score, then the rest
    keys_tested: int
    warnings: list[DiffWarning] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)  # comparability problems overridden
    aa_false_positives: int | None = None  # from a negative control, when one was run

    @property
    def significant(self) -> list[Divergence]:
        return [d for d in self.divergences if d.significant]

    @property
    def regressions(self) -> list[Divergence]:
        return [d for d in self.divergences if d.regression]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
