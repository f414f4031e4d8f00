"""``regress selftest`` for real: Debian 6.1.0-56 under QEMU, booted twice (control, fault).

The injected fault is the built-in BPF-LSM program (regress/faults.py): ps is denied
every other /proc/<pid>/stat of another process, so it misses the live sleeper in
every iteration. The differ must rank liveness and openat EACCES as the top two rows;
the same real captures re-judged with a broken detector (a huge effect gate) must
report the canary missed. ~70 s on this machine (TCG, both boots in parallel).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regress.cli.main import run as cli_run
from regress.gate.selftest import SelftestOptions, evaluate_selftest, run_selftest
from regress.guest.faults import FaultSpec
from regress.model.result import Thresholds
from regress.vm.backend import DEFAULT_NEW, RunOptions

pytestmark = pytest.mark.vm
KERNEL = DEFAULT_NEW


def test_selftest_catches_the_fault_and_a_broken_detector_misses_it(
    vm_ready: None, tmp_path: Path
) -> None:
    out = tmp_path / "st"
    outcome = run_selftest(
        SelftestOptions(kernel=KERNEL, run=RunOptions(runs=4, iterations=6, out_dir=out))
    )
    v = outcome.verdict
    assert v.passed, v.message()
    assert v.ranks == {"syscall:openat:EACCES": 2, "liveness": 1}
    assert v.denied == 4 * 6  # one denial per iteration: /proc/2/stat, the sleeper's
    faulted = outcome.result.divergences[0]
    assert faulted.key == "liveness" and faulted.new.center == 1.0 and faulted.old.center == 0.0
    assert outcome.aa.false_positives == 0
    assert outcome.result.aa_false_positives == 0
    doc = json.loads((out / "selftest.json").read_text())
    assert doc["verdict"]["passed"] is True
    assert "fault injected: BPF-LSM" in (out / "report.html").read_text()  # in the notes
    from regress.model.capture import load_capture

    control = load_capture(outcome.captures["control"])
    fcap = load_capture(outcome.captures["faulted"])
    assert not any(n.startswith("fault injected") for n in control.notes)
    # Deliberately broken detector on the same real captures: the canary is missed.
    broken, _ = evaluate_selftest(control, fcap, FaultSpec(), Thresholds(min_abs_delta=50.0))
    assert not broken.passed
    assert "syscall:openat:EACCES: failed the effect gate" in broken.message()


@pytest.mark.slow  # the same verdict logic runs in the default suite on real captures above
def test_selftest_cli_fails_loudly_when_the_canary_is_missed(
    vm_ready: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A detector that can never flag a row (min ratio 1e9): exit 1, saying what was missed."""
    rc = cli_run(
        [
            "selftest",
            "--runs",
            "2",
            "--iterations",
            "2",
            "--min-ratio",
            "1e9",
            "--min-delta",
            "1e9",
            "-o",
            str(tmp_path / "st"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "regress selftest: FAILED: canary MISSED" in err
    assert "syscall:openat:EACCES" in err and "do not trust" in err
