#!/usr/bin/env python3
"""Guest cost of per-iteration counts and of function return probes (prints, asserts nothing).

In one boot of the default new kernel (QEMU, as ``regress run`` uses it), the built-in
ps-loop workload is captured by the real runner, alternating two tracer setups, 2 rounds
each:

* ``entries``: function entry probes only (``function_returns`` off);
* ``returns``: entry and return probes (``--function-returns``, spec ``function_returns``).

Both read the counters after every iteration (schema 4). Per setup it reports the mean
traced iteration wall (what the probes cost the workload), the mean ``Tracer.read()``
plus series bookkeeping per iteration (what per-iteration counts cost), and their ratio.

Usage: .venv/bin/python bench/bench_guest_read.py [--iterations 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from regress.guest.agent import spec_to_job
from regress.model.workload import resolve_workload
from regress.vm import kernels, orchestrate
from regress.vm.backend import DEFAULT_NEW

GUEST = r"""
import dataclasses, json, sys, time
from pathlib import Path
from regress.guest import runner, series, tracer
from regress.guest.agent import spec_from_job

spec = spec_from_job(json.loads(sys.argv[1]))
rounds = int(sys.argv[2])
spent = {"read": 0.0, "series": 0.0, "calls": 0}
orig_read, orig_add = tracer.Tracer.read, series.IterationSeries.add

def read(self):
    t = time.perf_counter()
    try:
        return orig_read(self)
    finally:
        spent["read"] += time.perf_counter() - t
        spent["calls"] += 1

def add(self, it, cum):
    t = time.perf_counter()
    try:
        return orig_add(self, it, cum)
    finally:
        spent["series"] += time.perf_counter() - t

tracer.Tracer.read, series.IterationSeries.add = read, add
out = {}
for r in range(rounds):
    for mode in ("entries", "returns"):
        variant = dataclasses.replace(spec, function_returns=mode == "returns")
        spent.update(read=0.0, series=0.0, calls=0)
        c = runner.run_capture(variant, runs=1, out=Path(f"/tmp/{mode}.json"), own_kernel=True)
        run = c.runs[0]
        rec = out.setdefault(mode, {"wall": [], "read": [], "series": [], "iterations": 0})
        rec["wall"].append(run.wall_s / run.iterations)
        rec["read"].append(spent["read"] / max(spent["calls"], 1))
        rec["series"].append(spent["series"] / max(spent["calls"], 1))
        rec["iterations"] = run.iterations
        rec["funcrets"] = sum(sum(v.values()) for v in run.funcrets.values()) / run.iterations
        rec["calls"] = sum(run.functions.values()) / run.iterations
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    spec = resolve_workload("ps-loop").with_iterations(args.iterations)
    kernel = kernels.fetch_debian(DEFAULT_NEW)
    with tempfile.TemporaryDirectory(prefix="regress-bench-read-") as work:
        res = orchestrate.boot_command(
            kernel,
            ["python3", "-c", GUEST, json.dumps(spec_to_job(spec)), str(args.rounds)],
            Path(work),
            what="bench guest read",
            timeout=1800,
        )
    cmd = (res.result or {}).get("command", {})
    if cmd.get("rc") != 0:
        print(cmd.get("stderr", "")[-3000:], file=sys.stderr)
        return 1
    doc = json.loads(cmd["stdout"].strip().splitlines()[-1])
    print(f"ps-loop in a TCG guest ({DEFAULT_NEW}), {args.iterations} iterations x {args.rounds}")
    print(
        f"{'setup':<10} {'calls/it':>9} {'returns/it':>10} {'wall/it':>9} {'read/it':>9} "
        f"{'series/it':>9} {'read share':>10}"
    )
    for mode, rec in doc.items():
        wall = sum(rec["wall"]) / len(rec["wall"])
        read = sum(rec["read"]) / len(rec["read"])
        ser = sum(rec["series"]) / len(rec["series"])
        print(
            f"{mode:<10} {rec['calls']:>9.1f} {rec['funcrets']:>10.1f} {1000 * wall:>7.1f}ms "
            f"{1000 * read:>7.2f}ms {1000 * ser:>7.2f}ms {100 * (read + ser) / wall:>9.1f}%"
        )
    e, r = doc["entries"], doc["returns"]
    ratio = (sum(r["wall"]) / len(r["wall"])) / (sum(e["wall"]) / len(e["wall"]))
    print(f"return probes: iteration wall x{ratio:.3f} of entries only")
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
