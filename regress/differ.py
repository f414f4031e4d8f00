"""Two captures -> ranked divergences (``DiffResult``).

Order of work: refuse incomparable captures (only the kernel may differ), turn
every run into a row of per-key counts, report probes missing on one side as
"absent" (never as 0), test every other key (``stats.py``), adjust for the
number of keys (BH), gate on effect size, classify, rank.

Ranking (README "Ranking"): rows fall in tiers, highest first --
4 liveness failure rate differs, 3 significant appeared/vanished,
2 significant rate change, 1 probe absent on one side, 0 the rest;
within a tier by ``stats.rank_score`` (significance + effect); ties by kind
(liveness, syscall, tracepoint, function, retval), then by key.

Return-value buckets (``retval:...``) are context: their own BH family, never
"exact", never significant (sizes and PIDs drift between capture sessions).

A row is a *regression* when it is significant and one of: liveness failures
went up; a syscall error (``syscall:X:ERRNO``) appeared or went up; successful
calls of a syscall (``syscall:X:ok``) vanished. Everything else is a divergence
to look at, not a verdict.
"""

from __future__ import annotations

import errno as errno_mod
import fnmatch
import functools
import gc
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from regress import stats, syscalls
from regress.capture import Capture, load_capture
from regress.diffmodel import CaptureSummary, DiffResult, DiffWarning, Divergence, SideValues
from regress.errors import IncomparableError, InputError
from regress.stats import Thresholds

TIER_LIVENESS = 4
TIER_APPEAR = 3
TIER_RATE = 2
TIER_ABSENT = 1
TIER_REST = 0
TIER_WEIGHT = 1000.0

# Families whose keys share one probe record (kind in ``Capture.probes``).
_FAMILY_PROBE = {"syscall": "syscalls", "retval": "retvals"}
_FAMILY_LABEL = {"syscall": "all syscalls", "retval": "all syscall return values"}
_PROBE_FAMILY = {"syscalls": "syscall", "retvals": "retval"}

KeyTuple = tuple[str, str, str]  # (kind, name, sub): sub = errno / bucket / ""


# --------------------------------------------------------------------------- loading


def load_side(path: str | Path) -> Capture:
    """A regress capture or a ``bpftrace -f json`` count map, as a ``Capture``."""
    from regress import bpftrace_import

    path = Path(path)
    if bpftrace_import.looks_like_bpftrace(path):
        return bpftrace_import.load_bpftrace(path)
    return load_capture(path)


# --------------------------------------------------------------------------- comparability


def _short(h: str) -> str:
    return h[:12] if h else "(none)"


def comparability(old: Capture, new: Capture) -> tuple[list[str], list[DiffWarning]]:
    """(problems that make a diff meaningless, differences worth a footnote)."""
    problems: list[str] = []
    warnings: list[DiffWarning] = []
    if old.workload.hash != new.workload.hash:
        problems.append(
            f"workload differs (old {old.workload.name!r} {_short(old.workload.hash)}, "
            f"new {new.workload.name!r} {_short(new.workload.hash)})"
        )
    if old.tracer.fingerprint != new.tracer.fingerprint:
        problems.append(
            f"tracer differs (fingerprint {_short(old.tracer.fingerprint)} vs "
            f"{_short(new.tracer.fingerprint)}): capture both sides with the same regress "
            "version and probe options"
        )
    so, sn = old.machine.shape(), new.machine.shape()
    for k in sorted(so):
        if so[k] != sn.get(k):
            problems.append(f"machine {k} differs ({so[k]} vs {sn.get(k)})")
    io, inew = old.iterations_per_run, new.iterations_per_run
    if io is None or inew is None:
        side = "old" if io is None else "new"
        problems.append(f"{side} capture has runs with different iteration counts")
    elif io != inew:
        problems.append(f"iterations per run differ ({io} vs {inew})")

    def warn(code: str, msg: str) -> None:
        warnings.append(DiffWarning(code, msg))

    if old.kernel.cmdline != new.kernel.cmdline:
        warn(
            "cmdline",
            f"kernel command lines differ: {old.kernel.cmdline!r} vs {new.kernel.cmdline!r}",
        )
    if old.bcc_version != new.bcc_version:
        warn("bcc-version", f"bcc versions differ ({old.bcc_version} vs {new.bcc_version})")
    if old.regress_version != new.regress_version:
        warn(
            "regress-version",
            f"captured by different regress versions ({old.regress_version or '?'} vs "
            f"{new.regress_version or '?'})",
        )
    if old.machine.hostname != new.machine.hostname:
        warn(
            "hostname",
            f"captured on different hosts ({old.machine.hostname} vs {new.machine.hostname})",
        )
    both_imported = old.machine.backend == "import" and new.machine.backend == "import"
    if (
        not both_imported
        and old.kernel.release == new.kernel.release
        and old.kernel.version == new.kernel.version
    ):
        warn(
            "same-kernel",
            f"both captures are from the same kernel ({old.kernel.release}): an A/A comparison, "
            "so every significant row is noise or a non-kernel change",
        )
    return problems, warnings


