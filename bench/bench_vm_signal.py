#!/usr/bin/env python3
"""Signal races between the default job's two VM boots (prints figures; asserts nothing).

How often dash's ``wait`` is interrupted by SIGCHLD (ps-loop's ``rt_sigsuspend``
ERESTARTNOHAND, mirrored by ``sigreturn(-1)`` EINTR) follows the timing of the guest, and
the default job's two guests share this machine's cores under QEMU TCG: each boot has its
own rate, which the runs of one boot do not show. Per ``regress run`` of the default
kernels (no signal change between Debian 6.1.0-47 and -56): the rates and the differ's
ratio and q; then the spread of the log ratio over all pairs, and how many pairs would
have any significant row (a false alarm: nothing changed) at each signal-race gate.

    .venv/bin/python bench/bench_vm_signal.py --count 8           # ~2-3 min per run
    .venv/bin/python bench/bench_vm_signal.py --from DIR [DIR...] # regress run outputs
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_host_aa import regress_cli  # noqa: E402

from regress.diff.differ import diff_captures  # noqa: E402
from regress.model.capture import load_capture  # noqa: E402
from regress.model.result import Thresholds  # noqa: E402

KEY = "syscall:rt_sigsuspend:ERESTARTNOHAND"
GATES = (1.5, 2.0, 2.5, 3.0)


def run_pairs(n: int, out: Path) -> list[Path]:
    dirs = []
    for i in range(n):
        d = out / f"run{i:02d}"
        regress_cli("run", "--no-narrow", "-o", str(d))
        dirs.append(d)
    return dirs


def pair_paths(d: Path) -> tuple[Path, Path] | None:
    """The captures ``regress run`` wrote into ``d`` (None when a side is missing)."""
    old, new = d / "old.json", d / "new.json"
    return (old, new) if old.is_file() and new.is_file() else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=8, help="regress runs to make")
    ap.add_argument("--from", dest="src", type=Path, nargs="+", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-vm-signal-") as tmp:
        dirs = args.src if args.src else run_pairs(args.count, Path(tmp))
        pairs = [p for p in map(pair_paths, dirs) if p is not None]
        caps = [(load_capture(o), load_capture(n)) for o, n in pairs]
    caps = [(o, n) for o, n in caps if o.workload.name == "ps-loop"]
    if not caps:
        print("no ps-loop capture pairs found", file=sys.stderr)
        return 1
    loose = Thresholds(min_ratio_signal=1.0)
    logs: list[float] = []
    significant = dict.fromkeys(GATES, 0)
    print(f"{'old':<22} {'new':<22} {'runs':>5} {'old/it':>7} {'new/it':>7} {'ratio':>6} {'q':>6}")
    for old, new in caps:
        res = diff_captures(old, new, thresholds=loose)
        row = {d.key: d for d in res.divergences}.get(KEY)
        if row is None or row.ratio is None or not 0 < row.ratio < math.inf:
            continue
        logs.append(math.log(row.ratio))
        shape = f"{len(old.runs)}x{old.iterations_per_run}"
        q = 1.0 if row.q is None else row.q  # an exact change has q = 0
        print(
            f"{old.kernel.release:<22} {new.kernel.release:<22} {shape:>5} "
            f"{row.old.center:>7.3f} {row.new.center:>7.3f} x{row.ratio:<5.2f} {q:>6.3f}"
        )
        for gate in GATES:
            th = Thresholds(min_ratio_signal=gate)
            significant[gate] += bool(diff_captures(old, new, thresholds=th).significant)
    n = len(logs)
    mean = sum(logs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / max(n - 1, 1))
    lo, hi = math.exp(min(logs)), math.exp(max(logs))
    print(f"{n} pairs: ratio x{lo:.2f}-x{hi:.2f}, log ratio sd {sd:.2f}")
    default = Thresholds().min_ratio_signal
    for gate in GATES:
        mark = " (default)" if gate == default else ""
        print(
            f"  signal-race gate x{gate:g}{mark}: {significant[gate]} of {n} pairs with any "
            f"significant row; the gate is {math.log(gate) / sd:.1f} sd of the log ratio"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
