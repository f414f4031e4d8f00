"""A worked example: the ps-loop / ``find_ge_pid()`` story as captures and a diff.

Used by the report tests (golden text, browser rendering) and ``make
screenshot`` so the reports can be judged without booting two kernels. The
numbers are synthetic but internally consistent: every per-run value in the
``DiffResult`` is computed from the sample captures, so the report's charts,
per-run tables and environment all describe the same data.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import cast

from regress.capture import (
    Capture,
    KernelInfo,
    MachineInfo,
    ProbeStatus,
    Run,
    TracerInfo,
    WorkloadInfo,
)
from regress.diffmodel import (
    CaptureSummary,
    DiffResult,
    DiffWarning,
    Divergence,
    DivergenceClass,
    MetricKind,
    SideValues,
    TestName,
)

OLD_RELEASE = "6.1.0-47-cloud-amd64"
NEW_RELEASE = "6.1.0-56-cloud-amd64"
RUNS = 5
ITERATIONS = 40

_BPF = """\
#include <uapi/linux/ptrace.h>
BPF_HASH(tracked, u32, u8, 4096);
BPF_HASH(sys_exits, u64, u64, 16384);
BPF_HASH(func_calls, u64, u64, 1024);

TRACEPOINT_PROBE(raw_syscalls, sys_exit) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!tracked.lookup(&tgid))
        return 0;
    s64 ret = args->ret;
    u64 key = ((u64)args->id << 32) | (ret < 0 ? (u32)-ret : 0);
    sys_exits.increment(key);
    return 0;
}
"""

_SPEC = {
    "name": "ps-loop",
    "description": "ps lists a private PID namespace holding a live sleeper; "
    "liveness: the sleeper is listed",
    "command": "unshare --pid --fork --mount-proc /bin/sh -c "
    "'sleep 600 & ps -e -o pid=,stat=,comm=; kill $!'",
    "iterations": ITERATIONS,
    "timeout_s": 30.0,
    "setup": None,
    "teardown": None,
    "liveness": "awk '$1 == 2 { found = 1 } END { exit !found }' \"$REGRESS_OUT\"",
    "files": {},
    "functions": ["find_ge_pid", "next_tgid", "proc_pid_readdir", "pid_nr_ns"],
    "tracepoints": ["sched:sched_process_fork", "sched:sched_process_exit"],
    "env": {},
}

_CONFIG = {
    "CONFIG_PID_NS": "y",
    "CONFIG_PROC_FS": "y",
    "CONFIG_BPF_SYSCALL": "y",
    "CONFIG_DEBUG_INFO_BTF": "y",
    "CONFIG_LOCALVERSION": '""',
}


def _capture(release: str, build: str, new: bool, seed: int) -> Capture:
    rng = random.Random(seed)
    failures = [7, 8, 6, 9, 7] if new else [0] * RUNS
    runs = []
    for i in range(RUNS):
        n = ITERATIONS

        def jit(base: float, spread: float = 0.03, n: int = n) -> int:
            return max(0, round(base * n * (1 + rng.uniform(-spread, spread))))

        live: list[bool | None] = [True] * n
        for j in rng.sample(range(n), failures[i]):
            live[j] = False
        syscalls = {
            "openat": {"0": jit(31.0), "2": jit(2.0, 0.0)},
            "read": {"0": jit(44.0)},
            "getdents64": {"0": jit(2.0, 0.0)},
            "newfstatat": {"0": jit(9.0)},
        }
        if new:
            # the missing pid: ps no longer opens /proc/2/{stat,status,cmdline}
            syscalls["openat"]["0"] = jit(31.0 - 3 * failures[i] / n)
            syscalls["openat"]["3"] = 0
        functions = {
            "find_ge_pid": jit(2.6 if new else 4.0, 0.05),
            "next_tgid": jit(2.6 if new else 4.0, 0.05),
            "proc_pid_readdir": jit(2.0, 0.0),
        }
        if new:
            functions["pid_nr_ns"] = jit(7.5)
        runs.append(
            Run(
                index=i,
                iterations=n,
                wall_s=round(11.0 + rng.uniform(0, 1.5), 2),
                started_utc=f"2026-11-24T1{'4' if new else '3'}:{10 + 2 * i:02d}:00Z",
                syscalls={k: {e: c for e, c in v.items() if c} for k, v in syscalls.items()},
                retvals={
                    "getdents64": {
                        "0": jit(1.0, 0.0),
                        "9": 0 if new else jit(1.0, 0.0),
                        "8": jit(1.0, 0.0) if new else 0,
                    }
                },
                tracepoints={
                    "sched:sched_process_fork": jit(3.0, 0.0),
                    "sched:sched_process_exit": jit(3.0, 0.0),
                },
                functions=functions,
                liveness=live,
                exit_codes=[0] * n,
                lost={"sys_exits_full": 3} if new and i == 3 else {},
                boot=0,
            )
        )
    for r in runs:
        r.retvals = {k: {b: c for b, c in v.items() if c} for k, v in r.retvals.items()}
    config = dict(_CONFIG)
    if new:
        config["CONFIG_RANDOMIZE_KSTACK_OFFSET_DEFAULT"] = "y"
    probes = [
        ProbeStatus("syscalls", "raw_syscalls:sys_exit", "attached"),
        ProbeStatus("function", "find_ge_pid", "attached"),
        ProbeStatus("function", "next_tgid", "attached"),
        ProbeStatus("function", "proc_pid_readdir", "attached"),
        ProbeStatus("tracepoint", "sched:sched_process_fork", "attached"),
        ProbeStatus("tracepoint", "sched:sched_process_exit", "attached"),
        ProbeStatus("function", "pid_nr_ns", "attached")
        if new
        else ProbeStatus("function", "pid_nr_ns", "absent", "not in available_filter_functions"),
    ]
    return Capture(
        kernel=KernelInfo(
            release=release,
            version=f"Linux version {release} (debian-kernel@lists.debian.org) "
            f"(gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) "
            f"2.40) #1 SMP PREEMPT_DYNAMIC Debian {build}",
            cmdline=f"BOOT_IMAGE=/vmlinuz-{release} root=/dev/vda rw console=ttyS0 quiet",
            config_hash=("c0ffee" if new else "bada55") + "0" * 58,
            config=config,
        ),
        machine=MachineInfo("qemu", "x86_64", 2, 2048, "tcg", "regress-guest"),
        tracer=TracerInfo("9f2c" + "1" * 60, {"functions": _SPEC["functions"]}, _BPF),
        workload=WorkloadInfo("ps-loop", "5e1f" + "2" * 60, dict(_SPEC)),
        bcc_version="0.26.0",
        requested_runs=RUNS,
        probes=probes,
        runs=runs,
        notes=[],
        regress_version="0.1.0",
        created_utc="2026-11-24T14:30:00Z" if new else "2026-11-24T13:30:00Z",
    )


def sample_captures() -> tuple[Capture, Capture]:
    """(old, new): ps-loop on a good and a bad Debian 6.1 kernel."""
    old = _capture(OLD_RELEASE, "6.1.153-1 (2025-09-20)", False, 1)
    new = _capture(NEW_RELEASE, "6.1.158-1 (2025-11-09)", True, 2)
    return old, new


def _values(c: Capture, key: str) -> SideValues:
    parts = key.split(":")
    raw: list[int] = []
    for r in c.runs:
        if parts[0] == "liveness":
            raw.append(sum(1 for x in r.liveness if x is False))
        elif parts[0] == "syscall":
            errno = "0" if parts[2] == "ok" else {"ENOENT": "2", "ESRCH": "3"}[parts[2]]
            raw.append(r.syscalls.get(parts[1], {}).get(errno, 0))
        elif parts[0] == "retval":
            raw.append(r.retvals.get(parts[1], {}).get(parts[2], 0))
        elif parts[0] == "tracepoint":
            raw.append(r.tracepoints.get(f"{parts[1]}:{parts[2]}", 0))
        else:
            raw.append(r.functions.get(parts[1], 0))
    per = [n / r.iterations for n, r in zip(raw, c.runs, strict=True)]
    s = sorted(per)
    status = "attached"
    reason = None
    if parts[0] == "function":
        p = c.probe_status("function", parts[1])
        if p is not None:
            status, reason = p.status, p.reason
    return SideValues(
        per_iter=per, raw=raw, center=s[len(s) // 2], probe_status=status, probe_reason=reason
    )


def _div(
    old: Capture,
    new: Capture,
    key: str,
    label: str,
    cls: str,
    test: str,
    p: float | None,
    q: float | None,
    ci: tuple[float, float] | None,
    score: float,
    *,
    significant: bool = True,
    regression: bool = True,
    notes: list[str] | None = None,
) -> Divergence:
    o, n = _values(old, key), _values(new, key)
    ratio = n.center / o.center if o.center and o.probe_status == "attached" else None
    return Divergence(
        key=key,
        kind=cast(MetricKind, key.split(":")[0]),
        label=label,
        cls=cast(DivergenceClass, cls),
        old=o,
        new=n,
        ratio=ratio,
        ratio_ci=ci,
        delta=n.center - o.center,
        test=cast(TestName, test),
        p=p,
        q=q,
        significant=significant,
        regression=regression,
        score=score,
        notes=notes or [],
    )


def sample_result(old: Capture, new: Capture) -> DiffResult:
    """The differ's verdict on the sample captures, as the differ would rank it."""
    divs = [
        _div(
            old,
            new,
            "liveness",
            "liveness check failed",
            "liveness",
            "fisher",
            2.1e-11,
            4.4e-10,
            None,
            100.0,
        ),
        _div(
            old,
            new,
            "function:find_ge_pid",
            "find_ge_pid() calls",
            "rate",
            "mwu",
            0.0079,
            0.021,
            (0.61, 0.69),
            41.0,
        ),
        _div(
            old,
            new,
            "function:next_tgid",
            "next_tgid() calls",
            "rate",
            "mwu",
            0.0079,
            0.021,
            (0.62, 0.70),
            40.5,
        ),
        _div(
            old,
            new,
            "retval:getdents64:8",
            "getdents64 returns 128–255 bytes",
            "appeared",
            "exact",
            None,
            None,
            None,
            30.0,
        ),
        _div(
            old,
            new,
            "retval:getdents64:9",
            "getdents64 returns 256–511 bytes",
            "vanished",
            "exact",
            None,
            None,
            None,
            29.0,
        ),
        _div(
            old,
            new,
            "syscall:openat:ok",
            "openat → ok",
            "unchanged",
            "mwu",
            0.31,
            0.52,
            (0.96, 1.03),
            0.0,
            significant=False,
            regression=False,
        ),
        _div(
            old,
            new,
            "function:pid_nr_ns",
            "pid_nr_ns() calls",
            "absent",
            "none",
            None,
            None,
            None,
            5.0,
            regression=False,
            notes=["absent-probe"],
        ),
        _div(
            old,
            new,
            "syscall:read:ok",
            "read → ok",
            "unchanged",
            "mwu",
            0.69,
            0.83,
            (0.98, 1.02),
            0.0,
            significant=False,
            regression=False,
        ),
        _div(
            old,
            new,
            "syscall:openat:ENOENT",
            "openat → ENOENT",
            "unchanged",
            "exact",
            None,
            1.0,
            None,
            0.0,
            significant=False,
            regression=False,
        ),
        _div(
            old,
            new,
            "tracepoint:sched:sched_process_fork",
            "sched:sched_process_fork",
            "unchanged",
            "exact",
            None,
            1.0,
            None,
            0.0,
            significant=False,
            regression=False,
        ),
    ]
    # the absent probe has no number on the old side
    divs[6] = replace(divs[6], old=replace(divs[6].old, per_iter=[], raw=[], center=math.nan))
    divs[6].delta = math.nan
    # liveness: failures per run over checked iterations, pooled center
    for side in (divs[0].old, divs[0].new):
        side.trials = [ITERATIONS] * RUNS
        side.center = sum(side.raw) / (ITERATIONS * RUNS)

    def summary(c: Capture, path: str) -> CaptureSummary:
        return CaptureSummary(
            path,
            c.kernel.release,
            c.kernel.version,
            c.workload.name,
            len(c.runs),
            c.iterations_per_run,
            c.complete,
        )

    return DiffResult(
        old=summary(old, "reports/ps-loop/old.json"),
        new=summary(new, "reports/ps-loop/new.json"),
        thresholds={
            "alpha": 0.05,
            "min_ratio": 1.2,
            "min_abs_delta": 0.05,
            "min_runs_mwu": 2,
            "min_runs_exact": 3,
            "confidence": 0.95,
        },
        divergences=divs,
        keys_tested=41,
        warnings=[
            DiffWarning(
                "absent-probe",
                "pid_nr_ns could not be attached on the old kernel "
                "(not in available_filter_functions); its row compares nothing.",
            ),
            DiffWarning(
                "lost-events",
                "3 events were lost on the new kernel (run 4); counts there are lower bounds.",
            ),
        ],
        aa_false_positives=0,
    )
