"""Two captures -> ranked divergences (``DiffResult``): the orchestration of the diff stage.

Order of work: refuse incomparable captures (``comparability``), report probes one side
could not observe as "absent" (``probes``), build the shared count matrix (``keys``),
choose and run one test per key (``tests``), adjust for the number of keys
(Benjamini–Hochberg, one family for findings and one for context rows), gate on effect
size, classify and rank (``rank``), and add the liveness row.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path

import numpy as np

from regress.diff import returnmix, tests
from regress.diff.comparability import comparability, quality_warnings
from regress.diff.contrast import contrast
from regress.diff.keys import KeyCounts, display_sub
from regress.diff.probes import absent_rows
from regress.diff.rank import TIER_OUTCOME, TIER_REST, Classes, rank_score, tier_score
from regress.diff.rowtable import RowTable, ranked_rows
from regress.diff.where import culprits
from regress.errors import IncomparableError, InputError
from regress.model.capture import Capture, load_capture
from regress.model.result import (
    CaptureSummary,
    DiffResult,
    DiffWarning,
    Divergence,
    SideValues,
    TestMethod,
    Thresholds,
)


def load_side(path: str | Path) -> Capture:
    """A regress capture or a ``bpftrace -f json`` count map, as a ``Capture``."""
    from regress.diff import imports

    path = Path(path)
    if imports.looks_like_bpftrace(path):
        return imports.load_bpftrace(path)
    return load_capture(path)


def diff_captures(
    old: Capture,
    new: Capture,
    *,
    thresholds: Thresholds | None = None,
    force: bool = False,
    old_path: str = "old",
    new_path: str = "new",
) -> DiffResult:
    """Rank what ``new`` does differently from ``old``; raise if they are not comparable."""
    # Rows are hundreds of thousands of small acyclic objects built next to two large
    # captures; the cyclic GC would rescan those captures over and over (it was half
    # the run time in bench/bench_differ.py), so it is paused while rows are built.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _diff(old, new, thresholds or Thresholds(), force, old_path, new_path)
    finally:
        if gc_was_enabled:
            gc.enable()


def _diff(
    old: Capture, new: Capture, th: Thresholds, force: bool, old_path: str, new_path: str
) -> DiffResult:
    for side, cap, path in (("old", old, old_path), ("new", new, new_path)):
        if not cap.runs:
            raise InputError(f"{path}: {side} capture has no runs: nothing to compare")
    problems, warnings = comparability(old, new)
    forced: list[str] = []
    if problems:
        if not force:
            raise IncomparableError(
                f"{old_path} and {new_path} are not comparable: " + "; ".join(problems),
                hint="pass --force to diff anyway",
            )
        forced = list(problems)
        warnings = [DiffWarning("forced", f"compared despite: {p}") for p in problems] + warnings
    warnings += quality_warnings("old", old) + quality_warnings("new", new)

    absent, skip, absent_warn = absent_rows(old, new)
    counts = KeyCounts.of(old, new, skip)
    table, methods, row_warn = _test_keys(counts, th)
    warnings += row_warn + absent_warn
    outcomes, outcome_warn = _outcome_rows(old, new, th)
    warnings += outcome_warn
    if outcomes:
        methods = (*methods, tests.LIVENESS.method)

    gated = int(table.classes.gated.sum())
    if gated:
        warnings.append(
            DiffWarning(
                "effect-gate",
                f"{gated} key{'' if gated == 1 else 's'} had q <= {th.alpha:g} "
                "but changed by less than "
                f"x{th.min_ratio:g} or {th.min_abs_delta:g}/iteration"
                + (
                    f" ({th.own_gates()})"
                    if table.classes.own_gate[table.classes.gated].any()
                    else ""
                )
                + ": not counted as significant",
            )
        )
    notable = table.notable()
    tested = interpret(table.rows(np.flatnonzero(notable).tolist()))
    ranked = ranked_rows(table, tested + absent + outcomes, np.flatnonzero(~notable))
    contrasts = []
    for side, cap in (("old", old), ("new", new)):
        found, contrast_warn = contrast(cap, side, th)
        warnings += contrast_warn
        if found is not None:
            contrasts.append(found)
    mix = tuple(returnmix.between_kernels(old, new, th))
    if mix or any(c.mix for c in contrasts):
        methods = (*methods, returnmix.TEST)
    return DiffResult(
        old=_summary(old, old_path),
        new=_summary(new, new_path),
        thresholds=th,
        divergences=ranked,
        keys_tested=len(counts),
        tests=methods,
        warnings=tuple(warnings),
        forced=tuple(forced),
        contrasts=tuple(contrasts),
        culprits=culprits(ranked.notable(), tuple(contrasts), mix, *_function_context(old, new)),
        return_mix=mix,
    )


def _function_context(
    old: Capture, new: Capture
) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], list[str]]]:
    """Both captures' syscalls per function, and errno origins' call paths (new first)."""
    under: dict[str, dict[str, int]] = {}
    paths: dict[tuple[str, str], list[str]] = {}
    for cap in (new, old):
        for run in cap.runs:
            for fn, per in run.fn_syscalls.items():
                mine = under.setdefault(fn, {})
                for sysname, n in per.items():
                    mine[sysname] = mine.get(sysname, 0) + n
            for key, frames in run.origin_stacks.items():
                sysname, _, sub = key.partition(":")
                paths.setdefault((sysname, display_sub("origin", sub)), frames)
    return under, paths


def _summary(cap: Capture, path: str) -> CaptureSummary:
    return CaptureSummary(
        path=path,
        kernel_release=cap.kernel.release,
        kernel_version=cap.kernel.version,
        workload=cap.workload.name,
        runs=len(cap.runs),
        iterations_per_run=cap.iterations_per_run,
        complete=cap.complete,
    )


def _test_keys(
    counts: KeyCounts, th: Thresholds
) -> tuple[RowTable, tuple[TestMethod, ...], list[DiffWarning]]:
    """Choose, run, adjust: every key's results as columns, the tests used, warnings."""
    run = tests.run_tests(counts, th)
    context = counts.context
    # Return-value buckets are context, not findings: they track data sizes and PID
    # values, which drift between capture sessions of one kernel (ps-loop A/A runs
    # showed read() size buckets moving 1 -> 3 per iteration). They get their own
    # BH family, are shown with --all and are never significant.
    exact = np.array([t == "exact" for t in run.test], dtype=bool)
    q = tests.adjust(run.p, context, exact)
    cl = Classes(counts, run.p, q, exact, th)

    warnings = tests.sample_size_warnings(counts.n_old, counts.n_new, th)
    warnings += [DiffWarning("run-factor", note) for note in run.notes]
    n_context = int((cl.would_be & context).sum())
    if n_context:
        warnings.append(
            DiffWarning(
                "retval-context",
                f"{n_context} return-value bucket key{'s' if n_context != 1 else ''} changed "
                "beyond the thresholds; shown only with --all and never counted as "
                "significant: return-value sizes and PIDs drift between capture sessions "
                "of the same kernel",
            )
        )
    codes = {w.code for w in warnings}
    table = RowTable(counts, run, q, cl, th, "few-runs" in codes, "single-run" in codes)
    return table, run.methods, warnings


