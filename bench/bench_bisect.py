"""`regress bisect` over 10 packaged kernels, next to one `regress run` of the same workload.

Warm: the kernels are fetched and their disks built before timing (the first search
over a line downloads ~100 MB per kernel; that is apt's time, not regress's). The
workload is the planted regression of the tests (tests/testdata/workloads/
bisect-plant.toml: a statx ENOENT from Debian's 6.1.0-52 on), 3 runs per kernel. Three
timings, all in this session:

    one run     regress run --old GOOD --new BAD (2 kernels in parallel, diff, report)
    bisect      regress bisect --good GOOD --bad BAD into a fresh directory
    again       the same search again (every capture reused)

and the ratio bisect / one run is printed with the issue's target (<= 6 min for 10
kernels).

    .venv/bin/python bench/bench_bisect.py [--good debian:6.1.0-47-cloud-amd64]
        [--bad debian:6.1.0-56-cloud-amd64] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLANT = ROOT / "tests" / "testdata" / "workloads" / "bisect-plant.toml"
TARGET_S = 360.0


def regress(*argv: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "regress.cli.main", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"regress {' '.join(argv[:3])} failed: {proc.stderr[-2000:]}")
    return time.monotonic() - started, proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--good", default="debian:6.1.0-47-cloud-amd64")
    ap.add_argument("--bad", default="debian:6.1.0-56-cloud-amd64")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = ["--runs", str(args.runs), "-w", str(PLANT)]
    with tempfile.TemporaryDirectory(prefix="bench-bisect-") as tmp:
        out = Path(tmp)
        # warm-up: every kernel of the range fetched and its disk built (not timed)
        regress("bisect", "--good", args.good, "--bad", args.bad, *runs, "-o", str(out / "warm"))
        one, _ = regress(
            "run", "--old", args.good, "--new", args.bad, *runs, "--no-narrow", "-o",
            str(out / "run"),
        )  # fmt: skip
        wall, proc = regress(
            "bisect", "--good", args.good, "--bad", args.bad, *runs, "-o", str(out / "b"),
            "--json", "-",
        )  # fmt: skip
        doc = json.loads(proc.stdout)
        again, _ = regress(
            "bisect", "--good", args.good, "--bad", args.bad, *runs, "-o", str(out / "b")
        )
    n = len(doc["candidates"])
    print(f"bisect over {n} packaged kernels ({args.good}..{args.bad}), {args.runs} runs each")
    print(f"  first bad: {doc['first_bad']['release']} ({doc['first_bad']['upstream']})")
    print(f"  one regress run (2 kernels):   {one:6.1f} s")
    print(f"  bisect, fresh:                 {wall:6.1f} s  ({doc['boots']} boots) = "
          f"{wall / one:.2f}x one run; target <= {TARGET_S:.0f} s: "
          f"{'met' if wall <= TARGET_S else 'MISSED'}")  # fmt: skip
    print(f"  bisect again (captures reused): {again:5.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
