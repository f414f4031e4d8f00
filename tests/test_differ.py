"""diff_captures on in-memory captures: comparability, classes, regressions, determinism."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from regress.diff import rank, tests
from regress.diff.differ import diff_captures
from regress.diff.keys import KeyCounts
from regress.errors import IncomparableError, InputError
from regress.gate.narrow import narrowing_targets
from regress.gate.pipeline import judge
from regress.model.capture import (
    Capture,
    KernelInfo,
    MachineInfo,
    ProbeStatus,
    Run,
    TracerInfo,
    WorkloadInfo,
    load_capture,
)
from regress.model.result import Thresholds
from regress.report.json import to_json
from regress.report.table import render_table

IT = 10


def make(release: str, runs: list[dict[str, Any]], **kw: Any) -> Capture:
    return Capture(
        kernel=KernelInfo(release=release, version=release, cmdline=""),
        machine=MachineInfo(backend="host", arch="x86_64", cpus=kw.pop("cpus", 2), mem_mb=1024),
        tracer=TracerInfo(fingerprint=kw.pop("fingerprint", "f"), options={}, bpf_text=""),
        workload=WorkloadInfo(name="w", hash=kw.pop("whash", "h"), spec={}),
        bcc_version="1",
        requested_runs=len(runs),
        probes=kw.pop("probes", []),
        runs=[
            Run(
                index=i,
                iterations=r.get("iterations", IT),
                wall_s=1.0,
                started_utc="",
                syscalls=r.get("syscalls", {}),
                retvals=r.get("retvals", {}),
                tracepoints=r.get("tracepoints", {}),
                functions=r.get("functions", {}),
                liveness=r.get("liveness", []),
                exit_codes=r.get("exit_codes", []),
                timed_out=r.get("timed_out", []),
                per_iteration=r.get("per_iteration"),
            )
            for i, r in enumerate(runs)
        ],
    )


def same(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [dict(fields) for _ in range(n)]


def rows(result: Any) -> dict[str, Any]:
    return {d.key: d for d in result.divergences}


def test_incomparable_refused_unless_forced() -> None:
    old = make("a", same(3, syscalls={"read": {"0": 10}}))
    new = make("b", same(3, syscalls={"read": {"0": 10}}), whash="other", cpus=8)
    with pytest.raises(IncomparableError) as exc:
        diff_captures(old, new, old_path="o.json", new_path="n.json")
    msg = exc.value.one_line()
    assert "o.json and n.json are not comparable" in msg
    assert "workload differs" in msg and "machine cpus differs (2 vs 8)" in msg
    assert "--force" in msg
    res = diff_captures(old, new, force=True)
    assert len(res.forced) == 2
    assert [w.code for w in res.warnings][:2] == ["forced", "forced"]


def test_iterations_per_run_must_match() -> None:
    old = make("a", same(3, syscalls={"read": {"0": 10}}))
    new = make("b", same(3, syscalls={"read": {"0": 10}}, iterations=20))
    with pytest.raises(IncomparableError, match="iterations per run differ"):
        diff_captures(old, new)


def test_no_runs_is_an_input_error_even_forced() -> None:
    old = make("a", [])
    new = make("b", same(1, syscalls={"read": {"0": 1}}))
    with pytest.raises(InputError, match="has no runs"):
        diff_captures(old, new, force=True)


def test_exact_needs_min_runs_and_constant_counts() -> None:
    old = make("a", same(2, syscalls={"getpid": {"0": 100}}))
    new = make("b", same(2, syscalls={"getpid": {"0": 200}}))
    d = rows(diff_captures(old, new))["syscall:getpid:ok"]
    assert d.test == "ql"  # 2 vs 2 runs: never "certain", tested as a varying count
    old = make("a", same(3, syscalls={"getpid": {"0": 100}}))
    new = make("b", same(3, syscalls={"getpid": {"0": 200}}))
    d = rows(diff_captures(old, new))["syscall:getpid:ok"]
    assert d.test == "exact" and d.p == 0.0 and d.significant and d.ratio == 2.0
    assert d.ratio_ci == (2.0, 2.0)
    # equal constants are exactly unchanged
    d = rows(diff_captures(old, dataclasses.replace(new, runs=old.runs)))["syscall:getpid:ok"]
    assert d.test == "exact" and d.p == 1.0 and d.cls == "unchanged"


def _nanosleeps(sequences: list[list[int]], series: bool = True) -> list[dict[str, Any]]:
    """Runs of 3 iterations whose clock_nanosleep counts per iteration are ``sequences``."""
    return [
        {
            "iterations": len(seq),
            "syscalls": {"clock_nanosleep": {"0": sum(seq)}},
            "per_iteration": {"syscall": {"clock_nanosleep": {"0": seq}}} if series else None,
        }
        for seq in sequences
    ]


def test_small_constant_counts_repeated_at_every_iteration_are_certain() -> None:
    # 6 vs 9 calls per run in 3 runs: Poisson noise of that size makes 3 runs equal ~2% of
    # the time, so the run totals alone are no proof of determinism (the QL test judges)...
    old_seq, new_seq = [[2, 2, 2]] * 3, [[3, 3, 3]] * 3
    key = "syscall:clock_nanosleep:ok"
    bare = diff_captures(
        make("a", _nanosleeps(old_seq, False)), make("b", _nanosleeps(new_seq, False))
    )
    assert rows(bare)[key].test == "ql"
    # ...but the same count at each of the 9 iterations on each side is (chance: ~1e-4)
    d = rows(diff_captures(make("a", _nanosleeps(old_seq)), make("b", _nanosleeps(new_seq))))[key]
    assert d.test == "exact" and d.p == 0.0 and d.significant and d.ratio == 1.5
    # equal totals whose runs split them differently over the iterations prove nothing
    shuffled = [[2, 2, 2], [1, 3, 2], [3, 1, 2]]
    d = rows(diff_captures(make("a", _nanosleeps(shuffled)), make("b", _nanosleeps(new_seq))))[key]
    assert d.test == "ql"
    # and a sequence too thin to be unlikely by chance (1 call, then none) is not taken
    thin_old, thin_new = [[1, 0, 0]] * 3, [[2, 0, 0]] * 3
    d = rows(diff_captures(make("a", _nanosleeps(thin_old)), make("b", _nanosleeps(thin_new))))[key]
    assert d.test == "ql"


def test_equal_totals_split_differently_over_iterations_are_noise() -> None:
    """Runs whose totals coincide although each splits them differently over its
    iterations are a noisy key's chance constancy: the QL test is told so (and floors it
    at Poisson's noise); a key repeating its sequence, or one without per-iteration
    counts, is not."""
    split = make("a", _nanosleeps([[2, 2, 2], [1, 3, 2], [3, 1, 2]]))
    repeat = make("b", _nanosleeps([[3, 3, 3]] * 3))
    counts = KeyCounts.of(split, repeat, set())
    assert tests._noisy_within(counts, np.ones(1, dtype=bool)).tolist() == [True]
    counts = KeyCounts.of(repeat, repeat, set())
    assert tests._noisy_within(counts, np.ones(1, dtype=bool)).tolist() == [False]
    bare = make("c", _nanosleeps([[2, 2, 2]] * 3, series=False))
    counts = KeyCounts.of(bare, bare, set())
    assert tests._noisy_within(counts, np.ones(1, dtype=bool)).tolist() == [False]


def test_single_run_side_uses_poisson_or_fisher() -> None:
    old = make("a", same(1, syscalls={"read": {"0": 100}, "openat": {"0": 50, "2": 5}}))
    new = make(
        "b",
        same(5, syscalls={"read": {"0": 300}, "openat": {"0": 50, "2": 5}, "kill": {"3": 10}}),
    )
    r = rows(diff_captures(old, new))
    assert r["syscall:read:ok"].test == "poisson" and r["syscall:read:ok"].significant
    assert r["syscall:openat:ENOENT"].test == "fisher"
    assert r["syscall:kill:ESRCH"].test == "poisson"  # kill never called on old: no share
    assert r["syscall:kill:ESRCH"].cls == "appeared"


def test_regression_rules() -> None:
    base = {"read": {"0": 100}, "getppid": {"0": 50}, "openat": {"0": 100, "2": 10}}
    newsys = {"read": {"0": 300}, "openat": {"0": 100, "2": 40}, "kill": {"3": 20}}
    old = make("a", same(3, syscalls=base, functions={"f": 10}))
    new = make("b", same(3, syscalls=newsys, functions={"f": 100}))
    r = rows(diff_captures(old, new))
    assert r["syscall:kill:ESRCH"].regression  # new error appeared
    assert r["syscall:openat:ENOENT"].regression  # error count up
    assert r["syscall:getppid:ok"].regression and r["syscall:getppid:ok"].cls == "vanished"
    assert r["syscall:read:ok"].significant and not r["syscall:read:ok"].regression
    assert r["function:f"].significant and not r["function:f"].regression


def test_appear_vanish_ranked_first_then_rate() -> None:
    old = make("a", same(3, syscalls={"read": {"0": 10_000}, "close": {"0": 10}}))
    new = make("b", same(3, syscalls={"read": {"0": 50_000}, "kill": {"3": 50}}))
    res = diff_captures(old, new)
    order = [d.key for d in res.divergences if d.significant]
    assert order == ["syscall:kill:ESRCH", "syscall:close:ok", "syscall:read:ok"]


def test_absent_probe_is_never_zero() -> None:
    probes_old = [ProbeStatus("tracepoint", "sched:x", "attached")]
    probes_new = [ProbeStatus("tracepoint", "sched:x", "absent", "no such event")]
    old = make("a", same(3, tracepoints={"sched:x": 30}), probes=probes_old)
    new = make("b", same(3, tracepoints={}), probes=probes_new)
    res = diff_captures(old, new)
    d = rows(res)["tracepoint:sched:x"]
    assert d.cls == "absent" and d.test == "none" and d.p is None
    assert d.new.probe_status == "absent" and d.new.raw == () and math.isnan(d.new.center)
    assert d.old.center == 3.0
    assert res.keys_tested == 0  # not tested as a 30 -> 0 vanish


def test_failed_syscall_probe_is_one_absent_row() -> None:
    old = make("a", same(3, syscalls={"read": {"0": 10}, "close": {"0": 5}}))
    new = make(
        "b",
        same(3, syscalls={}),
        probes=[ProbeStatus("syscall", "raw_syscalls:sys_exit", "failed", "EPERM")],
    )
    res = diff_captures(old, new)
    assert [d.key for d in res.divergences] == ["syscall:*"]
    assert res.divergences[0].new.probe_status == "failed"
    assert res.divergences[0].old.raw == (15, 15, 15)


def test_retval_buckets_are_context_only() -> None:
    old = make("a", same(5, syscalls={"read": {"0": 40}}, retvals={"read": {"5": 10, "4": 30}}))
    new = make("b", same(5, syscalls={"read": {"0": 40}}, retvals={"read": {"5": 30, "4": 10}}))
    res = diff_captures(old, new)
    d = rows(res)["retval:read:5"]
    assert d.test == "ql"  # constant in every run, but never "exact"
    assert not d.significant and d.cls == "unchanged"
    assert "retval-context" in [w.code for w in res.warnings]
    assert res.significant == []


def test_liveness_compared_and_first() -> None:
    old = make("a", same(4, syscalls={"read": {"0": 10}}, liveness=[True] * IT))
    new_runs = same(4, syscalls={"read": {"0": 50}}, liveness=[False] * 3 + [True] * 7)
    res = diff_captures(old, make("b", new_runs))
    top = res.divergences[0]
    assert top.key == "liveness" and top.cls == "liveness" and top.significant and top.regression
    assert top.new.raw == (3, 3, 3, 3) and top.new.trials == (IT,) * 4
    assert top.new.center == pytest.approx(0.3)
    # checked on one side only: a warning, no row
    res = diff_captures(make("a", same(4, liveness=[None] * IT)), make("b", new_runs))
    assert "liveness" not in rows(res)
    assert "liveness-one-side" in [w.code for w in res.warnings]


def test_effect_gate_thresholds_are_configurable() -> None:
    old = make("a", same(3, syscalls={"read": {"0": 1000}}))
    new = make("b", same(3, syscalls={"read": {"0": 1100}}))
    assert diff_captures(old, new).significant == []
    loose = Thresholds(min_ratio=1.05)
    assert [d.key for d in diff_captures(old, new, thresholds=loose).significant] == [
        "syscall:read:ok"
    ]
    assert diff_captures(old, new, thresholds=loose).thresholds.min_ratio == 1.05


def test_deterministic_regardless_of_dict_order() -> None:
    sysc = {f"s{i}": {str(e): 1000 + 100 * i * e for e in range(4)} for i in range(30)}
    rev = {k: dict(reversed(list(v.items()))) for k, v in reversed(list(sysc.items()))}
    new_sys = {
        k: {e: n * (2 if k.endswith("3") else 1) for e, n in v.items()} for k, v in sysc.items()
    }
    old = make("a", [{"syscalls": sysc}] * 3)
    new = make("b", [{"syscalls": new_sys}] * 3)
    old_rev = make("a", [{"syscalls": rev}] * 3)
    a = to_json(diff_captures(old, new))
    b = to_json(diff_captures(old_rev, new))
    assert a == b
    doc = json.loads(a)
    assert doc["significant_count"] > 0


def test_json_has_every_model_field() -> None:
    old = make("a", same(3, syscalls={"read": {"0": 10}, "openat": {"2": 3}}, liveness=[True] * IT))
    new = make("b", same(3, syscalls={"read": {"0": 30}}, liveness=[True] * IT))
    res = diff_captures(old, new)
    doc = json.loads(to_json(res))
    for extra in ("format", "format_version", "significant_count", "regression_count"):
        doc.pop(extra)
    assert doc["thresholds"] == res.thresholds.as_dict()
    assert doc["tests"] == [{"name": t.name, "description": t.description} for t in res.tests]
    model_fields = {f.name for f in dataclasses.fields(res)}
    assert set(doc) - {"divergences"} == model_fields - {"divergences"}
    row_fields = {f.name for f in dataclasses.fields(res.divergences[0])}
    for row, d in zip(doc["divergences"], res.divergences, strict=True):
        assert set(row) == row_fields | {"key", "label"}
        assert (row["key"], row["label"], row["name"], row["sub"]) == (
            d.key,
            d.label,
            d.name,
            d.sub,
        )


def test_probe_records_on_both_sides() -> None:
    sysp = ProbeStatus("syscall", "raw_syscalls:sys_exit", "attached")
    old = make(
        "a",
        same(3, syscalls={"read": {"0": 10}}, functions={}),
        probes=[sysp, ProbeStatus("function", "proc_pid_*", "absent", "no match")],
    )
    new = make(
        "b",
        same(3, syscalls={"read": {"0": 30}}, functions={"proc_pid_readdir": 40}),
        probes=[sysp, ProbeStatus("function", "proc_pid_readdir", "attached")],
    )
    r = rows(diff_captures(old, new))
    # syscalls attached on both: tested normally
    assert r["syscall:read:ok"].significant
    # the pattern matched nothing on old and resolved on new: the concrete function is
    # absent on old (with the pattern's reason), not "appeared from 0"
    d = r["function:proc_pid_readdir"]
    assert d.cls == "absent"
    assert (d.old.probe_status, d.old.probe_reason) == ("absent", "no match")
    assert d.new.raw == (40, 40, 40)
    assert "function:proc_pid_*" not in r


def test_errno_only_syscall_is_tested_as_a_rate() -> None:
    # kill only ever fails: no share to compare, so its doubling must still be found
    old = make("a", same(1, syscalls={"kill": {"3": 100}, "read": {"0": 50}}))
    new = make("b", same(1, syscalls={"kill": {"3": 200}, "read": {"0": 50}}))
    d = rows(diff_captures(old, new))["syscall:kill:ESRCH"]
    assert d.test == "poisson" and d.significant and d.regression


def test_certain_small_change_is_shown_not_hidden() -> None:
    """x0.87, constant within each side (read 47 -> 41 per iteration): certain, below the
    effect gate -- shown by default as its own class, never "unchanged", never gating."""
    old = make("a", same(5, syscalls={"read": {"0": 47 * IT}, "openat": {"0": 68 * IT}}))
    new = make("b", same(5, syscalls={"read": {"0": 41 * IT}, "openat": {"0": 64 * IT}}))
    res = diff_captures(old, new)
    r = rows(res)
    for key in ("syscall:read:ok", "syscall:openat:ok"):
        d = r[key]
        assert d.cls == "certain-small" and d.test == "exact" and d.p == 0.0, d
        assert not d.significant and not d.regression
        assert d in res.shown
    table = render_table(res)
    assert "certain-small" in table and "syscall:read:ok" in table


def test_suggestive_rows_are_shown_below_and_never_regressions() -> None:
    rng = np.random.default_rng(3)
    base = {f"k{i}": 1000 + 50 * i for i in range(40)}

    def runs(scale: dict[str, float]) -> list[dict[str, Any]]:
        out = []
        for _ in range(4):
            noise = rng.normal(1, 0.2, size=len(base))
            out.append(
                {
                    "syscalls": {
                        k: {"0": int(v * scale.get(k, 1.0) * n)}
                        for (k, v), n in zip(base.items(), noise, strict=True)
                    }
                }
            )
        return out

    res = diff_captures(make("a", runs({})), make("b", runs({"k7": 1.45})))
    sug = [d for d in res.divergences if d.cls == "suggestive"]
    for d in sug:
        assert not d.significant and not d.regression and d.p is not None and d.p <= 0.05
        assert d.q is not None and d.q > 0.05
    shown = res.shown
    if sug:
        assert all(shown.index(s) > shown.index(x) for s in sug for x in res.significant)


def test_enosys_vanishing_reads_now_implemented() -> None:
    old = make("a", same(3, syscalls={"close_range": {"38": 2 * IT}, "read": {"0": 9 * IT}}))
    new = make("b", same(3, syscalls={"close_range": {"0": IT, "9": IT}, "read": {"0": 9 * IT}}))
    r = rows(diff_captures(old, new))
    gone = r["syscall:close_range:ENOSYS"]
    assert gone.cls == "vanished" and "now implemented" in gone.interpretation
    ebadf = r["syscall:close_range:EBADF"]
    assert ebadf.cls == "appeared" and ebadf.significant and not ebadf.regression
    assert "now implemented" in ebadf.interpretation
    # ...and the reverse: ENOSYS appearing is a regression, "no longer implemented"
    back = rows(diff_captures(new, old))["syscall:close_range:ENOSYS"]
    assert back.cls == "appeared" and back.regression
    assert back.interpretation == "close_range is no longer implemented"


def test_exit_status_row_ranks_first_when_failures_rise() -> None:
    ok = [0] * IT
    bad = [3 if i % 4 == 0 else 0 for i in range(IT)]
    old = make("a", same(4, syscalls={"read": {"0": 9 * IT}}, exit_codes=ok))
    new = make("b", same(4, syscalls={"read": {"0": 9 * IT}}, exit_codes=bad))
    res = diff_captures(old, new)
    top = res.divergences[0]
    assert top.key == "exit-status" and top.cls == "exit-status", top
    assert top.significant and top.regression and top.test == "fisher-outcome"
    assert sum(top.new.raw) == 4 * sum(1 for c in bad if c) and sum(top.old.raw) == 0
    assert "exit 3 x" in top.interpretation
    # a timed-out iteration is a failure too
    late = make(
        "b",
        same(
            4,
            syscalls={"read": {"0": 9 * IT}},
            exit_codes=[-9, *ok[1:]],
            timed_out=[True] + [False] * (IT - 1),
        ),
    )
    d = rows(diff_captures(old, late))["exit-status"]
    assert sum(d.new.raw) == 4 and "timed out x4" in d.interpretation


def test_where_it_diverges_ranks_the_function_whose_returns_differ_when_it_fails() -> None:
    """The worked example (real differ, generated captures): ``find_ge_pid`` returns NULL a
    second time in exactly the failing iterations of the new kernel, and its call count
    fell; ``next_tgid``'s call count fell too. "Where it diverges" puts find_ge_pid first,
    on the failing/passing contrast of its returns, and next_tgid after it as a call-count
    change only -- although in the row ranking both call-count rows tie."""
    from support.sample import sample_captures, sample_result

    old, new = sample_captures()
    result = sample_result(old, new)
    names = [c.function for c in result.culprits]
    assert names == ["find_ge_pid", "next_tgid"], result.culprits
    first = result.culprits[0]
    assert first.basis == "what it returns differs when the workload fails"
    # first the share of its returns that are NULL (failing vs passing iterations), then
    # the count of NULL returns per iteration (2 vs 1)
    share = first.evidence[0]
    assert (share.source, share.measure, share.label) == (
        "contrast",
        "share",
        "find_ge_pid() returned NULL/0",
    )
    assert share.after > share.before + 0.1 and share.q is not None and share.q < 1e-6
    counts = [e for e in first.evidence if e.source == "contrast" and e.measure == "count"]
    assert [(e.label, e.after, e.before) for e in counts] == [
        ("find_ge_pid() returned NULL/0", 2.0, 1.0)
    ]
    assert result.culprits[1].basis == "its call count changed"
    text = render_table(result)
    assert text.index("Where it diverges") < text.index("class      key")
    assert "1. find_ge_pid() -- what it returns differs when the workload fails" in text
    doc = json.loads(to_json(result))
    assert doc["culprits"][0]["function"] == "find_ge_pid"


def test_quiet_rows_are_built_on_demand_and_rank_as_if_all_were_built() -> None:
    """The lazy ``Rows``: notable rows eager, unchanged ones built when read, in the
    documented order (score, kind, key) over all rows together."""
    from regress.diff.rank import KIND_ORDER
    from regress.model.rows import Rows

    rng = np.random.default_rng(3)
    old_runs: list[dict[str, Any]] = []
    new_runs: list[dict[str, Any]] = []
    for side_runs in (old_runs, new_runs):
        for _ in range(5):
            sysc = {f"s{i}": {"0": int(rng.poisson(40)), "2": 7} for i in range(60)}
            side_runs.append({"syscalls": sysc, "functions": {f"f{i}": 3 for i in range(30)}})
    for r in new_runs:  # one certain change, one appeared key
        r["syscalls"]["s0"]["2"] = 30
        r["functions"]["f_new"] = 5
    for r in old_runs:
        r["functions"]["f_new"] = 0
    res = diff_captures(make("a", old_runs), make("b", new_runs))
    rows = res.divergences
    assert isinstance(rows, Rows)
    assert 2 <= len(rows.notable()) < res.keys_tested <= len(rows)
    assert {d.key for d in rows.notable()} >= {"syscall:s0:ENOENT", "function:f_new"}
    assert all(d.cls == "unchanged" for d in rows if d not in rows.notable())
    built = list(rows)
    assert built == sorted(built, key=lambda d: (-d.score, KIND_ORDER.get(d.kind, 9), d.key))
    assert rows[0] is built[0] and rows[-1] is built[-1] and rows[1:3] == tuple(built[1:3])
    assert rows == tuple(built) and rows != tuple(built[:-1])
    # a result made from a plain tuple behaves the same (every row eager)
    plain = dataclasses.replace(res, divergences=tuple(built))
    assert plain.significant == res.significant and plain.shown == res.shown


def test_signal_race_errors_need_their_own_gate() -> None:
    """EINTR/ERESTART* counts follow machine load between sessions and boots: x0.8 and
    x0.4 shifts that are certain within each capture are shown as suggestive, not
    counted; x0.25 still counts."""
    rng = np.random.default_rng(5)

    def runs(scale: float) -> list[dict[str, Any]]:
        out = []
        for _ in range(5):
            n = rng.normal(1, 0.02)
            out.append(
                {
                    "syscalls": {
                        "rt_sigsuspend": {"514": int(200 * scale * n)},
                        "rt_sigreturn": {"0": int(400 * n)},
                        "read": {"0": int(300 * n), "4": int(200 * scale * n)},
                    }
                }
            )
        return out

    for scale in (0.8, 0.4):
        small = rows(diff_captures(make("a", runs(1.0)), make("b", runs(scale))))
        for key in ("syscall:rt_sigsuspend:ERESTARTNOHAND", "syscall:read:EINTR"):
            d = small[key]
            assert not d.significant and not d.regression, (scale, key)
            assert d.cls == "suggestive" and d.q is not None and d.q <= 0.05, (scale, key)
    big = rows(diff_captures(make("a", runs(1.0)), make("b", runs(0.25))))
    assert big["syscall:rt_sigsuspend:ERESTARTNOHAND"].significant
    # the same shift on an ordinary errno counts at the ordinary gate
    th = Thresholds(min_ratio_signal=1.2)
    plain = rows(diff_captures(make("a", runs(1.0)), make("b", runs(0.8)), thresholds=th))
    assert plain["syscall:rt_sigsuspend:ERESTARTNOHAND"].significant
    with pytest.raises(Exception, match="signal-race ratio gate"):
        Thresholds(min_ratio_signal=0.9)
    # never below everyone's gate: a raised --min-ratio raises it too (selftest's blind
    # detector runs with min ratio 1e9)
    assert Thresholds(min_ratio_signal=1.1).signal_ratio == 1.2
    assert Thresholds(min_ratio=1e9).signal_ratio == 1e9


def test_a_signal_race_absent_from_one_boot_is_not_an_appearance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 3 iterations per run a race landing about once a run is absent from every run
    of one boot often enough (its rate moves x0.5-x2 between boots; the CI-like bench
    profile, its noise fitted from real 4 x 3 captures, made such A/A false positives).
    A signal-race row's empty side counts at the rule of three, so 0 -> 5 in 12
    iterations is suggestive; the same counts of an ordinary errno, and a race that
    really appears (0 -> 60), still count."""
    race_new = [1, 2, 1, 1]

    def runs(race: list[int], lots: int) -> list[dict[str, Any]]:
        # 40 neighbours whose counts barely move: a confident, under-Poisson noise prior
        # (as in real captures), under which 0 -> 5 is far past the FDR
        return [
            {
                "iterations": 3,
                "syscalls": {
                    "rt_sigsuspend": {"514": r} if r else {},
                    "wait4": {"0": 15 + r},
                    "read": {"0": 300, "4": lots},
                    "openat": {"0": 60 + i % 2, "2": r},
                    **{f"n{j}": {"0": 100 + 7 * j + (i * j) % 3} for j in range(40)},
                },
            }
            for i, r in enumerate(race)
        ]

    old, new = make("a", runs([0] * 4, 0)), make("b", runs(race_new, 15))
    res = rows(diff_captures(old, new))
    race = res["syscall:rt_sigsuspend:ERESTARTNOHAND"]
    assert race.cls == "suggestive" and not race.regression and race.q < 1e-6
    assert res["syscall:openat:ENOENT"].regression  # the same counts, an ordinary errno
    assert res["syscall:read:EINTR"].regression  # a race that really appeared
    monkeypatch.setattr(rank, "ZERO_SIDE_COUNTS", 0.0)  # an empty side read as zero
    assert rows(diff_captures(old, new))["syscall:rt_sigsuspend:ERESTARTNOHAND"].regression


