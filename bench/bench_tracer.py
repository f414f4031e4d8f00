"""Tracer overhead: syscall storm and ps-loop, untraced vs regress's tracer vs syscount-bpfcc.

``dd if=/dev/zero of=/dev/null bs=1 count=1000000`` makes ~2M syscalls (a
read and a write per byte). Every mode runs the same command the same way (the
runner's stopped-root start) REPEAT times, and the whole set of modes is
repeated ROUNDS times in one process, so the ratios come from one machine
state. Besides wall time it reports the workload's own CPU time (user + system,
from ``wait4``), which a busy machine disturbs much less than wall time.

Modes:

* ``untraced``: no BPF program loaded;
* ``regress``: our tracer, tracking the dd;
* ``regress-untracked``: our tracer loaded, dd not tracked (what every other
  process on the machine pays while a capture runs);
* ``floor-perf-tp``/``floor-raw-tp``: an empty program on ``raw_syscalls:sys_exit``
  as a perf tracepoint (what we use: the tracepoint arguments carry the syscall
  number) or as a raw tracepoint: the cost of any per-syscall BPF hook, which no
  program text can remove. ``regress - floor-perf-tp`` is our own program's cost;
* ``syscount-bpfcc``: bcc's tool, counting every process's syscalls;
* ``ps-loop``: the built-in workload's iterations, untraced vs traced with its
  tracepoints (function probes are left out: kprobes are not available everywhere).

Run as root::

    .venv/bin/python bench/bench_tracer.py [--count 1000000] [--repeat 3] [--rounds 2]
        [--ps-iterations 30] [--json out.json]

No assertions: this prints numbers; tests never time things.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regress.guest.bpfgen import TracerOptions, read_pid_max
from regress.guest.environment import HeadersChoice, ensure_tracefs, resolve_kernel_headers
from regress.guest.runner import STOP_WRAPPER, _RunContext, plan_tracer
from regress.guest.tracer import Tracer, import_bcc
from regress.model.workload import WorkloadSpec, resolve_workload

FLOORS = {
    "floor-perf-tp": "TRACEPOINT_PROBE(raw_syscalls, sys_exit) { return 0; }",
    "floor-raw-tp": "RAW_TRACEPOINT_PROBE(sys_exit) { return 0; }",
}
TARGET_STORM, TARGET_PS = 1.3, 1.05

Sample = tuple[float, float]  # (wall s, cpu s)


def run_stopped(argv: list[str], cwd: Path, track: Callable[[int], None] | None) -> Sample:
    """Start ``argv`` stopped, optionally track it, continue; (wall, user+sys CPU) of the run."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", STOP_WRAPPER, "bench", *argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            raise SystemExit(f"bench: {argv[0]} exited before it started")
        if track is not None:
            track(proc.pid)
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGCONT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    finally:
        if proc.returncode is None:
            proc.returncode = 0  # reaped above (or killed with its group below)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {argv[0]} failed ({os.waitstatus_to_exitcode(status)})")
    return wall, usage.ru_utime + usage.ru_stime