def _outcome_row(
    kind: str,
    old_per_run: tuple[list[int], list[int]],
    new_per_run: tuple[list[int], list[int]],
    th: Thresholds,
    interpretation: str = "",
) -> tuple[Divergence | None, list[DiffWarning]]:
    """The liveness or exit-status row: failures pooled per side, Fisher at alpha."""
    fo, co = old_per_run
    fn, cn = new_per_run
    what = "liveness" if kind == "liveness" else "the command's exit status"
    if sum(co) == 0 and sum(cn) == 0:
        return None, []
    if sum(co) == 0 or sum(cn) == 0:
        which = "old" if sum(co) == 0 else "new"
        return None, [
            DiffWarning(f"{kind}-one-side", f"{what} was not recorded on the {which} side")
        ]
    a, b = sum(fo), sum(co) - sum(fo)
    c, d = sum(fn), sum(cn) - sum(fn)
    p = tests.LIVENESS.pvalue(a, b, c, d)
    ro, rn = a / (a + b), c / (c + d)
    differs = ro != rn
    significant = differs and p <= th.alpha

    def values(fails: list[int], checked: list[int], pooled: float) -> SideValues:
        per = tuple(f / n if n else 0.0 for f, n in zip(fails, checked, strict=True))
        return SideValues(per, tuple(fails), pooled, trials=tuple(checked))

    delta = rn - ro
    score = rank_score(np.array([p]), np.array([delta]), np.array([ro]), np.array([rn]))[0]
    changed_cls = "liveness" if kind == "liveness" else "exit-status"
    row = Divergence(
        kind=kind,  # type: ignore[arg-type]
        name=kind,
        sub="",
        cls=changed_cls if differs else "unchanged",  # type: ignore[arg-type]
        old=values(fo, co, ro),
        new=values(fn, cn, rn),
        ratio=rn / ro if ro > 0 else None,
        ratio_ci=None,
        delta=delta,
        test=tests.LIVENESS.name,
        p=p,
        q=p,
        significant=significant,
        regression=significant and rn > ro,
        score=tier_score(TIER_OUTCOME if differs else TIER_REST, float(score)),
        interpretation=interpretation,
    )
    return row, []


def _outcome_rows(
    old: Capture, new: Capture, th: Thresholds
) -> tuple[list[Divergence], list[DiffWarning]]:
    """The liveness row and the exit-status row (the latter says how iterations ended)."""

    def ends(c: Capture) -> str:
        return ", ".join(f"{k} x{n}" for k, n in c.exit_outcomes().items())

    exit_text = ""
    if old.exit_outcomes() != new.exit_outcomes() and any(
        sum(f) for f in (old.exit_per_run()[0], new.exit_per_run()[0])
    ):
        exit_text = f"old: {ends(old)}; new: {ends(new)}"
    rows: list[Divergence] = []
    warnings: list[DiffWarning] = []
    for kind, fo, fn, text in (
        ("liveness", old.liveness_per_run(), new.liveness_per_run(), ""),
        ("exit", old.exit_per_run(), new.exit_per_run(), exit_text),
    ):
        row, warn = _outcome_row(kind, fo, fn, th, text)
        rows += [row] if row is not None else []
        warnings += warn
    return rows, warnings


def interpret(rows: list[Divergence]) -> list[Divergence]:
    """Say what a change means where the kernel's conventions tell (ENOSYS).

    ENOSYS vanishing from a syscall while other outcomes appear reads "now implemented"
    (not a regression, whatever errno the implementation returns); ENOSYS appearing reads
    "no longer implemented" (a regression).
    """
    enosys = {
        d.name: d for d in rows if d.kind == "syscall" and d.sub == "ENOSYS" and d.significant
    }
    if not enosys:
        return rows
    out: list[Divergence] = []
    for d in rows:
        e = enosys.get(d.name) if d.kind == "syscall" else None
        if e is None:
            out.append(d)
        elif e.cls == "vanished":
            note = f"{d.name} is now implemented (ENOSYS vanished)"
            out.append(replace(d, regression=False, interpretation=note))
        elif e.cls == "appeared" and d is e:
            out.append(replace(d, interpretation=f"{d.name} is no longer implemented"))
        else:
            out.append(d)
    return out
