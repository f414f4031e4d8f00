"""Negative (A/A split) and positive (canary) controls as pure functions on captures.

The fixtures in ``testdata/ci`` are real: ``selftest-control``/``selftest-faulted``
are ps-loop on debian 6.1.0-56 under QEMU, 4 runs x 10 iterations, the second
boot with the built-in fault loaded (``regress selftest``'s two captures).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from regress.diff.differ import diff_captures
from regress.errors import UsageError
from regress.gate.controls import (
    aa_control,
    evaluate_canary,
    fault_figures,
    split_halves,
)
from regress.gate.selftest import evaluate_selftest
from regress.guest.faults import FaultSpec
from regress.model.capture import Capture, load_capture
from regress.model.result import Thresholds

CI = Path(__file__).resolve().parent / "testdata" / "ci"


@pytest.fixture(scope="module")
def control() -> Capture:
    return load_capture(CI / "selftest-control.json.gz")


@pytest.fixture(scope="module")
def faulted() -> Capture:
    return load_capture(CI / "selftest-faulted.json.gz")


# --------------------------------------------------------------------------- A/A


def test_split_interleaves_runs_and_keeps_halves_complete(control: Capture) -> None:
    a, b = split_halves(control)
    assert [r.wall_s for r in a.runs] == [control.runs[i].wall_s for i in (0, 2)]
    assert [r.wall_s for r in b.runs] == [control.runs[i].wall_s for i in (1, 3)]
    assert [r.index for r in a.runs] == [0, 1] and a.complete and b.complete
    assert len(control.runs) == 4  # the original is untouched


def test_split_needs_two_runs(control: Capture) -> None:
    one = dataclasses.replace(control, runs=control.runs[:1], requested_runs=1)
    with pytest.raises(UsageError):
        split_halves(one)
    aa = aa_control(one)
    assert aa.false_positives is None and "cannot be split" in aa.warnings[0]


def test_real_control_capture_has_no_false_positive(control: Capture) -> None:
    aa = aa_control(control)
    assert aa.false_positives == 0 and aa.keys_tested > 50
    assert aa.runs_a == aa.runs_b == 2
    assert any("2 vs 2 runs" in w for w in aa.warnings)


def _plant(cap: Capture, odd_extra: int) -> Capture:
    """6 runs; odd-numbered ones get ``odd_extra`` mkdir EEXIST per iteration (exact counts)."""
    runs = []
    for i in range(6):
        r = dataclasses.replace(cap.runs[i % len(cap.runs)], index=i)
        sc = {k: dict(v) for k, v in r.syscalls.items()}
        sc["mkdir"] = {"17": odd_extra * r.iterations if i % 2 else 0}
        runs.append(dataclasses.replace(r, syscalls=sc))
    return dataclasses.replace(cap, runs=runs, requested_runs=6)


def test_planted_half_difference_counts_as_false_positive(control: Capture) -> None:
    aa = aa_control(_plant(control, 5))
    assert aa.false_positives is not None and aa.false_positives >= 1
    assert "syscall:mkdir:EEXIST" in aa.significant_keys
    assert aa_control(_plant(control, 0)).false_positives == 0


def test_few_runs_warn(control: Capture) -> None:
    three = dataclasses.replace(control, runs=control.runs[:3], requested_runs=3)
    aa = aa_control(three)
    assert any("at least" in w or ">= 4" in w for w in aa.warnings), aa.warnings


# --------------------------------------------------------------------------- canary


def test_real_selftest_captures_pass(control: Capture, faulted: Capture) -> None:
    verdict, judged = evaluate_selftest(control, faulted, FaultSpec(), Thresholds())
    aa, result = judged.aa, judged.result
    assert verdict.passed, verdict.message()
    assert verdict.ranks == {"syscall:openat:EACCES": 2, "liveness": 1}
    assert verdict.denied == 40
    assert result.aa_false_positives == aa.false_positives == 0
    assert verdict.message().startswith("canary caught")


@pytest.mark.parametrize(
    "thresholds, missed",
    [
        (Thresholds(min_abs_delta=100.0), "syscall:openat:EACCES: failed the effect gate"),
        (Thresholds(alpha=1e-30), "liveness"),  # its Fisher p is ~1e-23
    ],
)
def test_broken_detector_misses_the_canary(
    control: Capture, faulted: Capture, thresholds: Thresholds, missed: str
) -> None:
    verdict, _ = evaluate_selftest(control, faulted, FaultSpec(), thresholds)
    assert not verdict.passed
    assert verdict.message().startswith("canary MISSED")
    assert missed in verdict.message()


def test_no_fault_no_canary(control: Capture) -> None:
    """Control vs control: nothing to find, and no 'fault injected' note."""
    verdict, _ = evaluate_selftest(control, control, FaultSpec(), Thresholds())
    assert not verdict.passed
    text = verdict.message()
    assert "no 'fault injected' note" in text and "liveness: not significant" in text


def test_fault_that_never_fired_is_named(control: Capture, faulted: Capture) -> None:
    notes = [n.replace("denied 40", "denied 0") for n in faulted.notes]
    silent = dataclasses.replace(faulted, notes=notes)
    assert fault_figures(silent) == (True, 0)
    verdict, _ = evaluate_selftest(control, silent, FaultSpec(), Thresholds())
    assert "never fired" in verdict.message()


def test_wrong_errno_expected_is_missed(control: Capture, faulted: Capture) -> None:
    result = diff_captures(control, faulted)
    verdict = evaluate_canary(result, FaultSpec(errno="EPERM"), faulted=faulted)
    assert not verdict.passed and "syscall:openat:EPERM: no such row" in verdict.message()


def test_rank_below_top_is_missed(control: Capture, faulted: Capture) -> None:
    """Demote the fault row below another: it must be reported as not in the top rows."""
    result = diff_captures(control, faulted)
    rows = list(result.divergences)
    i = next(k for k, d in enumerate(rows) if d.key == "syscall:openat:EACCES")
    rows.insert(i + 3, rows.pop(i))
    result = dataclasses.replace(result, divergences=tuple(rows))
    verdict = evaluate_canary(result, FaultSpec(), faulted=faulted)
    assert not verdict.passed and "ranked #5, not in the top 2" in verdict.message()
    assert evaluate_canary(result, FaultSpec(), faulted=faulted, top_n=5).passed
    with pytest.raises(UsageError):
        evaluate_canary(result, FaultSpec(), top_n=1)


def test_without_liveness_only_the_errno_row_is_expected(
    control: Capture, faulted: Capture
) -> None:
    result = diff_captures(control, faulted)
    verdict = evaluate_canary(result, FaultSpec(), faulted=faulted, expect_liveness=False, top_n=2)
    assert verdict.expected == ["syscall:openat:EACCES"] and verdict.passed
