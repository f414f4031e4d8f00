"""A worked example: the ps-loop / ``find_ge_pid()`` story as generated captures.

Used by the report tests (golden text, browser rendering) and ``make screenshot`` so the
reports can be judged without booting two kernels. The captures are synthetic but shaped
like real ones; the result is always the **real differ's** (``sample_result``), never a
hand-built one.
"""

from __future__ import annotations

import random
from pathlib import Path

from regress.gate.pipeline import judge_captures
from regress.model.capture import (
    Capture,
    KernelInfo,
    MachineInfo,
    ProbeStatus,
    Run,
    TracerInfo,
    WorkloadInfo,
    save_capture,
)
from regress.model.result import DiffResult, Thresholds

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


def _per_iteration(run: Run, new: bool) -> None:
    """Per-iteration counts (capture schema 4): every key spread evenly over the
    iterations, except the culprit on the new kernel -- ``find_ge_pid`` returns NULL a
    second time (its walk stops early) in exactly the iterations whose liveness failed."""
    n = run.iterations
    series: dict[str, dict[str, dict[str, list[int]]]] = {}
    for (kind, name, sub), total in run.key_totals().items():
        base, extra = divmod(total, n)
        values = [base + (1 if i < extra else 0) for i in range(n)]
        series.setdefault(kind, {}).setdefault(name, {})[sub] = values
    if new:
        null = [2 if live is False else 1 for live in run.liveness]
        series["funcret"]["find_ge_pid"]["0"] = null
        run.funcrets["find_ge_pid"]["0"] = sum(null)
    run.per_iteration = series


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
        # Function counts are constant per iteration in real ps-loop captures (find_ge_pid
        # is exactly 4 per iteration on both 6.1 kernels): no jitter here either.
        functions = {
            "find_ge_pid": jit(2.6 if new else 4.0, 0.0),
            "next_tgid": jit(2.6 if new else 4.0, 0.0),
            "proc_pid_readdir": jit(2.0, 0.0),
        }
        if new:
            functions["pid_nr_ns"] = jit(7.5)
        # What find_ge_pid returns: the walk ends with NULL once per getdents64 pass; on
        # the new kernel it returns NULL early in some calls (the seed story's culprit).
        funcrets = {
            "find_ge_pid": {
                "0": jit(1.5 if new else 1.0, 0.0),
                "other": jit(1.1 if new else 3.0, 0.0),
            }
        }
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
                funcrets=funcrets,
                liveness=live,
                exit_codes=[0] * n,
                lost={"sys_exits_full": 3} if new and i == 3 else {},
                boot=0,
            )
        )
    for r in runs:
        r.retvals = {k: {b: c for b, c in v.items() if c} for k, v in r.retvals.items()}
        _per_iteration(r, new)
    config = dict(_CONFIG)
    if new:
        config["CONFIG_RANDOMIZE_KSTACK_OFFSET_DEFAULT"] = "y"
    probes = [
        ProbeStatus("syscall", "raw_syscalls:sys_exit", "attached"),
        ProbeStatus("function", "find_ge_pid", "attached"),
        ProbeStatus("funcret", "find_ge_pid", "attached"),
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


def sample_result(old: Capture, new: Capture) -> DiffResult:
    """The real differ's result on the sample captures, with the A/A control run."""
    return judge_captures(
        old, new, Thresholds(), old_path="ps-loop-old.json", new_path="ps-loop-new.json"
    ).result


def write_sample_captures(directory: Path) -> tuple[Path, Path]:
    """The sample captures as files (``tests/testdata/report/ps-loop-{old,new}.json``)."""
    old, new = sample_captures()
    paths = directory / "ps-loop-old.json", directory / "ps-loop-new.json"
    save_capture(old, paths[0])
    save_capture(new, paths[1])
    return paths


if __name__ == "__main__":  # regenerate the sample files: python -m support.sample DIR
    import sys

    for written in write_sample_captures(Path(sys.argv[1])):
        print(written)