def _quality_warnings(side: str, cap: Capture) -> list[DiffWarning]:
    out: list[DiffWarning] = []
    if not cap.complete:
        out.append(
            DiffWarning(
                f"partial-{side}",
                f"{side} capture is partial: {len(cap.runs)} of {cap.requested_runs} runs",
            )
        )
    lost: dict[str, int] = {}
    for run in cap.runs:
        for k, v in run.lost.items():
            lost[k] = lost.get(k, 0) + v
    lost = {k: v for k, v in sorted(lost.items()) if v > 0}
    if lost:
        detail = ", ".join(f"{k}={v}" for k, v in lost.items())
        out.append(
            DiffWarning(
                f"lost-{side}", f"{side} capture lost events ({detail}): its counts may be low"
            )
        )
    return out


# --------------------------------------------------------------------------- keys


# Tie-break between rows of equal score: the syscall outcome first, derived views last.
KIND_ORDER = {"liveness": 0, "syscall": 1, "tracepoint": 2, "function": 3, "retval": 4}


@functools.cache
def errno_label(sub: str) -> str:
    """'0' -> 'ok', '2' -> 'ENOENT' (host errno names; unknown -> 'errno<n>')."""
    n = int(sub)
    if n == 0:
        return "ok"
    return errno_mod.errorcode.get(n) or syscalls.KERNEL_ERRNOS.get(n) or f"errno{n}"


def key_string(kind: str, name: str, sub: str) -> str:
    if name == "*":  # a whole probe family (absent rows)
        return f"{kind}:*"
    if kind == "syscall":
        return f"syscall:{name}:{errno_label(sub)}"
    if kind == "retval":
        return f"retval:{name}:{sub}"
    return f"{kind}:{name}"


def key_label(kind: str, name: str, sub: str) -> str:
    if name == "*":
        return _FAMILY_LABEL.get(kind, f"all {kind}s")
    if kind == "syscall":
        return f"{name} {errno_label(sub)}"
    if kind == "retval":
        return f"{name} ret bucket {sub}"
    if kind == "function":
        return f"{name}()"
    return name


@dataclass
class _Side:
    """One capture as a (keys x runs) count matrix."""

    counts: npt.NDArray[np.float64]
    iterations: npt.NDArray[np.float64]


class _KeyIndex:
    """Key -> row number, two-level (family/name -> sub -> row) to avoid a tuple per count."""

    def __init__(self, skip: set[KeyTuple]) -> None:
        self.skip = skip
        self.by_name: dict[tuple[str, str], dict[str, int]] = {}
        self.keys: list[KeyTuple] = []

    def rows_for(self, fam: str, name: str, subs: Iterable[str]) -> list[int] | None:
        """Row numbers for ``subs`` of one name (new keys get new rows); None if skipped."""
        sub_index = self.by_name.get((fam, name))
        if sub_index is None:
            if (fam, "*", "") in self.skip or (fam, name, "") in self.skip:
                return None
            sub_index = self.by_name[(fam, name)] = {}
        out: list[int] = []
        for sub in subs:
            i = sub_index.get(sub)
            if i is None:
                i = sub_index[sub] = len(self.keys)
                self.keys.append((fam, name, sub))
            out.append(i)
        return out