def test_signal_races_move_between_vm_boots() -> None:
    """The default job's two VMs (Debian 6.1.0-47 vs -56, ps-loop 5 x 50, QEMU TCG; no
    signal change between them): how often dash's wait is interrupted moved x2.1 between
    the boots, certain within each (q < 0.05). Under the signal-race gate it is shown as
    suggestive, counts for nothing and starts no narrowing pass; under x1.5 it was a
    regression -- and the narrowing pass then looks under rt_sigsuspend, never under
    the pseudo-syscall sigreturn(-1) (whose EINTR is rt_sigsuspend's, restored)."""
    data = Path(__file__).parent / "testdata" / "stats"
    old, new = data / "vm-boots-signal-old.json.gz", data / "vm-boots-signal-new.json.gz"
    judged = judge(old, new, Thresholds())
    assert judged.result.significant == [] and judged.result.regressions == []
    shown = {d.key: d for d in judged.result.shown}
    for key in ("syscall:rt_sigsuspend:ERESTARTNOHAND", "syscall:sigreturn(-1):EINTR"):
        assert shown[key].cls == "suggestive" and not shown[key].regression, key
        assert shown[key].ratio is not None and shown[key].ratio > 2, key
    assert narrowing_targets(judged)[0] == []
    loose = judge(old, new, Thresholds(min_ratio_signal=1.5))
    regressed = {d.key for d in loose.result.regressions}
    assert "syscall:sigreturn(-1):EINTR" in regressed
    assert "syscall:rt_sigsuspend:ERESTARTNOHAND" in regressed
    targets, why = narrowing_targets(loose)
    assert targets[0] == "rt_sigsuspend" and "sigreturn(-1)" not in targets, why


