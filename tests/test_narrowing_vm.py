"""Narrowing for real: Debian 6.1.0-56 under QEMU, booted as both sides, the new side with
a kernel-side fault whose culprit is known; "Where it diverges" must name it first.

``null`` (default suite, the whole product path): a module makes find_ge_pid() return
NULL instead of the next pid in every 8th call by ps, so ps stops walking /proc early in
some iterations (the seed bug). The first pass sees liveness fail; the narrowing pass
discovers the functions under the syscalls whose returns changed, traces their returns on
both kernels and must put find_ge_pid first -- on the *share* of its returns that are NULL
(every walk still ends with exactly one NULL) -- naming getdents64 as the syscall it
explains. ~100 s (TCG, both boots in parallel). The module is built on the host against
the cached headers (gcc-12, make: scripts/setup.sh).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from regress.gate.narrow import narrow
from regress.gate.pipeline import judge
from regress.gate.selftest import (
    SelftestOptions,
    SelftestOutcome,
    canary_fault,
    evaluate_selftest,
    run_selftest,
)
from regress.guest.modfault import ReturnFault, stats_of
from regress.model.capture import load_capture
from regress.model.result import Thresholds
from regress.vm.backend import DEFAULT_NEW, RunOptions

pytestmark = pytest.mark.vm


def _selftest(canary: str, out: Path, *, narrow: bool) -> SelftestOutcome:
    return run_selftest(
        SelftestOptions(
            kernel=DEFAULT_NEW,
            fault=canary_fault(canary),
            run=RunOptions(runs=4, iterations=10, out_dir=out),
            narrow=narrow,
        )
    )


def test_null_canary_narrowing_pass_names_find_ge_pid(vm_ready: None, tmp_path: Path) -> None:
    outcome = _selftest("null", tmp_path / "null", narrow=True)
    v = outcome.verdict
    assert v.passed, v.message()
    n = outcome.result.narrowing
    assert n is not None and n.functions > 50 and n.discovered > 0
    first = outcome.result.culprits[0]
    assert first.function == "find_ge_pid" and "getdents64" in first.syscalls
    share = first.evidence[0]
    assert (share.measure, share.label, share.source) == (
        "share",
        "find_ge_pid() returned NULL/0",
        "contrast",
    )
    assert share.after > share.before  # NULL is a larger share of returns when ps fails
    control = load_capture(outcome.captures["control"])
    faulted = load_capture(outcome.captures["faulted"])
    stats = stats_of(list(faulted.notes))
    assert stats is not None and stats[1] > 0 and stats_of(list(control.notes)) is None
    # the symptom is there too: liveness failed in some iterations only
    live = {d.key: d for d in outcome.result.divergences}["liveness"]
    assert 0 < live.new.center < 1 and live.old.center == 0
    # the pass's own captures: return probes on, at most 3 runs, same instrument both sides
    pass_old, pass_new = (load_capture(p) for p in n.captures)
    assert len(pass_old.runs) == 3 and pass_old.tracer.fingerprint == pass_new.tracer.fingerprint
    assert pass_new.tracer.options["function_returns"] is True
    # every failed syscall exit has exactly one origin record (a function, or "?")
    for run in pass_new.runs:
        born: dict[tuple[str, str], int] = {}
        for sysname, subs in run.origins.items():
            for sub, count in subs.items():
                key = (sysname, sub.split("@")[0])
                born[key] = born.get(key, 0) + count
        errors = {
            (sysname, err): count
            for sysname, errs in run.syscalls.items()
            for err, count in errs.items()
            if err != "0"
        }
        assert born == errors
    # judged as if a downstream function were the culprit, the same captures fail
    wrong, _ = evaluate_selftest(control, faulted, ReturnFault("next_tgid", "null"), Thresholds())
    assert not wrong.passed and "not first" in wrong.message()


@pytest.mark.slow
def test_errno_canary_proc_pid_permission_leads_where_it_diverges(
    vm_ready: None, tmp_path: Path
) -> None:
    outcome = _selftest("errno", tmp_path / "errno", narrow=False)
    assert outcome.verdict.passed, outcome.verdict.message()
    first = outcome.result.culprits[0]
    assert first.function == "proc_pid_permission"
    assert any("-EACCES" in e.label for e in first.evidence)
    rows = {d.key: d for d in outcome.result.divergences}
    assert rows["syscall:openat:EACCES"].significant


@pytest.mark.slow
def test_lsm_canary_errno_is_traced_to_the_lsm_hook(vm_ready: None, tmp_path: Path) -> None:
    """openat EACCES from the BPF-LSM fault: its origin is the LSM hook path, with the
    call path from the syscall down to it."""
    outcome = _selftest("lsm", tmp_path / "lsm", narrow=True)
    assert outcome.verdict.passed, outcome.verdict.message()
    first = outcome.result.culprits[0]
    assert first.function in ("bpf_lsm_file_open", "security_file_open")
    assert first.syscalls == ("openat",)
    assert any(e.label.startswith("openat EACCES born in ") for e in first.evidence)
    assert "do_dentry_open" in first.path and "path_openat" in first.path


@pytest.mark.slow
def test_narrowing_an_aa_pair_finds_nothing(vm_ready: None, tmp_path: Path) -> None:
    """The pass forced onto an A/A pair (same kernel, no fault): nothing significant."""
    out = tmp_path / "aa"
    opts = RunOptions(old=DEFAULT_NEW, new=DEFAULT_NEW, runs=3, iterations=10, out_dir=out)
    from regress.gate.pipeline import compare

    first = compare(opts, Thresholds())
    assert not first.result.regressions
    assert narrow(opts, first.judged, Thresholds()) is None  # nothing regressed: no pass
    forced = narrow(
        opts,
        judge(first.captures["old"], first.captures["new"], Thresholds()),
        Thresholds(),
        syscalls=["openat", "getdents64"],
    )
    assert forced is not None and forced.result.narrowing is not None
    assert forced.result.narrowing.significant == 0, forced.judged.result.significant
    assert forced.result.culprits == ()
