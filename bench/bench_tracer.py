"""Tracer overhead on a syscall storm: untraced vs regress's tracer vs syscount-bpfcc.

``dd if=/dev/zero of=/dev/null bs=1 count=1000000`` makes ~2M syscalls (a
read and a write per byte). Each mode runs the same command the same way (the
runner's stopped-root start), REPEAT times, in one process, and the medians
are compared, so the ratios come from one machine state. Run as root:

    .venv/bin/python bench/bench_tracer.py [--count 1000000] [--repeat 5]

No assertions: this prints numbers; tests never time things.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

from regress.bpfgen import TracerOptions
from regress.environment import ensure_tracefs, resolve_kernel_headers
from regress.runner import _RunContext
from regress.tracer import Tracer
from regress.workload import spec_from_dict


class _NoTracer:
    """Stands in for Tracer when measuring untraced runs."""

    def track(self, pid: int) -> None:
        pass


def _time_iterations(ctx: _RunContext, tracer: object, repeat: int) -> list[float]:
    walls = []
    for i in range(repeat):
        rc, wall = ctx.iteration(tracer, i)  # type: ignore[arg-type]
        if rc != 0:
            raise SystemExit(f"dd exited with {rc}")
        walls.append(wall)
    return walls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_tracer: run as root", file=sys.stderr)
        return 2
    ensure_tracefs()
    headers = resolve_kernel_headers()
    if headers.source is not None:
        os.environ["BCC_KERNEL_SOURCE"] = str(headers.source)
    spec = spec_from_dict(
        {
            "name": "dd-storm",
            "command": ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={args.count}",
                        "status=none"],
            "timeout_s": 600,
        },
        source="bench",
        base_dir=None,
    )
    ctx = _RunContext(spec, 0)
    results: dict[str, float] = {}
    try:
        results["untraced"] = statistics.median(_time_iterations(ctx, _NoTracer(), args.repeat))

        tracer = Tracer(TracerOptions(), headers=headers)
        t0 = time.monotonic()
        tracer.load()
        load_s = time.monotonic() - t0
        try:
            tracer.reset()
            walls = _time_iterations(ctx, tracer, args.repeat)
            raw = tracer.read()
        finally:
            t0 = time.monotonic()
            tracer.detach()
            detach_s = time.monotonic() - t0
        results["regress"] = statistics.median(walls)
        counted = sum(raw.syscalls.values())
        print(f"regress tracer: load {load_s:.2f} s, detach {detach_s:.2f} s, "
              f"counted {counted} syscall exits over {args.repeat} runs "
              f"({counted / args.repeat:.0f}/run), lost {sum(raw.lost.values())}")

        syscount = shutil.which("syscount-bpfcc")
        if syscount:
            sc = subprocess.Popen([syscount], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
            assert sc.stdout is not None
            line = sc.stdout.readline()  # "Tracing syscalls, ..." once attached
            if "Tracing" not in line:
                print(f"syscount-bpfcc did not start: {line.strip()}", file=sys.stderr)
                sc.kill()
            else:
                try:
                    results["syscount-bpfcc"] = statistics.median(
                        _time_iterations(ctx, _NoTracer(), args.repeat)
                    )
                finally:
                    sc.send_signal(signal.SIGINT)
                    sc.communicate(timeout=60)
        else:
            print("syscount-bpfcc not installed (bpfcc-tools): skipped", file=sys.stderr)
    finally:
        ctx.cleanup()

    base = results["untraced"]
    print(f"dd bs=1 count={args.count} ({2 * args.count} syscalls), median of {args.repeat}:")
    for name, wall in results.items():
        print(f"  {name:<16} {wall:7.3f} s   x{wall / base:5.2f} vs untraced")
    if "syscount-bpfcc" in results:
        print(f"  regress / syscount-bpfcc = {results['regress'] / results['syscount-bpfcc']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
