"""Host A/A false positives across capture sessions: every pair of ps-loop captures.

The differ's A/A figures in bench_stats.py come from noise fitted to one session's runs;
this one measures what the host test sees: separate `regress capture` sessions of the same
kernel, diffed pairwise (all pairs of N captures), with the signal-race gate
(``Thresholds.min_ratio_signal``, the default), at x1.5 (the default until the VM
measurement of bench_vm_signal.py) and without it (the gate at ``min_ratio``, as before)
-- pairs with any significant row, and which keys.

    .venv/bin/python bench/bench_host_aa.py --captures 20          # ~3 min, needs root
    .venv/bin/python bench/bench_host_aa.py --from DIR             # diff captures in DIR
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from regress.diff.differ import diff_captures  # noqa: E402
from regress.model.capture import Capture, load_capture  # noqa: E402
from regress.model.result import Thresholds  # noqa: E402


def regress_cli(*argv: str) -> None:
    """This checkout's regress CLI, as a user runs it (fails loudly)."""
    cmd = [sys.executable, "-m", "regress.cli.main", *argv]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)


def capture_all(n: int, out: Path, runs: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = out / f"c{i:03d}.json.gz"
        regress_cli("capture", "-w", "ps-loop", "--runs", str(runs), "-o", str(path))
        paths.append(path)
    return paths


def count(caps: list[Capture], th: Thresholds) -> tuple[int, int, Counter[str]]:
    pairs = bad = 0
    keys: Counter[str] = Counter()
    for a, b in itertools.combinations(caps, 2):
        pairs += 1
        sig = diff_captures(a, b, thresholds=th).significant
        if sig:
            bad += 1
            keys.update(d.key for d in sig)
    return pairs, bad, keys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captures", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--from", dest="src", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-aa-") as tmp:
        if args.src is not None:
            paths = sorted(p for p in args.src.glob("*.json*") if p.is_file())
        else:
            paths = capture_all(args.captures, Path(tmp), args.runs)
        caps = [load_capture(p) for p in paths]
    print(f"host A/A: {len(caps)} ps-loop captures ({caps[0].kernel.release}), all pairs")
    default = Thresholds()
    for name, th in (
        (f"signal-race gate x{default.min_ratio_signal:g} (default)", default),
        ("signal-race gate x1.5", Thresholds(min_ratio_signal=1.5)),
        ("no signal-race gate (before)", Thresholds(min_ratio_signal=default.min_ratio)),
    ):
        pairs, bad, keys = count(caps, th)
        top = ", ".join(f"{k} ({n})" for k, n in keys.most_common(3)) or "-"
        print(f"  {name:<34} {bad:>3} of {pairs} pairs with a significant row; {top}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
