"""bench/run_all.py's table and comparison logic (no timings measured or asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", REPO / "bench" / "run_all.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run_all"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_targets_and_table(run_all: ModuleType) -> None:
    R = run_all.Result
    rows = [
        R("storm untraced", 0.25, "s"),
        R("storm regress tracer", 0.5, "s", ratio=2.0, target=1.3, detail="counted 1000000"),
        R("ps-loop traced (per iteration)", 0.0151, "s", ratio=1.01, target=1.05),
        R(
            "VM 200 fn probes: funccount / regress",
            3.0,
            "x",
            ratio=3.0,
            target=5.0,
            higher_is_better=True,
        ),
        R("VM boot", float("nan"), "s", target=10.0),
    ]
    assert [r.ok for r in rows] == [None, False, True, False, None]
    text = run_all.table(rows)
    lines = text.splitlines()
    assert "x2.00" in lines[3] and "<=1.3" in lines[3] and "OVER" in lines[3]
    assert "counted 1000000" in lines[4]
    assert "ok" in lines[5].split()
    assert ">=5" in lines[6] and "MISS" in lines[6]


def test_compare_column(run_all: ModuleType) -> None:
    R = run_all.Result
    old = {"format": "regress-bench", "results": [{"name": "differ", "value": 0.5}]}
    text = run_all.table(
        [R("differ", 0.75, "s", ratio=0.75, target=1.0), R("new row", 1.0, "s")], old
    )
    lines = text.splitlines()
    assert "before" in lines[0]
    assert "0.500 s" in lines[2] and "x1.50" in lines[2]
    assert lines[3].rstrip().endswith("-")