def test_noisy_function_counts_need_their_own_gate_across_boots() -> None:
    """A forced narrowing pass over an A/A pair of boots of one kernel (Debian 6.1.0-56,
    3 runs x 10 iterations a side, 200 functions under openat/getdents64; recorded by the
    slow test_narrowing_an_aa_pair_finds_nothing when it failed): the runs of a side share
    one boot, and timer and slab helpers moved between the boots (mod_timer x1.24,
    get_random_u32 x0.62, q < 0.05). Under their own gate they are suggestive; certain
    function changes keep the ordinary gate."""
    data = Path(__file__).parent / "testdata"
    old = load_capture(data / "narrow" / "aa-boots-old.json.gz")
    new = load_capture(data / "narrow" / "aa-boots-new.json.gz")
    res = diff_captures(old, new)
    assert res.significant == [] and res.culprits == ()
    assert any("noisy function counts x2" in w.message for w in res.warnings)
    shown = {d.key: d for d in res.shown}
    for key in ("function:get_random_u32", "function:mod_timer"):
        assert shown[key].cls == "suggestive" and shown[key].q is not None, key
        assert shown[key].q <= 0.05 and not shown[key].regression, key
    # under everyone's gate the same rows were significant, and named culprits
    loose = diff_captures(old, new, thresholds=Thresholds(min_ratio_function=1.2))
    assert {"function:get_random_u32", "function:mod_timer"} <= {d.key for d in loose.significant}
    assert loose.culprits
    # an exact x0.81 function change (a selftest fault, every run equal) is still a change
    ci = data / "ci"
    fault = diff_captures(
        load_capture(ci / "selftest-control.json.gz"), load_capture(ci / "selftest-faulted.json.gz")
    )
    row = {d.key: d for d in fault.significant}["function:proc_pid_evict_inode"]
    assert row.test == "exact" and row.cls == "rate"
    with pytest.raises(Exception, match="function-count ratio gate"):
        Thresholds(min_ratio_function=0.5)
    assert Thresholds(min_ratio=3.0).function_ratio == 3.0


