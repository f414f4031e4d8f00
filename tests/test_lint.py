"""The code base stays ruff- and mypy-clean: checked by the suite, not by convention."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_clean() -> None:
    p = _run(str(BIN / "ruff"), "check", "--output-format", "concise", "regress", "tests", "bench")
    assert p.returncode == 0, p.stdout + p.stderr


def test_ruff_format_clean() -> None:
    p = _run(str(BIN / "ruff"), "format", "--check", "regress", "tests", "bench")
    assert p.returncode == 0, p.stdout + p.stderr


def test_mypy_clean() -> None:
    p = _run(str(BIN / "mypy"))  # files and strictness from pyproject.toml
    assert p.returncode == 0, p.stdout + p.stderr