class Bench:
    def __init__(self, args: argparse.Namespace, headers: HeadersChoice) -> None:
        self.args = args
        self.headers = headers
        self.samples: dict[str, list[Sample]] = {}
        self.notes: list[str] = []
        self.dd = [
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=1",
            f"count={args.count}",
            "status=none",
        ]
        self.cwd = Path("/")
        self.ps_spec: WorkloadSpec = resolve_workload("ps-loop")
        self.ps_ctx = _RunContext(self.ps_spec, 0)  # working directory with the files
        if self.ps_spec.setup:
            self.ps_ctx.shell("setup", self.ps_spec.setup)
        self.ps_cmd = self.ps_spec.argv()

    def add(self, mode: str, sample: Sample) -> None:
        self.samples.setdefault(mode, []).append(sample)

    def dd_runs(self, mode: str, track: Callable[[int], None] | None = None) -> None:
        for _ in range(self.args.repeat):
            self.add(mode, run_stopped(self.dd, self.cwd, track))

    def ps_runs(self, mode: str, tracer: Tracer | None) -> None:
        """ps-loop iterations started like the runner does (wall and CPU per iteration)."""
        for _ in range(self.args.ps_iterations):
            track = tracer.track if tracer is not None else None
            self.add(mode, run_stopped(self.ps_cmd, self.ps_ctx.workdir, track))

    def regress_round(self) -> None:
        options = TracerOptions(pid_max=read_pid_max())
        tracer = Tracer(options, headers=self.headers)
        t0 = time.monotonic()
        tracer.load()
        self.add("load-s", (time.monotonic() - t0,) * 2)
        try:
            tracer.reset()
            self.dd_runs("regress", tracer.track)
            raw = tracer.read()
            self.dd_runs("regress-untracked")
        finally:
            t0 = time.monotonic()
            tracer.detach()
            self.add("detach-s", (time.monotonic() - t0,) * 2)
        counted = sum(raw.syscalls.values())
        lost = sum(raw.lost.values())
        self.notes.append(
            f"regress counted {counted / self.args.repeat:.0f} syscall exits per dd, lost {lost}"
        )

    def ps_round(self, tracefs: Path, untraced_first: bool) -> None:
        """One untraced and one traced block of ps-loop iterations (alternate the order
        between rounds, so a machine getting busier or quieter does not bias the ratio)."""
        if untraced_first:
            self.ps_runs("ps-loop untraced", None)
        plan = plan_tracer(list(self.ps_spec.tracepoints), [], tracefs=tracefs)
        tracer = Tracer(plan.options, headers=self.headers)
        tracer.load()
        try:
            tracer.reset()
            self.ps_runs("ps-loop traced", tracer)
        finally:
            t0 = time.monotonic()
            tracer.detach()
            self.add(
                f"detach-s ({len(plan.options.tracepoints)} tracepoints)",
                (time.monotonic() - t0,) * 2,
            )
        if not untraced_first:
            self.ps_runs("ps-loop untraced", None)

    def floor_round(self) -> None:
        bcc = import_bcc()
        for mode, text in FLOORS.items():
            b = bcc.BPF(text=text.encode())
            try:
                self.dd_runs(mode)
            finally:
                b.cleanup()

    def syscount_round(self) -> None:
        syscount = shutil.which("syscount-bpfcc")
        if not syscount:
            self.notes.append("syscount-bpfcc not installed (bpfcc-tools): skipped")
            return
        sc = subprocess.Popen(
            [syscount], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert sc.stdout is not None
        line = sc.stdout.readline()  # "Tracing syscalls, ..." once attached
        try:
            if "Tracing" not in line:
                self.notes.append(f"syscount-bpfcc did not start: {line.strip()}")
                return
            self.dd_runs("syscount-bpfcc")
        finally:
            sc.send_signal(signal.SIGINT)
            try:
                sc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                sc.kill()
                sc.communicate()

    def cleanup(self) -> None:
        if self.ps_spec.teardown:
            self.ps_ctx.shell("teardown", self.ps_spec.teardown)
        self.ps_ctx.cleanup()


def med(samples: list[Sample], i: int) -> float:
    return statistics.median(s[i] for s in samples)


def report(b: Bench) -> dict[str, Any]:
    a = b.args
    s = b.samples
    out: dict[str, Any] = {
        "count": a.count,
        "syscalls": 2 * a.count,
        "repeat": a.repeat,
        "rounds": a.rounds,
        "modes": {},
        "notes": b.notes,
    }
    base_w, base_c = med(s["untraced"], 0), med(s["untraced"], 1)
    print(
        f"dd bs=1 count={a.count} ({2 * a.count} syscalls), median of "
        f"{a.repeat} x {a.rounds} runs; CPU = the dd's user+system time"
    )
    print(f"  {'mode':<20} {'wall s':>7} {'ratio':>6} {'cpu s':>7} {'ratio':>6} {'ns/syscall':>10}")
    for mode in ["untraced", "regress", "regress-untracked", *FLOORS, "syscount-bpfcc"]:
        if mode not in s:
            continue
        w, c = med(s[mode], 0), med(s[mode], 1)
        ns = (c - base_c) / (2 * a.count) * 1e9
        print(f"  {mode:<20} {w:7.3f} {w / base_w:6.2f} {c:7.3f} {c / base_c:6.2f} {ns:10.1f}")
        out["modes"][mode] = {
            "wall_s": w,
            "cpu_s": c,
            "wall_ratio": w / base_w,
            "cpu_ratio": c / base_c,
            "overhead_ns_per_syscall": ns,
            "n": len(s[mode]),
        }
    r = out["modes"]
    if "floor-perf-tp" in r:
        own = r["regress"]["overhead_ns_per_syscall"]
        own -= r["floor-perf-tp"]["overhead_ns_per_syscall"]
        out["regress_program_ns_per_syscall"] = own
        print(f"  regress program alone (regress - floor-perf-tp): {own:.1f} ns/syscall")
    if "syscount-bpfcc" in r:
        ratio = r["regress"]["cpu_s"] / r["syscount-bpfcc"]["cpu_s"]
        out["regress_vs_syscount_cpu"] = ratio
        print(f"  regress / syscount-bpfcc (cpu) = {ratio:.2f}")
    print(
        f"  target: regress <= {TARGET_STORM} x untraced: cpu ratio "
        f"{r['regress']['cpu_ratio']:.2f}, wall ratio {r['regress']['wall_ratio']:.2f}"
    )
    if "ps-loop untraced" in s and "ps-loop traced" in s:
        ps: dict[str, float] = {"n": len(s["ps-loop traced"])}
        for i, unit in enumerate(("wall", "cpu")):
            pu, pt = med(s["ps-loop untraced"], i), med(s["ps-loop traced"], i)
            ps |= {f"untraced_{unit}_s": pu, f"traced_{unit}_s": pt, f"{unit}_ratio": pt / pu}
            print(
                f"ps-loop {unit}, median per iteration of {len(s['ps-loop traced'])}: "
                f"untraced {pu * 1e3:.2f} ms, traced {pt * 1e3:.2f} ms, ratio {pt / pu:.3f} "
                f"(target <= {TARGET_PS})"
            )
        out["ps_loop"] = ps
    for mode in s:
        if mode.startswith(("load-s", "detach-s")):
            out[mode] = med(s[mode], 0)
            print(f"  {mode}: {out[mode]:.3f}")
    for note in b.notes[-2:]:
        print(f"  note: {note}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ps-iterations", type=int, default=30)
    ap.add_argument("--no-floors", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_tracer: run as root", file=sys.stderr)
        return 2
    tracefs = ensure_tracefs()
    headers = resolve_kernel_headers()
    if headers.source is not None:
        os.environ["BCC_KERNEL_SOURCE"] = str(headers.source)
    b = Bench(args, headers)
    try:
        for i in range(args.rounds):
            b.dd_runs("untraced")
            b.regress_round()
            if not args.no_floors:
                b.floor_round()
            b.syscount_round()
            b.dd_runs("untraced")
            b.ps_round(tracefs, untraced_first=i % 2 == 0)
    finally:
        b.cleanup()
    out = report(b)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