def test_real_three_run_captures_are_certain_from_their_iterations() -> None:
    """Real QEMU ps-loop captures cut to 3 runs of 3 iterations (Debian 6.1.0-47 vs -56):
    small constant counts such as find_ge_pid's 12 per run are chance-level by their run
    totals alone, but every run repeats 4, 4, 4 -- with the per-iteration counts they are
    exact (62 keys), without them (the same counts as run totals only) they are not (8)."""
    data = Path(__file__).parent / "testdata" / "stats"
    old = load_capture(data / "ci-4x3-old.json.gz")
    new = load_capture(data / "ci-4x3-new.json.gz")
    old, new = (
        dataclasses.replace(old, runs=old.runs[:3]),
        dataclasses.replace(new, runs=new.runs[1:]),
    )
    counts = KeyCounts.of(old, new, set())
    bare = KeyCounts(counts.keys, counts.old, counts.new, counts.old_iters, counts.new_iters)
    with_series = tests.run_tests(counts, Thresholds())
    totals_only = tests.run_tests(bare, Thresholds())
    at = counts.keys.index(("function", "find_ge_pid", ""))
    assert counts.old_seq is not None and counts.old_seq.repeated(counts.keys[at]) == (4, 4, 4)
    assert with_series.test[at] == "exact" and totals_only.test[at] == "ql"
    # unshare: once at every iteration of every run (9 equal draws of ~1: 2.5e-4, twice
    # over for choosing that event after the fact), though per iteration only 1.2e-3
    once = counts.keys.index(("syscall", "unshare", "0"))
    assert counts.old_seq.repeated(counts.keys[once]) == (1, 1, 1)
    assert with_series.test[once] == "exact"
    assert with_series.test.count("exact") >= totals_only.test.count("exact") + 50
