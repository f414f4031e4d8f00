"""The narrowing pass's wall time next to the first pass's, on a real regression.

One kernel booted as both sides, the new side with an injected fault (a canary of
``regress selftest``: ``lsm`` -- BPF-LSM denies some /proc/<pid>/stat opens by ps -- or
``null`` -- a module makes find_ge_pid() return NULL early), at ``regress run``'s default
size (5 runs x 50 iterations) unless told otherwise, with the narrowing pass on. The
phases are timed from the pipeline's own progress events:

    first pass   start -> "diffing"          (both kernels captured, in parallel)
    discovery    "narrowing: discovering" -> "narrowing: tracing"
    second pass  "narrowing: tracing" -> end (capture with return probes + diff + render)

and the ratio (discovery + second pass) / first pass is printed against the issue's
budget (the pass costs at most as much as the first one: ratio <= 1).

    .venv/bin/python bench/bench_narrow.py [--canary lsm|null] [--runs 5] [--iterations 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from regress.gate.selftest import SelftestOptions, canary_fault, run_selftest
from regress.model.events import Event
from regress.vm.backend import DEFAULT_NEW, RunOptions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--canary", default="lsm", choices=("lsm", "null", "errno"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=50)
    args = ap.parse_args()
    marks: dict[str, float] = {}
    started = time.monotonic()

    def progress(ev: Event) -> None:
        msg = ev.message or ""
        if ev.kind == "stage":
            for key in ("diffing", "narrowing: discovering", "narrowing: tracing"):
                if msg.startswith(key) and key not in marks:
                    marks[key] = time.monotonic() - started

    out = Path(tempfile.mkdtemp(prefix="bench-narrow-"))
    outcome = run_selftest(
        SelftestOptions(
            kernel=DEFAULT_NEW,
            fault=canary_fault(args.canary),
            run=RunOptions(runs=args.runs, iterations=args.iterations, out_dir=out),
            narrow=True,
        ),
        progress,
    )
    total = time.monotonic() - started
    first = marks.get("diffing")
    disc, trace = marks.get("narrowing: discovering"), marks.get("narrowing: tracing")
    print(f"canary {args.canary}: {args.runs} runs x {args.iterations} iterations per kernel")
    print(f"verdict: {'PASS' if outcome.verdict.passed else 'FAIL'}: {outcome.verdict.message()}")
    if first is None or disc is None or trace is None:
        print("no narrowing pass ran (nothing regressed?)")
        return 1
    n = outcome.result.narrowing
    second = total - trace
    discovery = trace - disc
    print(f"first pass      {first:7.1f} s")
    print(f"discovery       {discovery:7.1f} s   (function_graph, both kernels in parallel)")
    print(
        f"second pass     {second:7.1f} s   ({n.functions if n else '?'} functions, "
        f"{min(args.runs, 3)} runs, capture + diff + render)"
    )
    ratio = (discovery + second) / first
    verdict = "ok" if ratio <= 1 else "OVER"
    print(f"narrowing / first pass: {ratio:.2f}x   (budget <= 1.00x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
