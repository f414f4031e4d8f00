"""Ground truth through the real tracer on this host (root, tracefs, bcc).

Planted: one workload spec whose behaviour depends on a switch file outside the
spec (so both captures have the same workload hash) makes 12 extra stat(2)
calls that fail with ENOTDIR per iteration when the switch exists. The differ
must rank exactly that (syscall, errno) first with q < 0.01, both with repeated
runs and with one run per side.

A/A: the built-in ps-loop captured twice with 5 runs per side must show no
significant divergence.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from regress.diff.differ import diff_captures
from regress.errors import IncomparableError
from regress.model.capture import Capture, load_capture

pytestmark = pytest.mark.root

PLANTED_KEY = "syscall:newfstatat:ENOTDIR"


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root: the tracer loads BPF programs (run the suite as root)")
    if not Path("/sys/kernel/tracing/events").is_dir():
        pytest.fail("needs tracefs at /sys/kernel/tracing")


def _capture(spec: str, runs: int, out: Path, cwd: Path) -> Capture:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "regress.cli.main",
            "capture",
            "-w",
            spec,
            "--runs",
            str(runs),
            "-o",
            str(out),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"regress capture failed ({proc.returncode}): {proc.stderr[-2000:]}"
    )
    return load_capture(out)


def _first_run_only(cap: Capture) -> Capture:
    return dataclasses.replace(cap, runs=cap.runs[:1], requested_runs=1)


def test_planted_errno_ranks_first(tmp_path: Path) -> None:
    _require_root()
    switch = Path(f"/tmp/regress-switch-{uuid.uuid4().hex}")
    spec = tmp_path / "planted.toml"
    spec.write_text(
        'name = "planted"\n'
        'description = "12 extra failing stat(2) per iteration when a switch exists"\n'
        "iterations = 20\n"
        f'command = "if [ -e {switch} ]; then for i in 1 2 3 4 5 6 7 8 9 10 11 12; '
        'do [ -e /etc/passwd/x ]; done; fi; ls / >/dev/null"\n'
    )
    try:
        switch.unlink(missing_ok=True)
        quiet = _capture(str(spec), 3, tmp_path / "quiet.json", tmp_path)
        switch.touch()
        loud = _capture(str(spec), 3, tmp_path / "loud.json", tmp_path)
    finally:
        switch.unlink(missing_ok=True)
    assert quiet.workload.hash == loud.workload.hash

    for old, new, test in (
        (quiet, loud, "exact"),
        (_first_run_only(quiet), _first_run_only(loud), "fisher"),
    ):
        result = diff_captures(old, new)
        top = result.divergences[0]
        assert top.key == PLANTED_KEY, [d.key for d in result.significant]
        assert top.cls == "appeared" and top.significant and top.regression
        assert top.q is not None and top.q < 0.01
        assert top.test == test, (top.old.raw, top.new.raw)
        assert top.new.center == pytest.approx(12.0)
        assert top.old.raw == (0,) * len(old.runs)
        # nothing else that failed is called significant
        others = [d.key for d in result.significant if d.key != PLANTED_KEY]
        assert all(":ENOTDIR" not in k for k in others)


def test_aa_ps_loop_no_significant_divergence(tmp_path: Path) -> None:
    _require_root()
    a = _capture("ps-loop", 5, tmp_path / "a.json.gz", tmp_path)
    b = _capture("ps-loop", 5, tmp_path / "b.json.gz", tmp_path)
    result = diff_captures(a, b)
    assert result.keys_tested > 20
    assert result.significant == [], [(d.key, d.p, d.q) for d in result.significant]
    assert {w.code for w in result.warnings} >= {"same-kernel"}
    # the CLI agrees and exits 0 under the default --fail-on any
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "regress.cli.main",
            "diff",
            str(tmp_path / "a.json.gz"),
            str(tmp_path / "b.json.gz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 significant, 0 regressions (" in proc.stdout, proc.stdout
    # Machine load that differs between the two captures moves dash's wait/SIGCHLD
    # timing keys (CI once saw 8 keys at q <= 0.05, x0.9-1.1): such rows may be shown as
    # suggestive, never as certain, outcome or absent rows, and never counted.
    assert {d.cls for d in result.shown} <= {"suggestive"}, [
        (d.key, d.cls, d.old.raw, d.new.raw) for d in result.shown
    ]
    if not result.shown:
        assert "no significant divergences" in proc.stdout
    # and two different workloads are refused, not diffed
    with pytest.raises(IncomparableError):
        diff_captures(a, dataclasses.replace(b, workload=dataclasses.replace(b.workload, hash="x")))
