"""Differ speed: two synthetic captures of 50k keys x 10 runs per side.

Prints wall time (best of ``--repeat`` diffs, and the median: other work on a
shared machine inflates single timings) and peak memory of ``diff_captures``
(capture construction is not timed) and their ratio to the targets (<= 0.5 s,
<= 300 MB). Peak memory is the process's max RSS growth during the diffs
(``resource.getrusage``), plus the Python-level peak from tracemalloc measured
in a separate, untimed pass.

    .venv/bin/python bench/bench_differ.py [--keys 50000] [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from regress.diff.differ import diff_captures
from regress.model.capture import (
    Capture,
    KernelInfo,
    MachineInfo,
    ProbeStatus,
    Run,
    TracerInfo,
    WorkloadInfo,
)
from regress.report.json import to_json

TARGET_S = 0.5  # issue 11: 50k keys x 10 runs diffed in <= 0.5 s
TARGET_MB = 300.0
ITERATIONS = 50


def synthetic(release: str, keys: int, runs: int, seed: int, shift: bool) -> Capture:
    """``keys`` keys: 90% syscall (name, errno) pairs, 5% functions, 5% tracepoints."""
    rng = np.random.default_rng(seed)
    n_sys = int(keys * 0.9)
    n_fn = int(keys * 0.05)
    n_tp = keys - n_sys - n_fn
    errnos_per = 10
    rates = np.random.default_rng(1).gamma(0.5, 40.0, size=keys) + 0.02
    if shift:  # 1% of keys change by 2x; planted so the bench also exercises ranking
        rates[:: max(1, keys // (keys // 100 or 1))] *= 2.0
    out_runs = []
    for r in range(runs):
        counts = rng.poisson(rates * ITERATIONS).tolist()
        sysc: dict[str, dict[str, int]] = {}
        for i in range(n_sys):
            sysc.setdefault(f"sys{i // errnos_per}", {})[str(i % errnos_per)] = counts[i]
        fns = {f"fn_{i}": counts[n_sys + i] for i in range(n_fn)}
        tps = {f"cat{i % 50}:ev{i}": counts[n_sys + n_fn + i] for i in range(n_tp)}
        out_runs.append(
            Run(
                index=r,
                iterations=ITERATIONS,
                wall_s=1.0,
                started_utc="",
                syscalls=sysc,
                tracepoints=tps,
                functions=fns,
                liveness=[True] * ITERATIONS,
            )
        )
    return Capture(
        kernel=KernelInfo(release=release, version=release, cmdline=""),
        machine=MachineInfo(backend="host", arch="x86_64", cpus=2, mem_mb=2048),
        tracer=TracerInfo(fingerprint="f" * 64, options={}, bpf_text=""),
        workload=WorkloadInfo(name="synthetic", hash="w" * 64, spec={}),
        bcc_version="0",
        requested_runs=runs,
        probes=[ProbeStatus("syscall", "raw_syscalls:sys_exit", "attached")],
        runs=out_runs,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="timed diffs; the best is judged")
    args = ap.parse_args()
    old = synthetic("6.1.0-old", args.keys, args.runs, seed=11, shift=False)
    new = synthetic("6.8.0-new", args.keys, args.runs, seed=12, shift=True)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = diff_captures(old, new)
        times.append(time.perf_counter() - t0)
        del result
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_growth = rss1 - rss0
    dt = min(times)
    median = sorted(times)[len(times) // 2]

    tracemalloc.start()
    result = diff_captures(old, new)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_mb = peak / 2**20

    print(
        f"keys {result.keys_tested}  runs/side {args.runs}  significant {len(result.significant)}"
    )
    load = os.getloadavg()[0]
    print(
        f"time        {dt:.3f} s best of {args.repeat}, median {median:.3f} s   "
        f"({dt / TARGET_S:.2f} x target {TARGET_S:g} s; load average {load:.1f} on "
        f"{os.cpu_count()} CPUs)"
    )
    print(
        f"peak memory {peak_mb:.1f} MB python (tracemalloc), {rss_growth:.1f} MB max-RSS growth, "
        f"{rss1:.1f} MB max RSS   ({max(peak_mb, rss_growth) / TARGET_MB:.2f} x target "
        f"{TARGET_MB:g} MB)"
    )
    t0 = time.perf_counter()
    text = to_json(result)
    print(
        f"(not in the target: --json serialisation {time.perf_counter() - t0:.3f} s, "
        f"{len(text) / 2**20:.1f} MB)"
    )
    ok = dt <= TARGET_S and max(peak_mb, rss_growth) <= TARGET_MB
    print("OK" if ok else "OVER TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
