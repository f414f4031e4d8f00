"""All benchmarks in one run: a table of ratios measured now, on this machine, plus JSON.

    .venv/bin/python bench/run_all.py [--quick] [--no-vm] [--compare reports/bench-OLD.json]

Measures, in one process and one machine state (run as root):

* tracer (``bench/bench_tracer.py --json``, the tracer's own bench, run as a child):
  ``dd if=/dev/zero of=/dev/null bs=1 count=500000`` (~1M syscalls) untraced vs
  regress's tracer (tracking dd, and loaded but not tracking it) vs empty per-syscall
  programs (the floor any hook costs) vs ``syscount-bpfcc``, target regress <= 1.3x
  untraced; and ps-loop iterations untraced vs traced, target <= 1.05x. Ratios on
  the workload's CPU time (robust on a busy machine) and on wall time.
* differ speed: ``bench/bench_differ.py``'s synthetic 50k keys x 10 runs; target <= 0.5 s.
* VM (``--no-vm`` skips): one ``regress run`` of ps-loop, 1 run x 1 iteration per
  kernel: boot to agent-ready, probe compile+attach in the guest, whole wall time.
* ``bench/bench_vm.py`` when present (run as is; its output is kept in the JSON).

Everything is written to ``reports/bench-<UTC timestamp>.json``; ``--compare`` prints
an earlier file's values next to today's. Nothing here asserts timings: tests never
time things; the table says "over" next to a missed target and the JSON keeps it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

FORMAT = "regress-bench"
VERSION = 1


@dataclass
class Result:
    """One measured quantity. ``ratio``/``target`` only where a ratio is the point."""

    name: str
    value: float
    unit: str
    ratio: float | None = None
    target: float | None = None  # the ratio (or the value when no ratio) vs this bound
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = False  # target is a minimum (e.g. "x5 faster than funccount")

    @property
    def ok(self) -> bool | None:
        measured = self.ratio if self.ratio is not None else self.value
        if self.target is None or measured != measured:
            return None
        return measured >= self.target if self.higher_is_better else measured <= self.target


# --------------------------------------------------------------------------- tracer


def bench_tracer(count: int, repeat: int, rounds: int, ps_iterations: int) -> list[Result]:
    """``bench/bench_tracer.py`` (storm + ps-loop, the tracer issue's bench) via its --json.

    Ratios are given on the workload's CPU time (user + system from wait4: a busy
    machine disturbs it much less than wall time) and on wall time, both from one run.
    """
    with tempfile.TemporaryDirectory(prefix="regress-bench-") as tmp:
        out = Path(tmp) / "tracer.json"
        proc = subprocess.run(
            [
                sys.executable,
                str(REPO / "bench" / "bench_tracer.py"),
                "--count",
                str(count),
                "--repeat",
                str(repeat),
                "--rounds",
                str(rounds),
                "--ps-iterations",
                str(ps_iterations),
                "--json",
                str(out),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(
                f"bench_tracer.py exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-500:]}"
            )
        doc = json.loads(out.read_text())
    modes = doc["modes"]
    base = modes["untraced"]
    syscalls = doc["syscalls"]
    res = [
        Result(
            f"storm untraced ({syscalls} syscalls)",
            base["wall_s"],
            "s",
            detail=f"cpu {base['cpu_s']:.3f} s; median of {base['n']}",
            extra={"bench_tracer": doc},
        )
    ]
    for mode, target in (
        ("regress", 1.3),
        ("regress-untracked", None),
        ("floor-perf-tp", None),
        ("floor-raw-tp", None),
        ("syscount-bpfcc", None),
    ):
        m = modes.get(mode)
        if m is None:
            continue
        res.append(
            Result(
                f"storm {mode} (cpu)",
                m["cpu_s"],
                "s",
                ratio=m["cpu_ratio"],
                target=target,
                detail=f"wall {m['wall_s']:.3f} s = x{m['wall_ratio']:.2f}; "
                f"+{m['overhead_ns_per_syscall']:.0f} ns/syscall",
            )
        )
    if "regress" in modes:
        r = modes["regress"]
        res.append(
            Result("storm regress (wall)", r["wall_s"], "s", ratio=r["wall_ratio"], target=1.3)
        )
    if "regress_program_ns_per_syscall" in doc:
        res.append(
            Result(
                "storm regress program alone",
                doc["regress_program_ns_per_syscall"],
                " ns/syscall",
                detail="regress minus the empty perf-tracepoint floor",
            )
        )
    if "regress_vs_syscount_cpu" in doc:
        v = doc["regress_vs_syscount_cpu"]
        res.append(
            Result(
                "storm regress / syscount-bpfcc (cpu)",
                v,
                "x",
                detail="regress's tracer vs the reference, same storm",
            )
        )
    ps = doc.get("ps_loop")
    if ps:
        res.append(
            Result(
                "ps-loop traced / untraced (cpu)",
                ps["traced_cpu_s"],
                "s",
                ratio=ps["cpu_ratio"],
                target=1.05,
                detail=f"per iteration; untraced {ps['untraced_cpu_s']:.4f} s cpu; "
                f"median of {ps['n']:.0f}",
            )
        )
        res.append(
            Result(
                "ps-loop traced / untraced (wall)",
                ps["traced_wall_s"],
                "s",
                ratio=ps["wall_ratio"],
                target=1.05,
                detail=f"per iteration; untraced {ps['untraced_wall_s']:.4f} s wall",
            )
        )
    return res


# --------------------------------------------------------------------------- differ


def bench_differ(keys: int, runs: int) -> list[Result]:
    import bench_differ

    from regress.diff.differ import diff_captures

    old = bench_differ.synthetic("6.1.0-old", keys, runs, seed=11, shift=False)
    new = bench_differ.synthetic("6.8.0-new", keys, runs, seed=12, shift=True)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        diff_captures(old, new)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return [
        Result(
            f"differ {keys} keys x {runs} runs",
            med,
            "s",
            ratio=med / bench_differ.TARGET_S,
            target=bench_differ.TARGET_S,
            detail=f"median of 3; target {bench_differ.TARGET_S:g} s",
            extra={"times": times},
        )
    ]


# --------------------------------------------------------------------------- VM


def bench_vm() -> list[Result]:
    from regress.vm import orchestrate
    from regress.vm.backend import RunOptions

    with tempfile.TemporaryDirectory(prefix="regress-bench-vm-") as tmp:
        out = Path(tmp)
        t0 = time.monotonic()
        outcome = orchestrate.capture_pair(
            RunOptions(runs=1, iterations=1, out_dir=out, parallel=False)
        )
        wall = time.monotonic() - t0
        attach: list[float] = []
        for log in sorted((out / "logs").glob("*-boot0.console.log")):
            t_loading = t_loaded = None
            for line in log.read_text(errors="replace").splitlines():
                if "REGRESS-EVENT " not in line:
                    continue
                ev = json.loads(line.split("REGRESS-EVENT ", 1)[1])
                if ev.get("kind") == "capture-start":
                    t_loading = ev.get("t")
                elif ev.get("kind") == "runner-loaded":
                    t_loaded = ev.get("t")
            if t_loading is not None and t_loaded is not None:
                attach.append(float(t_loaded) - float(t_loading))
    ready = [b["agent_ready_s"] for b in outcome.boots if b.get("agent_ready_s") is not None]
    boots = [b["wall_s"] for b in outcome.boots]
    out_r = [
        Result(
            "VM boot to agent ready",
            statistics.median(ready) if ready else float("nan"),
            "s",
            detail=f"{len(ready)} boots (QEMU start -> guest agent's first event)",
            extra={"values": ready},
        )
    ]
    if attach:
        out_r.append(
            Result(
                "VM probe compile+attach (guest)",
                statistics.median(attach),
                "s",
                detail="bcc import + compile + attach, ps-loop's probes",
                extra={"values": attach},
            )
        )
    out_r.append(
        Result(
            "VM regress run, 1x1 ps-loop, serial",
            wall,
            "s",
            detail="boots " + ", ".join(f"{b:.1f} s" for b in boots),
        )
    )
    return out_r


_VM_LINES = [
    # (regex on bench_vm.py's output, name, unit, ratio from value, target, higher is better)
    (
        r"boot-to-agent-ready: ([\d.]+) s",
        "VM boot to agent ready (bench_vm)",
        "s",
        None,
        None,
        False,
    ),
    (
        r"probes best-of-\d+ attach\+detach \(1 vCPU\): regress [\d.]+ s vs funccount [\d.]+ s: "
        r"([\d.]+)x",
        "VM 200 fn probes, 1 vCPU: funccount / regress",
        "x",
        1.0,
        5.0,
        True,
    ),
    (
        r"probes best-of-\d+ attach\+detach \(2 vCPUs\): regress [\d.]+ s vs funccount [\d.]+ s: "
        r"([\d.]+)x",
        "VM 200 fn probes, 2 vCPUs: funccount / regress",
        "x",
        1.0,
        5.0,
        True,
    ),
    (
        r"end-to-end default comparison \(warm cache\): ([\d.]+) s",
        "VM regress run defaults, end to end",
        "s",
        1 / 90.0,
        1.0,
        False,
    ),
]


def bench_vm_script() -> list[Result]:
    """``bench/bench_vm.py`` (the VM issue's bench), its key lines parsed, all output kept."""
    script = REPO / "bench" / "bench_vm.py"
    if not script.is_file():
        return []
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=3600
    )
    wall = time.monotonic() - t0
    out: list[Result] = []
    for pattern, name, unit, scale, target, higher in _VM_LINES:
        m = re.search(pattern, proc.stdout)
        if m:
            value = float(m.group(1))
            out.append(
                Result(
                    name,
                    value,
                    unit,
                    ratio=value * scale if scale is not None else None,
                    target=target,
                    higher_is_better=higher,
                )
            )
    out.append(
        Result(
            "bench_vm.py wall",
            wall,
            "s",
            detail=f"exit {proc.returncode}; full output in the JSON",
            extra={"stdout": proc.stdout[-20000:], "stderr": proc.stderr[-5000:]},
        )
    )
    return out