def _run_entries(index: _KeyIndex, cap: Capture) -> list[tuple[list[int], list[int]]]:
    """Per run: (row numbers, counts) for every key the run recorded."""
    per_run: list[tuple[list[int], list[int]]] = []
    for run in cap.runs:
        rows: list[int] = []
        vals: list[int] = []
        for fam, table in (("syscall", run.syscalls), ("retval", run.retvals)):
            for name, inner in table.items():
                r = index.rows_for(fam, name, inner)
                if r is not None:
                    rows.extend(r)
                    vals.extend(inner.values())
        for fam, flat in (("tracepoint", run.tracepoints), ("function", run.functions)):
            for name, n in flat.items():
                r = index.rows_for(fam, name, ("",))
                if r is not None:
                    rows.extend(r)
                    vals.append(n)
        per_run.append((rows, vals))
    return per_run


def _matrix(cap: Capture, entries: list[tuple[list[int], list[int]]], nkeys: int) -> _Side:
    counts = np.zeros((nkeys, len(cap.runs)), dtype=np.float64)
    for j, (rows, vals) in enumerate(entries):
        if rows:  # a run names each key once, so plain assignment is exact
            counts[np.asarray(rows, dtype=np.intp), j] = np.asarray(vals, dtype=np.float64)
    iters = np.asarray([r.iterations for r in cap.runs], dtype=np.float64)
    return _Side(counts, iters)


# --------------------------------------------------------------------------- probes


_GLOB_CHARS = frozenset("*?[")


@dataclass
class _ProbeView:
    """What one capture could observe.

    ``missing``: (kind, name) -> (status, reason) for probes not attached (names may
    be patterns that matched nothing). ``attached``: concrete names per kind.
    ``recorded``: kinds with any probe record; a capture without records for a kind
    (bpftrace imports, hand-made files) is taken as having probed whatever it counted.
    """

    missing: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    attached: dict[str, set[str]] = field(default_factory=dict)
    recorded: set[str] = field(default_factory=set)
    counted: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, cap: Capture) -> _ProbeView:
        view = cls()
        for p in cap.probes:
            kind = _PROBE_FAMILY.get(p.kind, p.kind)
            view.recorded.add(kind)
            if p.status == "attached":
                view.attached.setdefault(kind, set()).add(p.name)
                continue
            name = "*" if p.kind in _PROBE_FAMILY else p.name
            view.missing.setdefault((kind, name), (p.status, p.reason))
        for run in cap.runs:
            view.counted.setdefault("tracepoint", set()).update(run.tracepoints)
            view.counted.setdefault("function", set()).update(run.functions)
        return view

    def probed(self, kind: str, name: str) -> bool:
        if (kind, name) in self.missing:
            return False
        if kind not in self.recorded or name == "*":  # a family is probed unless missing
            return True
        return name in self.attached.get(kind, set())

    def why_not(self, kind: str, name: str) -> tuple[str, str | None]:
        """Status and reason for a name this side did not probe (exact or via a pattern)."""
        if (kind, name) in self.missing:
            return self.missing[(kind, name)]
        for (k, pattern), status in sorted(self.missing.items()):
            if k == kind and fnmatch.fnmatchcase(name, pattern):
                return status
        return ("absent", "not probed on this kernel")


def _side_counts_for(cap: Capture, kind: str, name: str) -> tuple[list[int], list[float]]:
    """Raw and per-iteration counts of one probe (family total for "*") per run."""
    raw: list[int] = []
    for run in cap.runs:
        if kind == "syscall" and name == "*":
            n = sum(sum(v.values()) for v in run.syscalls.values())
        elif kind == "retval" and name == "*":
            n = sum(sum(v.values()) for v in run.retvals.values())
        elif kind == "tracepoint":
            n = run.tracepoints.get(name, 0)
        else:
            n = run.functions.get(name, 0)
        raw.append(n)
    return raw, [n / r.iterations for n, r in zip(raw, cap.runs, strict=True)]


