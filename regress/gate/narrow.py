"""The narrowing pass: from a regression's symptom to the kernel functions, automatically.

The seed hunt, made one step: after the first pass (syscalls, outcomes) finds a
regression, regress

1. picks the syscalls to look under (``narrowing_targets``): those whose errors became
   a regression; then those whose *return mix* changed (errno or return-size shares,
   ``regress.diff.returnmix`` -- upstream of a symptom: ps's ``getdents64`` returns fewer
   entries before ps opens fewer files), first between failing and passing iterations,
   then between the kernels; then those merely called more or less often;
2. discovers the functions the workload runs under them on both kernels (ftrace
   ``function_graph`` in the guests, ``regress.guest.discover``), capped;
3. captures both kernels again with those functions traced -- entries, return classes,
   errno origins with their call paths -- and the same runs and iterations;
4. diffs that pass; its "Where it diverges" replaces the first pass's.

Nothing runs when nothing regressed. ``regress narrow OLD NEW`` runs steps 1-4 later
from two saved captures.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from regress.diff import returnmix
from regress.diff.contrast import iteration_failed
from regress.gate.pipeline import Judged, judge
from regress.model.capture import Capture
from regress.model.events import Event, Progress, ignore
from regress.model.names import is_syscall_name
from regress.model.result import DiffResult, MixChange, Narrowing, Thresholds
from regress.vm import backend as vm_backend
from regress.vm.backend import RunOptions, load_workload, out_dir_for

MAX_SYSCALLS = 3
NARROW_RUNS = 3  # runs per kernel in the pass (>= returnmix.MIN_UNITS for certainty)
NARROW_ITERATIONS = 25  # iterations per run in the pass (ps-loop: ~6 failing ones per run)
MAX_FUNCTIONS = 200  # discovered functions traced (besides the workload's own list)


@dataclass(frozen=True)
class NarrowOutcome:
    result: DiffResult  # the first pass's result, with the pass's culprits and summary
    judged: Judged  # the pass's own comparison


Tables = tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]  # syscalls, retvals


def _outcome_units(run_tables: Iterable[Tables]) -> returnmix.Units:
    """Per unit, syscall -> outcome class -> n: ``E<errno>`` for errors, ``b<k>`` for
    successful returns in log2 bucket k (or ``ok`` without return values)."""
    units: returnmix.Units = []
    for syscalls, retvals in run_tables:
        unit: dict[str, dict[str, float]] = {}
        for name, errs in syscalls.items():
            classes = unit.setdefault(name, {})
            for err, n in errs.items():
                if err != "0":
                    classes[f"E{err}"] = float(n)
            buckets = retvals.get(name)
            if buckets:
                for b, n in buckets.items():
                    classes[f"b{b}"] = float(n)
            elif errs.get("0"):
                classes["ok"] = float(errs["0"])
        units.append(unit)
    return units


def _syscalls_in(changes: list[MixChange]) -> list[str]:
    return list(dict.fromkeys(m.function for m in changes))


def syscall_mix_changes(old: Capture, new: Capture, th: Thresholds) -> tuple[list[str], list[str]]:
    """Syscalls whose outcome mix changed: (in a kernel's failing vs passing iterations,
    between the kernels)."""
    in_contrast: list[MixChange] = []
    for cap in (new, old):
        failed = np.asarray(iteration_failed(cap), dtype=bool)
        if failed.any() and (~failed).any() and all(r.per_iteration for r in cap.runs):
            per_iter: list[Tables] = []
            for run in cap.runs:
                series = run.per_iteration or {}
                sys_s, ret_s = series.get("syscall", {}), series.get("retval", {})
                for it in range(run.iterations):
                    per_iter.append(
                        (
                            {n: {e: v[it] for e, v in errs.items()} for n, errs in sys_s.items()},
                            {n: {b: v[it] for b, v in bs.items()} for n, bs in ret_s.items()},
                        )
                    )
            in_contrast += returnmix.compare(_outcome_units(per_iter), failed, th)
    runs = [(r.syscalls, r.retvals) for r in (*old.runs, *new.runs)]
    group = np.array([False] * len(old.runs) + [True] * len(new.runs))
    between = returnmix.compare(_outcome_units(runs), group, th)
    return _syscalls_in(in_contrast), _syscalls_in(between)


def narrowing_targets(judged: Judged) -> tuple[list[str], str]:
    """The syscalls to look under, and why; ([], reason) when no pass should run."""
    result = judged.result
    if not result.regressions:
        return [], "no regression: nothing to narrow"
    picked: dict[str, str] = {}

    def add(names: Iterable[str], why: str) -> None:
        # Names of one syscall's entry point only (not a probe family "*"): sigreturn(-1)'s
        # EINTR is the interrupted syscall's error, restored by rt_sigreturn, and that
        # syscall's own row has it.
        for name in names:
            if is_syscall_name(name) and len(picked) < MAX_SYSCALLS:
                picked.setdefault(name, why)

    add((d.name for d in result.regressions if d.kind == "syscall"), "its errors regressed")
    contrast_mix, kernel_mix = syscall_mix_changes(judged.old, judged.new, result.thresholds)
    add(contrast_mix, "its return mix differs when the workload fails")
    add(kernel_mix, "its return mix changed between the kernels")
    add(
        (r.name for c in result.contrasts for r in c.rows if r.kind == "syscall"),
        "it is called more or less often when the workload fails",
    )
    add((d.name for d in result.shown if d.kind == "syscall"), "its counts changed")
    if not picked:
        return [], "the regression names no syscall to look under"
    why = "; ".join(f"{name}: {reason}" for name, reason in picked.items())
    return list(picked), why


def narrow(
    opts: RunOptions,
    first: Judged,
    thresholds: Thresholds,
    progress: Progress = ignore,
    *,
    backend: str = "qemu",
    syscalls: list[str] | None = None,
) -> NarrowOutcome | None:
    """Run the narrowing pass for a judged first pass; None when nothing regressed.

    ``syscalls`` chooses the targets instead (the pass then runs even without a
    regression: on an A/A pair it must find nothing)."""
    if syscalls:
        why = "chosen by the user"
    else:
        syscalls, why = narrowing_targets(first)
    if not syscalls:
        return None
    started = time.monotonic()
    be = vm_backend.get(backend)
    progress(
        Event("stage", message=f"narrowing: discovering functions under {', '.join(syscalls)}")
    )
    found = be.discover_pair(opts, syscalls, MAX_FUNCTIONS, progress)
    spec = load_workload(opts)
    discovered: dict[str, None] = {}
    notes: list[str] = []
    for side in ("old", "new"):
        discovered.update(dict.fromkeys(found[side].all_functions()))
        notes += [f"{side}: {n}" for n in found[side].notes]
    names = list(dict.fromkeys([*spec.functions, *list(discovered)[:MAX_FUNCTIONS]]))
    out_dir = out_dir_for(opts) / "narrow"
    # Function-level evidence is mostly exact (constant per run), so the pass takes at
    # most NARROW_RUNS runs of NARROW_ITERATIONS: it must not cost more than the first
    # pass (bench/bench_narrow.py), and its probes slow every iteration down.
    iterations = spec.iterations if opts.iterations is None else opts.iterations
    second = replace(
        opts,
        functions=names,
        function_returns=True,
        out_dir=out_dir,
        runs=min(opts.runs, NARROW_RUNS),
        iterations=min(iterations, NARROW_ITERATIONS),
    )
    progress(Event("stage", message=f"narrowing: tracing {len(names)} functions on both kernels"))
    pair = be.capture_pair(second, progress)
    judged = judge(pair.captures["old"], pair.captures["new"], thresholds)
    summary = Narrowing(
        syscalls=tuple(syscalls),
        why=why,
        functions=len(names),
        discovered=max((found[s].seen for s in ("old", "new")), default=0),
        captures=(str(pair.captures["old"]), str(pair.captures["new"])),
        wall_s=round(time.monotonic() - started, 1),
        significant=len(judged.result.significant),
        aa_false_positives=judged.aa.false_positives,
        notes=tuple(notes),
    )
    merged = replace(first.result, culprits=judged.result.culprits, narrowing=summary)
    return NarrowOutcome(merged, judged)