# --------------------------------------------------------------------------- output


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None or v != v:
        return "-"
    if unit == "x":
        return f"x{v:.2f}"
    return f"{v:.3f} s" if unit == "s" else f"{v:.3g}{unit}"


def table(results: list[Result], old: dict[str, Any] | None = None) -> str:
    prev = {r["name"]: r for r in (old or {}).get("results", [])}
    head = f"{'benchmark':<40} {'value':>11} {'ratio':>7} {'target':>7}  {'':<4}"
    if old is not None:
        head += f" {'before':>11} {'change':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        ok = {True: "ok", False: "MISS" if r.higher_is_better else "OVER", None: ""}[r.ok]
        bound = ">=" if r.higher_is_better else "<="
        target = f"{bound}{r.target:g}" if r.target is not None else ""
        line = (
            f"{r.name:<40} {_fmt(r.value, r.unit):>11} {_fmt(r.ratio, 'x'):>7} {target:>7}  {ok:<4}"
        )
        if old is not None:
            p = prev.get(r.name)
            if p is not None and p.get("value"):
                line += f" {_fmt(p['value'], r.unit):>11} {_fmt(r.value / p['value'], 'x'):>7}"
            else:
                line += f" {'-':>11} {'':>7}"
        lines.append(line)
        if r.detail:
            lines.append(f"{'':<4}{r.detail}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    ap.add_argument("--no-vm", action="store_true", help="skip the VM measurements")
    ap.add_argument(
        "--no-host", action="store_true", help="skip the host tracer benches (no root/bcc here)"
    )
    ap.add_argument("--count", type=int, default=500_000, help="dd bytes (2 syscalls each)")
    ap.add_argument("--compare", type=Path, help="an earlier bench JSON to compare with")
    ap.add_argument("-o", "--output", type=Path, help="JSON path (default reports/bench-*.json)")
    args = ap.parse_args()
    old = json.loads(args.compare.read_text()) if args.compare else None
    if old is not None and old.get("format") != FORMAT:
        print(f"bench: {args.compare} is not a {FORMAT} file", file=sys.stderr)
        return 2
    results: list[Result] = []
    errors: list[str] = []
    started = time.monotonic()
    steps: list[tuple[str, Any]] = []
    if not args.no_host:
        if os.geteuid() != 0:
            print("bench: the host tracer benches need root (or pass --no-host)", file=sys.stderr)
            return 2
        steps.append(
            (
                "tracer",
                lambda: bench_tracer(
                    args.count,
                    2 if args.quick else 3,
                    1 if args.quick else 2,
                    10 if args.quick else 30,
                ),
            )
        )
    steps.append(("differ", lambda: bench_differ(50_000, 10)))
    if not args.no_vm:
        steps += [("vm", bench_vm), ("bench_vm.py", bench_vm_script)]
    for name, step in steps:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            results += step()
        except Exception as exc:  # a failed bench is reported, the others still run
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"bench: {name} failed: {exc}", file=sys.stderr)
    created = dt.datetime.now(dt.UTC)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "created_utc": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {
            "kernel": platform.release(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
        },
        "quick": args.quick,
        "wall_s": round(time.monotonic() - started, 1),
        "results": [{**asdict(r), "ok": r.ok} for r in results],
        "errors": errors,
    }
    path = args.output or REPO / "reports" / f"bench-{created.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results, old))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nload average {load} on {os.cpu_count()} CPUs; written {path}")
    for e in errors:
        print(f"FAILED {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
