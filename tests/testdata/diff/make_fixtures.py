"""Regenerate the small fixture captures next to this file (one pair per statistical path).

    .venv/bin/python tests/testdata/diff/make_fixtures.py

Deterministic: fixed seeds and timestamps, so re-running changes nothing.
Each pair is ``NAME.old.json`` / ``NAME.new.json``; goldens (``*.stdout``)
are checked by tests/test_cli_diff.py.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from regress.model.capture import (  # noqa: E402
    Capture,
    KernelInfo,
    MachineInfo,
    ProbeStatus,
    Run,
    TracerInfo,
    WorkloadInfo,
    dumps_capture,
    save_capture,
)

IT = 50
SYSCALL_PROBE = ProbeStatus("syscall", "raw_syscalls:sys_exit", "attached")


def cap(
    release: str,
    runs: list[dict[str, Any]],
    *,
    iterations: int = IT,
    probes: list[ProbeStatus] | None = None,
    requested: int | None = None,
    cmdline: str = "root=/dev/vda ro",
    workload_hash: str = "a" * 64,
    fingerprint: str = "b" * 64,
    cpus: int = 2,
) -> Capture:
    out = []
    for i, r in enumerate(runs):
        out.append(
            Run(
                index=i,
                iterations=r.get("iterations", iterations),
                wall_s=1.5,
                started_utc="2026-11-24T12:00:00Z",
                syscalls=r.get("syscalls", {}),
                retvals=r.get("retvals", {}),
                tracepoints=r.get("tracepoints", {}),
                functions=r.get("functions", {}),
                liveness=r.get("liveness", [True] * iterations),
                exit_codes=[0] * iterations,
                lost=r.get("lost", {}),
            )
        )
    return Capture(
        kernel=KernelInfo(release=release, version=f"#1 SMP {release}", cmdline=cmdline),
        machine=MachineInfo(
            backend="qemu", arch="x86_64", cpus=cpus, mem_mb=2048, accel="kvm", hostname="ci"
        ),
        tracer=TracerInfo(fingerprint=fingerprint, options={}, bpf_text="/* fixture */"),
        workload=WorkloadInfo(name="fixture", hash=workload_hash, spec={"name": "fixture"}),
        bcc_version="0.29.1",
        requested_runs=requested if requested is not None else len(runs),
        probes=list(probes) if probes is not None else [SYSCALL_PROBE],
        runs=out,
        regress_version="0.1.0",
        created_utc="2026-11-24T12:00:00Z",
    )


def noisy(rng: np.random.Generator, per_iter: float, n: int, spread: float = 0.03) -> list[int]:
    """n run totals around per_iter*IT with a few percent of run-to-run noise."""
    return [round(per_iter * IT * (1 + spread * rng.standard_normal())) for _ in range(n)]


def write(name: str, old: Capture, new: Capture) -> None:
    save_capture(old, HERE / f"{name}.old.json")
    save_capture(new, HERE / f"{name}.new.json")


def mwu() -> None:
    rng = np.random.default_rng(1)
    old_read, new_read = noisy(rng, 100, 5), noisy(rng, 150, 5)
    old_close, new_close = noisy(rng, 40, 5), noisy(rng, 40, 5)
    old_enoent, new_enoent = noisy(rng, 8, 5, 0.1), noisy(rng, 8, 5, 0.1)

    def runs(read: list[int], close: list[int], enoent: list[int]) -> list[dict[str, Any]]:
        return [
            {
                "syscalls": {
                    "read": {"0": read[i]},
                    "close": {"0": close[i]},
                    "openat": {"0": 2 * close[i], "2": enoent[i]},
                }
            }
            for i in range(5)
        ]

    write(
        "mwu",
        cap("6.1.0", runs(old_read, old_close, old_enoent)),
        cap("6.8.0", runs(new_read, new_close, new_enoent)),
    )


def poisson() -> None:
    old = cap(
        "6.1.0",
        [{"syscalls": {"read": {"0": 1000}, "write": {"0": 100}, "openat": {"0": 400, "2": 20}}}],
    )
    new = cap(
        "6.8.0",
        [{"syscalls": {"read": {"0": 1500}, "write": {"0": 104}, "openat": {"0": 380, "2": 60}}}],
    )
    write("poisson", old, new)


def exact() -> None:
    def runs(getpid: int, stat: int) -> list[dict[str, Any]]:
        return [
            {"syscalls": {"getpid": {"0": getpid}, "newfstatat": {"0": stat, "2": 100}}}
            for _ in range(3)
        ]

    write("exact", cap("6.1.0", runs(500, 300)), cap("6.8.0", runs(650, 300)))


def appear_vanish() -> None:
    def runs(extra: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
        base = {"read": {"0": 1000}, "close": {"0": 200}}
        return [{"syscalls": {**base, **extra}} for _ in range(4)]

    old = cap("6.1.0", runs({"getppid": {"0": 50}}))
    new = cap("6.8.0", runs({"kill": {"3": 400}}))
    write("appear_vanish", old, new)


def absent() -> None:
    probes_old = [
        SYSCALL_PROBE,
        ProbeStatus("tracepoint", "sched:sched_process_fork", "attached"),
        ProbeStatus("function", "find_ge_pid", "failed", "kprobes disabled"),
        ProbeStatus("function", "next_tgid", "attached"),
        ProbeStatus("function", "proc_pid_*", "absent", "no traceable function on this kernel"),
    ]
    probes_new = [
        SYSCALL_PROBE,
        ProbeStatus("tracepoint", "sched:sched_process_fork", "attached"),
        ProbeStatus("function", "find_ge_pid", "attached"),
        ProbeStatus("function", "next_tgid", "absent", "no traceable function on this kernel"),
        ProbeStatus("function", "proc_pid_*", "absent", "no traceable function on this kernel"),
    ]
    old_runs = [
        {
            "syscalls": {"read": {"0": 500}},
            "tracepoints": {"sched:sched_process_fork": 100},
            "functions": {"next_tgid": 0},
        }
        for _ in range(3)
    ]
    new_runs = [
        {
            "syscalls": {"read": {"0": 500}},
            "tracepoints": {"sched:sched_process_fork": 100},
            "functions": {"find_ge_pid": 250},
        }
        for _ in range(3)
    ]
    write(
        "absent",
        cap("6.1.0", old_runs, probes=probes_old),
        cap("6.8.0", new_runs, probes=probes_new),
    )


def fdr() -> None:
    """40 keys, one run per side: two with raw p ~ 0.01 that BH must not call significant."""
    old_sys: dict[str, dict[str, int]] = {}
    new_sys: dict[str, dict[str, int]] = {}
    for i in range(37):
        old_sys[f"syscall_{400 + i}"] = {"0": 200}
        new_sys[f"syscall_{400 + i}"] = {"0": 200}
    old_sys["pread64"], new_sys["pread64"] = {"0": 200}, {"0": 255}
    old_sys["pwrite64"], new_sys["pwrite64"] = {"0": 200}, {"0": 256}
    old_sys["readv"], new_sys["readv"] = {"0": 200}, {"0": 600}
    write("fdr", cap("6.1.0", [{"syscalls": old_sys}]), cap("6.8.0", [{"syscalls": new_sys}]))


def effect_gate() -> None:
    old = cap("6.1.0", [{"syscalls": {"read": {"0": 1_000_000}, "write": {"0": 50}}}])
    new = cap("6.8.0", [{"syscalls": {"read": {"0": 1_010_000}, "write": {"0": 1}}}])
    write("effect_gate", old, new)


def liveness() -> None:
    def runs(fails: list[int]) -> list[dict[str, Any]]:
        out = []
        for f in fails:
            live = [False] * f + [True] * (IT - f)
            out.append({"syscalls": {"read": {"0": 5000}}, "liveness": live})
        return out

    write("liveness", cap("6.1.0", runs([0, 0, 0, 0])), cap("6.8.0", runs([9, 10, 8, 10])))


def warnings() -> None:
    rng = np.random.default_rng(7)
    a, b = noisy(rng, 20, 3, 0.2), noisy(rng, 60, 3, 0.2)
    old = cap(
        "6.1.0",
        [{"syscalls": {"read": {"0": a[i]}}} for i in range(3)],
        requested=5,
    )
    new_runs: list[dict[str, Any]] = [{"syscalls": {"read": {"0": b[i]}}} for i in range(3)]
    new_runs[1]["lost"] = {"perf_buffer": 12}
    new = cap("6.8.0", new_runs, cmdline="root=/dev/vda ro quiet")
    write("warnings", old, new)


def incomparable() -> None:
    old = cap("6.1.0", [{"syscalls": {"read": {"0": 100}}}] * 3)
    new = cap(
        "6.8.0",
        [{"syscalls": {"read": {"0": 300}}}] * 3,
        workload_hash="c" * 64,
        cpus=4,
        iterations=20,
    )
    write("incomparable", old, new)


def bad_inputs() -> None:
    good = dumps_capture(cap("6.1.0", [{"syscalls": {"read": {"0": 1}}}]))
    (HERE / "bad_not_json.json").write_text("this is not json\n")
    (HERE / "bad_truncated.json.gz").write_bytes(gzip.compress(good, mtime=0)[:-20])
    doc = json.loads(good)
    doc["schema_version"] = 99
    (HERE / "bad_newer_schema.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    doc = json.loads(good)
    del doc["runs"][0]["iterations"]
    (HERE / "bad_wrong_schema.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    doc = json.loads(good)
    doc["runs"] = []
    (HERE / "bad_no_runs.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    lines = [
        {"type": "attached_probes", "data": {"probes": 1}},
        {"type": "map", "data": {"@": {"257": 5, "0": 7}}},
    ]
    (HERE / "bt_single_key.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    lines = [
        {"type": "attached_probes", "data": {"probes": 1}},
        # @[args->id, args->ret]: raw return values, not errnos
        {"type": "map", "data": {"@": {"257,-2": 3, "0,1411": 1, "9,140004641345536": 1}}},
    ]
    (HERE / "bt_raw_ret.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    lines = [
        {"type": "attached_probes", "data": {"probes": 1}},
        {"type": "hist", "data": {"@h": [{"min": 0, "max": 0, "count": 5}]}},
    ]
    (HERE / "bt_hist.json").write_text("".join(json.dumps(x) + "\n" for x in lines))


def main() -> None:
    mwu()
    poisson()
    exact()
    appear_vanish()
    absent()
    fdr()
    effect_gate()
    liveness()
    warnings()
    incomparable()
    bad_inputs()


if __name__ == "__main__":
    main()
