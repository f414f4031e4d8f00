"""``regress narrow`` without a VM: what it refuses, and that nothing regressed means no pass.

(The pass itself boots kernels: tests/test_narrowing_vm.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from regress.cli.main import run

REPORT = Path(__file__).resolve().parent / "testdata" / "report"


def test_nothing_regressed_runs_no_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = REPORT / "ps-loop-old.json"
    rc = run(["narrow", str(old), str(old), "-o", str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "nothing regressed: no narrowing pass to run" in out.out
    assert list(tmp_path.iterdir()) == []  # wrote nothing


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--syscalls", "open at"], "--syscalls: 'open at' is not a syscall name"),
        (["--old-modules", "/nonexistent"], "--old-modules/--old-headers/--old-label need"),
        (["--workload", "proc-scan"], "differs from 'proc-scan' now"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    old, new = REPORT / "ps-loop-old.json", REPORT / "ps-loop-new.json"
    rc = run(["narrow", str(old), str(new), "-o", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert fragment in err and len(err.strip().splitlines()) <= 2, err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            [
                "report",
                str(REPORT / "ps-loop-old.json"),
                str(REPORT / "ps-loop-new.json"),
                "--format",
                "html",
                "--html",
                "-",
                "-o",
                "x.html",
            ],
            "-o and --html both ask for the html report",
        ),
        (
            ["capture", "-w", "ps-loop", "--runs", "99999999999999999999999", "-o", "c.json"],
            "--runs",
        ),
        (
            [
                "diff",
                str(REPORT / "ps-loop-old.json"),
                str(REPORT / "ps-loop-new.json"),
                "--min-ratio",
                "inf",
            ],
            "min ratio must be >= 1 and finite",
        ),
    ],
)
def test_contradictory_or_out_of_range_options_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    rc = run(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "c.json").exists()