def _absent_rows(
    old: Capture, new: Capture
) -> tuple[list[Divergence], set[KeyTuple], list[DiffWarning]]:
    """Rows for probes one side could not observe; their keys are then not tested.

    Candidates: syscall/retval families with a non-attached record, every concrete
    tracepoint/function either side attached or counted, and non-pattern names
    recorded as missing. A pattern that matched nothing on one side and resolved to
    concrete probes on the other yields rows for those concrete names.
    """
    vo, vn = _ProbeView.of(old), _ProbeView.of(new)
    candidates: set[tuple[str, str]] = set()
    for view in (vo, vn):
        for kind, name in view.missing:
            if name == "*" or not (_GLOB_CHARS & set(name)):
                candidates.add((kind, name))
        for kind in ("tracepoint", "function"):
            for name in view.attached.get(kind, set()) | view.counted.get(kind, set()):
                candidates.add((kind, name))
    rows: list[Divergence] = []
    skip: set[KeyTuple] = set()
    both: list[str] = [
        key_string(kind, name, "") for kind, name in sorted(set(vo.missing) & set(vn.missing))
    ]
    for kind, name in sorted(candidates):
        po, pn = vo.probed(kind, name), vn.probed(kind, name)
        if po and pn:
            continue
        skip.add((kind, name, ""))
        if not po and not pn:
            continue  # listed in the "absent-both" warning when both recorded it
        sides: list[SideValues] = []
        for cap, view, probed in ((old, vo, po), (new, vn, pn)):
            if not probed:
                status, reason = view.why_not(kind, name)
                sides.append(SideValues([], [], math.nan, status, reason))
            else:
                raw, per = _side_counts_for(cap, kind, name)
                sides.append(SideValues(per, raw, float(np.median(per)) if per else math.nan))
        rows.append(
            Divergence(
                key=key_string(kind, name, ""),
                kind=kind,  # type: ignore[arg-type]
                label=key_label(kind, name, ""),
                cls="absent",
                old=sides[0],
                new=sides[1],
                ratio=None,
                ratio_ci=None,
                delta=0.0,
                test="none",
                p=None,
                q=None,
                significant=False,
                regression=False,
                score=TIER_ABSENT * TIER_WEIGHT,
            )
        )
    warnings = []
    if both:
        warnings.append(
            DiffWarning("absent-both", "probes not attached on either kernel: " + ", ".join(both))
        )
    return rows, skip, warnings


# --------------------------------------------------------------------------- liveness


def _liveness_row(
    old: Capture, new: Capture, th: Thresholds
) -> tuple[Divergence | None, list[DiffWarning]]:
    def side(cap: Capture) -> tuple[list[int], list[int]]:
        fails = [sum(1 for x in r.liveness if x is False) for r in cap.runs]
        checked = [sum(1 for x in r.liveness if x is not None) for r in cap.runs]
        return fails, checked

    fo, co = side(old)
    fn, cn = side(new)
    if sum(co) == 0 and sum(cn) == 0:
        return None, []
    if sum(co) == 0 or sum(cn) == 0:
        which = "old" if sum(co) == 0 else "new"
        return None, [
            DiffWarning("liveness-one-side", f"liveness was not checked on the {which} side")
        ]
    a, b = float(sum(fo)), float(sum(co) - sum(fo))
    c, d = float(sum(fn)), float(sum(cn) - sum(fn))
    p = float(stats.fisher_pvalues(np.array([a]), np.array([b]), np.array([c]), np.array([d]))[0])
    ro, rn = a / (a + b), c / (c + d)
    differs = ro != rn
    significant = differs and p <= th.alpha

    def values(fails: list[int], checked: list[int], pooled: float) -> SideValues:
        per = [f / n if n else 0.0 for f, n in zip(fails, checked, strict=True)]
        return SideValues(per, fails, pooled, trials=list(checked))

    delta = rn - ro
    score = stats.rank_score(np.array([p]), np.array([delta]), np.array([ro]), np.array([rn]))[0]
    row = Divergence(
        key="liveness",
        kind="liveness",
        label="liveness check failures",
        cls="liveness" if differs else "unchanged",
        old=values(fo, co, ro),
        new=values(fn, cn, rn),
        ratio=rn / ro if ro > 0 else None,
        ratio_ci=None,
        delta=delta,
        test="fisher",
        p=p,
        q=p,
        significant=significant,
        regression=significant and rn > ro,
        score=round((TIER_LIVENESS if differs else TIER_REST) * TIER_WEIGHT + float(score), 6),
    )
    return row, []


# --------------------------------------------------------------------------- main


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
    warnings += _quality_warnings("old", old) + _quality_warnings("new", new)

    absent, skip, absent_warn = _absent_rows(old, new)
    index = _KeyIndex(skip)
    e_old, e_new = _run_entries(index, old), _run_entries(index, new)
    keys = index.keys
    so, sn = _matrix(old, e_old, len(keys)), _matrix(new, e_new, len(keys))
    rows, row_warn = _test_keys(keys, so, sn, th)
    warnings += row_warn + absent_warn
    live, live_warn = _liveness_row(old, new, th)
    warnings += live_warn

    gated = [d for d in rows if "effect-gate" in d.notes]
    if gated:
        warnings.append(
            DiffWarning(
                "effect-gate",
                f"{len(gated)} key{'' if len(gated) == 1 else 's'} had q <= {th.alpha:g} "
                "but changed by less than "
                f"x{th.min_ratio:g} or {th.min_abs_delta:g}/iteration: not counted as significant",
            )
        )
    allrows = rows + absent + ([live] if live is not None else [])
    allrows.sort(key=lambda d: (-d.score, KIND_ORDER.get(d.kind, 9), d.key))
    return DiffResult(
        old=_summary(old, old_path),
        new=_summary(new, new_path),
        thresholds=th.as_dict(),
        divergences=allrows,
        keys_tested=len(rows),
        warnings=warnings,
        forced=forced,
    )


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
    keys: list[KeyTuple], so: _Side, sn: _Side, th: Thresholds
) -> tuple[list[Divergence], list[DiffWarning]]:
    """Test every key; returns rows (unsorted) and sample-size warnings."""
    k = len(keys)
    n_old, n_new = so.counts.shape[1], sn.counts.shape[1]
    po = so.counts / so.iterations[None, :]
    pn = sn.counts / sn.iterations[None, :]
    c_old = np.median(po, axis=1) if k else np.zeros(0)
    c_new = np.median(pn, axis=1) if k else np.zeros(0)
    tot_old = so.counts.sum(axis=1)
    tot_new = sn.counts.sum(axis=1)
    p = np.ones(k)
    ci_lo = np.full(k, np.nan)
    ci_hi = np.full(k, np.nan)
    test = np.empty(k, dtype=object)
    context = np.array([t[0] == "retval" for t in keys], dtype=bool)
    multi = n_old >= th.min_runs_mwu and n_new >= th.min_runs_mwu
    if multi:
        exact = np.zeros(k, dtype=bool)
        if n_old >= th.min_runs_exact and n_new >= th.min_runs_exact and k:
            # Return-value buckets measure data sizes (/proc text lengths, clock digits),
            # which can be constant within one capture session yet differ between two
            # sessions of the same kernel (seen in ps-loop A/A runs): never exact.
            exact = ~context & (po == po[:, :1]).all(axis=1) & (pn == pn[:, :1]).all(axis=1)
        p[exact] = np.where(po[exact, 0] != pn[exact, 0], 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r_exact = pn[exact, 0] / po[exact, 0]
        ci_lo[exact] = np.where(po[exact, 0] > 0, r_exact, np.nan)
        ci_hi[exact] = ci_lo[exact]
        test[exact] = "exact"
        m = ~exact
        p[m] = stats.mwu_pvalues(po[m], pn[m])
        lo, hi = stats.moses_ratio_ci(po[m], pn[m], th.confidence)
        ci_lo[m], ci_hi[m] = lo, hi
        test[m] = "mwu"
    else:
        e_old, e_new = float(so.iterations.sum()), float(sn.iterations.sum())
        kinds = np.array([t[0] for t in keys], dtype=object)
        subs = np.array([t[2] for t in keys], dtype=object)
        is_sys = kinds == "syscall"
        is_err = is_sys & (subs != "0")
        # totals of each syscall name, per side, for the errno-composition test
        name_ids: dict[str, int] = {}
        nid = np.array(
            [name_ids.setdefault(t[1], len(name_ids)) if t[0] == "syscall" else -1 for t in keys],
            dtype=np.intp,
        )
        fisher = np.zeros(k, dtype=bool)
        if is_sys.any():
            sys_tot_old = np.bincount(nid[is_sys], weights=tot_old[is_sys], minlength=len(name_ids))
            sys_tot_new = np.bincount(nid[is_sys], weights=tot_new[is_sys], minlength=len(name_ids))
            all_old = np.where(is_sys, sys_tot_old[np.maximum(nid, 0)], 0.0)
            all_new = np.where(is_sys, sys_tot_new[np.maximum(nid, 0)], 0.0)
            # Successful calls carry the syscall's volume (tested as a rate on the ok
            # row); an errno row then tests its share of the calls. Without successes on
            # both sides there is no share to speak of: test the errno's rate instead.
            is_ok_key = is_sys & (subs == "0")
            ok_old = np.bincount(
                nid[is_ok_key], weights=tot_old[is_ok_key], minlength=len(name_ids)
            )
            ok_new = np.bincount(
                nid[is_ok_key], weights=tot_new[is_ok_key], minlength=len(name_ids)
            )
            has_ok = (ok_old[np.maximum(nid, 0)] > 0) & (ok_new[np.maximum(nid, 0)] > 0)
            fisher = is_err & has_ok
            if fisher.any():
                p[fisher] = stats.fisher_pvalues(
                    tot_old[fisher],
                    all_old[fisher] - tot_old[fisher],
                    tot_new[fisher],
                    all_new[fisher] - tot_new[fisher],
                )
            test[fisher] = "fisher"
        pois = ~fisher
        p[pois] = stats.poisson_rate_pvalues(tot_old[pois], e_old, tot_new[pois], e_new)
        lo, hi = stats.poisson_ratio_ci(tot_old[pois], e_old, tot_new[pois], e_new, th.confidence)
        ci_lo[pois], ci_hi[pois] = lo, hi
        test[pois] = "poisson"
    # Return-value buckets are context, not findings: they track data sizes and PID
    # values, which drift between capture sessions of one kernel (ps-loop A/A runs
    # showed read() size buckets moving 1 -> 3 per iteration). They get their own
    # BH family, are shown with --all and are never significant.
    q = np.ones(k)
    q[~context] = stats.bh_qvalues(p[~context])
    q[context] = stats.bh_qvalues(p[context])
    gate = stats.effect_gate(c_old, c_new, th)
    would_be = (q <= th.alpha) & gate
    sig = would_be & ~context
    delta = c_new - c_old
    appeared = (tot_old == 0) & (tot_new > 0)
    vanished = (tot_new == 0) & (tot_old > 0)
    tier = np.where(sig, np.where(appeared | vanished, TIER_APPEAR, TIER_RATE), TIER_REST)
    score = np.round(tier * TIER_WEIGHT + stats.rank_score(q, delta, c_old, c_new), 6)

    warnings = stats.sample_size_warnings(n_old, n_new, int((~context).sum()), th)
    n_context = int((would_be & context).sum())
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
    mwu_note = [c for c in ("few-runs", "mwu-power") if c in codes]
    single_note = ["single-run"] if "single-run" in codes else []

    is_sys = np.array([t[0] == "syscall" for t in keys], dtype=bool)
    is_ok = np.array([t[2] == "0" for t in keys], dtype=bool)
    regression = sig & is_sys & np.where(is_ok, vanished, c_new > c_old)
    cls_arr = np.where(
        sig, np.where(appeared, "appeared", np.where(vanished, "vanished", "rate")), "unchanged"
    )
    gated = ((q <= th.alpha) & ~gate).tolist()
    ci_ok = (~np.isnan(ci_lo) & (c_old != 0)).tolist()
    po_l, pn_l = po.tolist(), pn.tolist()
    ro_l, rn_l = so.counts.astype(np.int64).tolist(), sn.counts.astype(np.int64).tolist()
    cols = zip(
        keys,
        c_old.tolist(),
        c_new.tolist(),
        cls_arr.tolist(),
        test.tolist(),
        p.tolist(),
        q.tolist(),
        sig.tolist(),
        regression.tolist(),
        score.tolist(),
        ci_lo.tolist(),
        ci_hi.tolist(),
        ci_ok,
        gated,
        strict=True,
    )
    rows: list[Divergence] = []
    for i, (key, co, cn, cls, t, pi, qi, s, reg, sc, lo_i, hi_i, has_ci, gate_fail) in enumerate(
        cols
    ):
        kind, name, sub = key
        notes = list(mwu_note if t == "mwu" else single_note if t != "exact" else [])
        if gate_fail:
            notes.append("effect-gate")
        elif kind == "retval" and qi <= th.alpha:
            notes.append("retval-context")
        rows.append(
            Divergence(
                key=key_string(kind, name, sub),
                kind=kind,
                label=key_label(kind, name, sub),
                cls=cls,
                old=SideValues(po_l[i], ro_l[i], co),
                new=SideValues(pn_l[i], rn_l[i], cn),
                ratio=cn / co if co > 0 else None,
                ratio_ci=(lo_i, hi_i) if has_ci else None,
                delta=cn - co,
                test=t,
                p=pi,
                q=qi,
                significant=s,
                regression=reg,
                score=sc,
                notes=notes,
            )
        )
    return rows, warnings
